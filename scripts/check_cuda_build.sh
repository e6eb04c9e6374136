#!/usr/bin/env bash
# Build the whole extension with CUDA kernels against a CUDA build of torch on a machine without a
# GPU: catches compile and link errors in the torch-facing CUDA code (which check_cuda_compile.sh,
# plain nvcc on the .cu files, does not see) and checks that the module imports with
# cuda_kernels=True. Needs nvcc and ~6 GB for the CUDA torch wheel (kept in $VENV between runs).
# Usage: scripts/check_cuda_build.sh [venv-dir]
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${1:-${VENV:-/tmp/eirnn-fast-cuda-venv}}"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q "torch==2.14.1" numpy pybind11 scikit-build-core cmake ninja pytest
fi
"$venv/bin/python" -c "import torch; assert torch.version.cuda, 'need a CUDA build of torch'; print('torch', torch.__version__)"
EIRNN_FAST_CUDA=1 TORCH_CUDA_ARCH_LIST="${TORCH_CUDA_ARCH_LIST:-9.0}" \
  "$venv/bin/pip" install -q --no-build-isolation --no-deps -Cbuild-dir=/tmp/eirnn-fast-cuda-build .
(cd /tmp && "$venv/bin/python" -c "import eirnn_fast, json; i = eirnn_fast.backend_info(); print(json.dumps(i)); assert i['cuda_kernels']")
"$venv/bin/pytest" -q -p no:cacheprovider python_tests/ops
