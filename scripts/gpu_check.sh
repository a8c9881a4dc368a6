#!/usr/bin/env bash
# Ember on a GPU: the parity fixtures with the models on CUDA; the LightViT bench (LightViT-T
# at 224 px, batch 32, and lightvit_tiny_32 at batch 128) on CUDA in f32 and bf16; the GreenMIM
# bench (GreenMIM vs the SimMIM-style dense step, same encoder and batch) in f32 and bf16,
# both methods together for the time ratio, then each alone with nvidia-smi sampling the
# device's memory for its peak.
#
#   scripts/gpu_check.sh build    # here, without a GPU: builds the cuda variant of the parity
#                                 # test and the benches (scripts/build_cuda.sh, CUDA 13.0
#                                 # wheels), and packs them with the parity fixtures into .gpu/
#                                 # (xz: the stripped binaries are ~50 MB each, mostly PTX)
#   scripts/gpu_check.sh run      # on the GPU machine, with .gpu/ carried over
#
# `run` needs the driver's libcuda.so.1; the other CUDA libraries come from .cuda/. Set
# EMBER_PEAK_GFLOPS to the GPU's peak for the "% of peak" lines (H100 SXM: 67000 f32,
# 989000 bf16 dense).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=target/cuda/gpu_check

case "${1:-}" in
  build)
    scripts/build_cuda.sh --test parity --bench lightvit --bench greenmim
    mkdir -p "$OUT"
    newest() { ls -t target/cuda/release/deps/"$1"-* | grep -v '\.d$' | head -n 1; }
    # Without debug info: the binaries travel to the GPU machine.
    for pair in parity:parity lightvit:lightvit_bench greenmim:greenmim_bench; do
      objcopy --strip-debug "$(newest "${pair%%:*}")" "$OUT/${pair##*:}"
    done
    rm -rf .gpu && mkdir -p .gpu/fixtures
    for b in parity lightvit_bench greenmim_bench; do xz -T2 -6 -c "$OUT/$b" > ".gpu/$b.xz"; done
    cp -r "${EMBER_PARITY_DIR:-../shared/parity}"/. .gpu/fixtures/
    echo "gpu_check: built $OUT/{parity,lightvit_bench,greenmim_bench}, packed into .gpu/ ($(du -sh .gpu | cut -f1))" >&2
    ;;
  run)
    if [ -d .gpu ]; then
      mkdir -p "$OUT"
      for b in parity lightvit_bench greenmim_bench; do
        xz -dc ".gpu/$b.xz" > "$OUT/$b" && chmod +x "$OUT/$b"
      done
      export EMBER_PARITY_DIR=$PWD/.gpu/fixtures
    fi
    [ -x "$OUT/parity" ] || { echo "gpu_check: run '$0 build' first" >&2; exit 2; }
    # The CUDA 13 libraries: a carried .cuda/, else the machine's own (a PyTorch install's).
    libs=$PWD/.cuda/nvidia/cu13/lib
    [ -d "$libs" ] || libs=$(dirname "$(find /opt /usr/local /usr/lib -name 'libcublas.so.13*' 2>/dev/null | head -n 1)")
    export LD_LIBRARY_PATH=$libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
    echo "== parity, models on cuda (f32)"
    EMBER_PARITY_DEVICE=cuda "$OUT/parity"
    for dtype in f32 bf16; do
      echo "== lightvit bench, cuda, $dtype"
      EMBER_BENCH_DEVICE=cuda EMBER_BENCH_DTYPE=$dtype "$OUT/lightvit_bench" --bench
    done
    for dtype in f32 bf16; do
      echo "== greenmim bench, cuda, $dtype (batch ${EMBER_BENCH_BATCH:-64} at 224 px)"
      EMBER_BENCH_DEVICE=cuda EMBER_BENCH_DTYPE=$dtype EMBER_BENCH_BATCH=${EMBER_BENCH_BATCH:-64} \
        "$OUT/greenmim_bench" --bench
      for only in simmim greenmim; do
        log=$(mktemp)
        nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 20 > "$log" &
        smi=$!
        EMBER_BENCH_ONLY=$only EMBER_BENCH_QUICK=1 EMBER_BENCH_DEVICE=cuda EMBER_BENCH_DTYPE=$dtype \
          EMBER_BENCH_BATCH=${EMBER_BENCH_BATCH:-64} "$OUT/greenmim_bench" --bench > /dev/null
        kill $smi; wait $smi 2>/dev/null || true
        echo "  $only alone: device memory peak $(sort -n "$log" | tail -n 1) MiB (nvidia-smi, both cases of the bench)"
        rm -f "$log"
      done
    done
    ;;
  *)
    echo "usage: $0 build|run" >&2
    exit 2
    ;;
esac
