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
