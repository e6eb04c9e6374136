#!/usr/bin/env bash
# On a GPU machine (no network): build with CUDA, run the CUDA tests and the GPU benchmarks, and print
# a short table. Usage: scripts/gpu_check.sh   (results land in $EIRNN_BENCH_RESULTS, a fresh temp folder by default, and $OUT)
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
python -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.is_available())"

export EIRNN_FAST_CUDA=1
export TORCH_CUDA_ARCH_LIST="${TORCH_CUDA_ARCH_LIST:-9.0}"
export CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-16}"
t0=$(date +%s)
python -m pip install -q --no-build-isolation --no-deps . || { echo "BUILD FAILED"; exit 1; }
echo "build: $(( $(date +%s) - t0 )) s"
python -c "import eirnn_fast, json; print(json.dumps(eirnn_fast.backend_info()))"

status=0
EIRNN_FAST_REQUIRE_COMPILED=1 pytest -q -x python_tests -k "cuda or CUDA" 2>&1 | tail -25 || status=1
EIRNN_FAST_REQUIRE_COMPILED=1 pytest -q python_tests 2>&1 | tail -5 || status=1

# this run's result lines in a fresh folder (EIRNN_BENCH_RESULTS=bench/results to append to the tracked ones)
export EIRNN_BENCH_RESULTS="${EIRNN_BENCH_RESULTS:-$(mktemp -d)}"
# torch.compile of the reference recurrence beside fused/eager (issue 2's GPU goal); set
# EIRNN_BENCH_COMPILE=0 to skip its compile time
export EIRNN_BENCH_COMPILE="${EIRNN_BENCH_COMPILE:-1}"
pytest -q bench -k "speedup or train_step" -p no:cacheprovider -s 2>&1 | grep -E "passed|failed|Error" || status=1

python - <<'PY'
import json, glob, os
rows = []
for f in sorted(glob.glob(os.path.join(os.environ["EIRNN_BENCH_RESULTS"], "*.jsonl"))):
    for line in open(f):
        r = json.loads(line)
        ratios = {k: v for k, v in r.items() if k.startswith("ratio")}
        times = {k: v for k, v in r.items() if k.endswith("_ms") and not k.endswith("min_ms")}
        rows.append((r["bench"], r.get("device", "?"), str(r.get("shape", "")), times, ratios))
print("\n| bench | device | shape | times (ms, median) | ratios |\n|---|---|---|---|---|")
for b, d, s, t, r in rows:
    print(f"| {b} | {d} | {s} | " + ", ".join(f"{k[:-3]} {v}" for k, v in t.items()) + " | "
          + ", ".join(f"{k} {v}" for k, v in r.items()) + " |")
out = os.environ.get("OUT")
if out:
    os.system(f"cp {os.environ['EIRNN_BENCH_RESULTS']}/*.jsonl {out}/ 2>/dev/null")
PY
exit $status
