/*
 * tfq.h: the C API of tfq's runtime (libtfq.so).
 *
 * Load a .tfq model (memory-mapped; raw tensors are used in place and shared between
 * processes), open sessions on it, and evaluate or generate tokens. A model is immutable
 * and may be shared by any number of threads; a session belongs to one thread at a time.
 *
 * Every function that can fail returns a tfq_status; TFQ_OK is 0. On failure,
 * tfq_last_error() returns a one-line message for the calling thread's last failure.
 * Every entry point checks its arguments: NULL pointers, closed handles and short buffers
 * are reported as errors, never crashes. Codes keep their values across versions; new
 * ones may be added, so treat an unknown code as a failure (tfq_status_name names it).
 *
 * Link: cc app.c -I<tfq>/include -L<dir of libtfq.so> -ltfq -Wl,-rpath,<dir of libtfq.so>
 */
#ifndef TFQ_H
#define TFQ_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct tfq_model tfq_model;     /* an open model file */
typedef struct tfq_session tfq_session; /* a KV cache and scratch buffers on one model */

typedef enum tfq_status {
    TFQ_OK = 0,
    TFQ_ERROR_INVALID_ARGUMENT = 1,  /* NULL pointer, closed handle, bad length, flag or value: a bug in the caller */
    TFQ_ERROR_FILE = 2,              /* the model file is damaged: corrupt, truncated, inconsistent, or truncated while in use */
    TFQ_ERROR_BUFFER_TOO_SMALL = 3,  /* the output buffer is too small; *count or *length says how much is needed */
    TFQ_ERROR_CONTEXT_FULL = 4,      /* the tokens do not fit in the model's context */
    TFQ_ERROR_UNKNOWN_CHARACTER = 5, /* the text has a character the vocabulary lacks */
    TFQ_ERROR_CANNOT_OPEN = 6,       /* the file cannot be opened or read: missing, no permission, not a regular file, I/O error */
    TFQ_ERROR_NOT_TFQ_FILE = 7,      /* the file is not a .tfq file: no tfq magic bytes, or shorter than a header */
    TFQ_ERROR_UNSUPPORTED = 8,       /* a valid file this library cannot run: a newer format version, an unknown architecture or tokenizer, an int8 layout the runtime does not run */
    TFQ_ERROR_OUT_OF_MEMORY = 9,     /* the model or a session needs more memory than this machine has, or an allocation failed */
    TFQ_ERROR_INVALID_TOKEN = 10,    /* a token id outside the vocabulary */
    TFQ_ERROR_NO_TOKENS = 11,        /* zero tokens where at least one is needed */
    TFQ_ERROR_INVALID_UTF8 = 12,     /* the text is not valid UTF-8 */
    TFQ_ERROR_INTERNAL = 13          /* a failure tfq did not expect: a bug in tfq, please report it */
} tfq_status;

typedef struct tfq_model_info {
    int32_t vocab_size;
    int32_t context_length;
    int32_t n_layers;
    int32_t n_heads;
    int32_t dim;
    int32_t ff_dim;
    int32_t quantized; /* 1 when the matrices are int8 */
} tfq_model_info;

/* The library's version, e.g. "0.1.0". Static storage. */
const char *tfq_version(void);

/* The message of the calling thread's last failure ("" if none). Valid until the next
 * failing call on this thread. */
const char *tfq_last_error(void);

/* The name of a status's constant, e.g. "TFQ_ERROR_CONTEXT_FULL"; "TFQ_ERROR_UNKNOWN" for a
 * value this library does not define. Static storage. */
const char *tfq_status_name(tfq_status status);

/* Opens the model at `path`. *model is set to a new handle on success, NULL on failure.
 * Only a regular file is opened (a FIFO, a directory or a device is TFQ_ERROR_CANNOT_OPEN at
 * once). The file's structure, config, tokenizer and tensor shapes are checked (failures:
 * TFQ_ERROR_NOT_TFQ_FILE, TFQ_ERROR_UNSUPPORTED, TFQ_ERROR_OUT_OF_MEMORY, TFQ_ERROR_FILE);
 * its tensor bytes are not read until used, so damaged weights go unnoticed: see
 * TFQ_OPEN_VERIFY. */
tfq_status tfq_model_open(const char *path, tfq_model **model);

/* Flags of tfq_model_open_flags; any other bit is TFQ_ERROR_INVALID_ARGUMENT. */
#define TFQ_OPEN_VERIFY 1u /* check every tensor checksum and every int8 value first (reads the whole file) */
#define TFQ_OPEN_COPY 2u   /* read the file into private memory instead of mapping it (see below) */

