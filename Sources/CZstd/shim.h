// The libzstd API tfq uses: one-shot and streaming (de)compression, frame size queries.
#ifndef TFQ_CZSTD_SHIM_H
#define TFQ_CZSTD_SHIM_H
#include <zstd.h>
#include <zstd_errors.h>
#endif
