#!/usr/bin/env bash
# Compile every CUDA source with plain nvcc (no torch headers needed): a syntax/type check that runs
# on CPU-only machines. Usage: scripts/check_cuda_compile.sh [arch ...]   (default: sm_80 sm_90)
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v nvcc >/dev/null 2>&1; then
  echo "check_cuda_compile: nvcc not found, skipping"
  exit 0
fi
archs=("$@")
[ ${#archs[@]} -gt 0 ] || archs=(sm_80 sm_90)
gencode=()
for a in "${archs[@]}"; do gencode+=("-gencode" "arch=compute_${a#sm_},code=${a}"); done
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
n=0
while IFS= read -r -d '' f; do
  echo "nvcc ${f} (${archs[*]})"
  nvcc -std=c++17 -O3 -Icsrc "${gencode[@]}" -Xcompiler -Wall -c "$f" -o "$out/$(basename "$f").o"
  n=$((n + 1))
done < <(find csrc -name '*.cu' -print0 | sort -z)
echo "check_cuda_compile: ${n} CUDA source(s) compiled with $(nvcc --version | tail -1)"

# The CUDA-side C++ (launch code and the CUDA dispatch-key registrations, csrc/**/*_cuda.cpp) needs
# the torch headers: syntax- and type-checked with the host compiler against the torch of
# ${PYTHON:-python3}, when it imports. A CPU-only torch wheel ships the c10/cuda headers but not the
# generated c10/cuda/impl/cuda_cmake_macros.h: a stub stands in for it.
py=${PYTHON:-python3}
if info=$("$py" scripts/torch_build_info.py 2>/dev/null); then
  incs=()
  IFS='|' read -r -a dirs <<<"$(sed -n 's/^TORCH_INCLUDE_DIRS=//p' <<<"$info")"
  for d in "${dirs[@]}"; do incs+=("-I$d"); done
  mkdir -p "$out/stub/c10/cuda/impl"
  printf '#pragma once\n#define C10_CUDA_BUILD_SHARED_LIBS\n' >"$out/stub/c10/cuda/impl/cuda_cmake_macros.h"
  cuda_inc="$(dirname "$(dirname "$(command -v nvcc)")")/include"
  [ -d /usr/local/cuda/include ] && cuda_inc=/usr/local/cuda/include
  m=0
  while IFS= read -r -d '' f; do
    echo "c++ -fsyntax-only ${f}"
    "${CXX:-c++}" -std=c++20 -fsyntax-only -Wall -Wno-unused-parameter -Icsrc "${incs[@]}" \
      -I"$out/stub" -I"$cuda_inc" "$f"
    m=$((m + 1))
  done < <(find csrc -name '*_cuda.cpp' -print0 | sort -z)
  echo "check_cuda_compile: ${m} CUDA-side C++ source(s) checked against torch $(sed -n 's/^TORCH_VERSION=//p' <<<"$info")"
else
  echo "check_cuda_compile: ${py} cannot import torch; the *_cuda.cpp sources were not checked"
fi
