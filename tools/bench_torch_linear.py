"""torch's f32 `linear` at all-MiniLM-L6-v2's shapes (batches of 32 x 16 and 32 x 128 tokens),
the reference for `cargo bench -p trustformers-nn --bench gemm -- f32/ours`.

Usage: python tools/bench_torch_linear.py [THREADS=2]
"""

import statistics
import sys
import time

import torch

torch.set_num_threads(int(sys.argv[1]) if len(sys.argv) > 1 else 2)
for m, n, k in [
    (512, 384, 384),
    (512, 1536, 384),
    (512, 384, 1536),
    (4096, 384, 384),
    (4096, 1536, 384),
    (4096, 384, 1536),
]:
    a = torch.randn(m, k) * 0.05
    w = torch.randn(n, k) * 0.05
    for _ in range(5):
        torch.nn.functional.linear(a, w)
    reps = max(1, int(2e8 // (m * n * k)))
    times = []
    for _ in range(7):
        start = time.perf_counter()
        for _ in range(reps):
            torch.nn.functional.linear(a, w)
        times.append((time.perf_counter() - start) / reps)
    t = statistics.median(times)
    print(f"{m}x{n}x{k}: {t * 1e3:.3f} ms, {m * n * k / t / 1e9:.1f} Gelem/s")
