#!/usr/bin/env bash
# LightViT on a GPU: the parity fixtures with the models on CUDA, and the LightViT bench
# (LightViT-T at 224 px, batch 32, and lightvit_tiny_32 at batch 128) on CUDA in f32 and bf16.
#
#   scripts/gpu_check.sh build    # here, without a GPU: builds the cuda variant of the parity
#                                 # test and the bench (scripts/build_cuda.sh, CUDA 13.0 wheels)
#   scripts/gpu_check.sh run      # on the GPU machine, with the build and .cuda/ carried over
#
# `run` needs the driver's libcuda.so.1; the other CUDA libraries come from .cuda/. Set
# EMBER_PEAK_GFLOPS to the GPU's peak for the "% of peak" lines (H100 SXM: 67000 f32,
# 989000 bf16 dense).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=target/cuda/gpu_check

case "${1:-}" in
  build)
    scripts/build_cuda.sh --test parity --bench lightvit
    mkdir -p "$OUT"
    newest() { ls -t target/cuda/release/deps/"$1"-* | grep -v '\.d$' | head -n 1; }
    cp "$(newest parity)" "$OUT/parity"
    cp "$(newest lightvit)" "$OUT/lightvit_bench"
    echo "gpu_check: built $OUT/parity and $OUT/lightvit_bench" >&2
    ;;
  run)
    [ -x "$OUT/parity" ] || { echo "gpu_check: run '$0 build' first" >&2; exit 2; }
    export LD_LIBRARY_PATH=$PWD/.cuda/nvidia/cu13/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
    echo "== parity, models on cuda (f32)"
    EMBER_PARITY_DEVICE=cuda "$OUT/parity"
    for dtype in f32 bf16; do
      echo "== lightvit bench, cuda, $dtype"
      EMBER_BENCH_DEVICE=cuda EMBER_BENCH_DTYPE=$dtype "$OUT/lightvit_bench" --bench
    done
    ;;
  *)
    echo "usage: $0 build|run" >&2
    exit 2
    ;;
esac