/* tfq_model_open with flags: 0 opens as tfq_model_open does. A file that fails
 * TFQ_OPEN_VERIFY's checks is TFQ_ERROR_FILE, naming the tensor.
 *
 * A mapped file must be replaced by renaming a new one over it, never truncated or rewritten
 * in place while open. If it is truncated anyway, the pages that vanished read as zeros
 * (tfq's SIGBUS handler, scoped to its own mappings, keeps the process alive) and every
 * later tfq_session_eval and tfq_generate on the model fails with TFQ_ERROR_FILE. With
 * TFQ_OPEN_COPY the model is a private copy that nothing done to the file can affect. */
tfq_status tfq_model_open_flags(const char *path, uint32_t flags, tfq_model **model);

/* Closes a model handle. Sessions opened on it stay usable until freed. NULL is ignored. */
void tfq_model_close(tfq_model *model);

tfq_status tfq_model_get_info(const tfq_model *model, tfq_model_info *info);

/* Encodes UTF-8 `text` of `length` bytes into at most `capacity` token ids; *count is set
 * to the number of tokens (also when the buffer is too small). Text that is not UTF-8 is
 * TFQ_ERROR_INVALID_UTF8; a character outside the vocabulary, TFQ_ERROR_UNKNOWN_CHARACTER. */
tfq_status tfq_tokenize(const tfq_model *model, const char *text, size_t length,
                        int32_t *tokens, size_t capacity, size_t *count);

/* Decodes tokens to UTF-8 bytes (not NUL-terminated); *length is set to the byte count
 * (also when the buffer is too small). An id outside the vocabulary is TFQ_ERROR_INVALID_TOKEN. */
tfq_status tfq_detokenize(const tfq_model *model, const int32_t *tokens, size_t count,
                          char *text, size_t capacity, size_t *length);

/* A new session running its kernels on `threads` threads (0: all processors). Its KV cache
 * holds half-precision keys and values for an int8 model, floats otherwise. When its buffers
 * (cache and scratch, for the model's whole context) cannot be allocated, the result is
 * TFQ_ERROR_OUT_OF_MEMORY and *session is NULL. */
tfq_status tfq_session_new(tfq_model *model, int32_t threads, tfq_session **session);

/* Frees a session. NULL is ignored. */
void tfq_session_free(tfq_session *session);

/* Empties the session's KV cache. */
tfq_status tfq_session_reset(tfq_session *session);

/* Tokens held in the session's KV cache. */
tfq_status tfq_session_position(const tfq_session *session, int32_t *position);

/* Appends `count` tokens to the session (one batched pass) and writes the last token's
 * logits (vocab_size floats) to `logits`, which holds `capacity` floats. Tokens that would
 * overflow the context are TFQ_ERROR_CONTEXT_FULL, found before `tokens` is read; a count
 * of 0 is TFQ_ERROR_NO_TOKENS, an id outside the vocabulary TFQ_ERROR_INVALID_TOKEN. On any
 * failure the session is unchanged. */
tfq_status tfq_session_eval(tfq_session *session, const int32_t *tokens, size_t count,
                            float *logits, size_t capacity);

/* Called with each generated token and the UTF-8 text it completes (may be empty while a
 * character is split across tokens; not NUL-terminated). Return nonzero to stop. */
typedef int (*tfq_token_callback)(int32_t token, const char *text, size_t length, void *user_data);

typedef struct tfq_sampling {
    float temperature; /* 0: greedy argmax (ties to the lowest id) */
    int32_t top_k;     /* 0: no limit */
    float top_p;       /* 1: no limit */
    uint64_t seed;
} tfq_sampling;

/* Feeds `prompt` then generates up to `max_tokens` tokens, calling `callback` (which may be
 * NULL) for each. `sampling` may be NULL for greedy. The prompt is checked as
 * tfq_session_eval checks its tokens. *generated (may be NULL) is set to 0
 * before anything else, so it is 0 after any argument error, and then to the number of
 * tokens produced (also those produced before a later failure). Stops early when the context
 * is full, the callback asks, or the model produces its tokenizer's stop token (BOS for
 * llama2.c models; not counted). The texts passed to the callback add up to the whole
 * output: a character left unfinished when generation stops comes as U+FFFD, with the last
 * token, or with the stop token (the callback's only sight of it). */
tfq_status tfq_generate(tfq_session *session, const int32_t *prompt, size_t prompt_count,
                        int32_t max_tokens, const tfq_sampling *sampling,
                        tfq_token_callback callback, void *user_data, int32_t *generated);

#ifdef __cplusplus
}
#endif

#endif /* TFQ_H */
