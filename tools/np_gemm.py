"""OpenBLAS sgemm (through numpy) at tfq's training shapes: the side-by-side reference for
tfq-kernel-bench. Unset OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE for this command only (see
BENCHMARKS.md), and set OPENBLAS_NUM_THREADS."""
import time

import numpy as np

for m, n, k in [(768, 384, 128), (768, 128, 512), (512, 512, 512), (16384, 1152, 384)]:
    a = np.random.rand(m, k).astype(np.float32)
    b = np.random.rand(k, n).astype(np.float32)
    for _ in range(3):
        a @ b
    times = []
    for _ in range(30):
        start = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - start)
    times.sort()
    print(f"{m}x{n}x{k}  {2 * m * n * k / times[len(times) // 2] / 1e9:.1f} GFLOP/s")
