#!/usr/bin/env bash
# One AdamW step over SmolLM2-135M's parameter shapes: trustformers-optim against torch's
# AdamW (foreach=True and fused=True), same machine, same run; medians of REPS steps.
# Needs a Python with torch (PYTHON, default python3).
# Usage: scripts/bench_optim.sh [THREADS=2] [REPS=5]
set -euo pipefail
cd "$(dirname "$0")/.."
THREADS=${1:-2}
export REPS=${2:-5} RAYON_NUM_THREADS=$THREADS OMP_NUM_THREADS=$THREADS
PY=${PYTHON:-python3}
cargo run -q --release -p trustformers-optim --example bench_adamw
"$PY" - <<'PY'
import os, time, json, torch
torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
h, kv, ff = 576, 192, 1536
shapes = [(49152, h)] + [s for _ in range(30) for s in [(h, h), (kv, h), (kv, h), (h, h), (ff, h), (ff, h), (h, ff), (h,), (h,)]] + [(h,)]
params = [(torch.randn(s) * 0.02).requires_grad_() for s in shapes]
for p in params:
    p.grad = torch.randn(p.shape) * 1e-3
count = sum(p.numel() for p in params)
for mode in ["foreach", "fused"]:
    opt = torch.optim.AdamW(params, **{mode: True})
    opt.step()
    times = []
    for _ in range(int(os.environ["REPS"])):
        t = time.perf_counter(); opt.step(); times.append(time.perf_counter() - t)
    m = sorted(times)[len(times) // 2]
    print(json.dumps({"system": f"torch AdamW({mode}=True)", "params": count, "median_ms": round(m * 1e3, 1), "gb_s": round(28 * count / m / 1e9, 2)}))
PY
