#!/usr/bin/env bash
# Ember on a GPU, in one run: the parity fixtures with the models on CUDA (f32); every op on
# CUDA against the CPU kernels, outputs and gradients (ember-ops' device_check: the
# convolutions through cuDNN); Ember and PyTorch side by side on the same shapes
# (scripts/torch_ref/cases.json: GEMMs, dense and depthwise convs, an AdamW step over
# ResNet-18, ResNet-18 and LightViT-T training in bf16 at batch 128, LightViT-T inference at
# batch 256), with PyTorch's LightViT first checked against the parity fixture; the
# LightViT bench on CUDA in f32 and bf16; the GreenMIM bench (GreenMIM vs the SimMIM-style
# dense step, same encoder and batch) in f32 and bf16, both methods together for the time
# ratio, then each alone with nvidia-smi sampling the device's memory for its peak, then
# the same cases in PyTorch (scripts/torch_ref/greenmim.py, checked against the GreenMIM
# fixture first); and `ember launch --gpus 1` (the NCCL build) against the same training
# run in one process.
#
#   scripts/gpu_check.sh build    # here, without a GPU: builds the cuda variant of the parity
#                                 # test, device_check and the benches (scripts/build_cuda.sh,
#                                 # CUDA 13.0 and cuDNN 9 wheels), and packs them with the
#                                 # parity fixtures into .gpu/ (xz: the stripped binaries are
#                                 # ~50 MB each, mostly PTX)
#   scripts/gpu_check.sh run      # on the GPU machine, with .gpu/ carried over; the PyTorch
#                                 # side needs the machine's own torch (skipped without it)
#
# `run` needs the driver's libcuda.so.1; the other CUDA libraries come from .cuda/. Set
# EMBER_PEAK_GFLOPS to the GPU's peak for the "% of peak" lines (H100 SXM: 67000 f32,
# 989000 bf16 dense).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=target/cuda/gpu_check
BINARIES="parity device_check side_by_side lightvit_bench greenmim_bench ember"

case "${1:-}" in
  build)
    scripts/build_cuda.sh --test parity --bench lightvit --bench greenmim --bench side_by_side
    scripts/build_cuda.sh -p ember-ops --example device_check
    scripts/build_cuda.sh --features nccl --bin ember
    mkdir -p "$OUT"
    newest() { ls -t target/cuda/release/deps/"$1"-* | grep -v '\.d$' | head -n 1; }
    # Without debug info: the binaries travel to the GPU machine.
    for pair in parity:parity lightvit:lightvit_bench greenmim:greenmim_bench side_by_side:side_by_side; do
      objcopy --strip-debug "$(newest "${pair%%:*}")" "$OUT/${pair##*:}"
    done
    objcopy --strip-debug target/cuda/release/examples/device_check "$OUT/device_check"
    objcopy --strip-debug target/cuda/release/ember "$OUT/ember"
    rm -rf .gpu && mkdir -p .gpu/fixtures
    for b in $BINARIES; do xz -T2 -6 -c "$OUT/$b" > ".gpu/$b.xz"; done
    cp -r "${EMBER_PARITY_DIR:-../shared/parity}"/. .gpu/fixtures/
    echo "gpu_check: built $OUT/{${BINARIES// /,}}, packed into .gpu/ ($(du -sh .gpu | cut -f1))" >&2
    ;;
  run)
    if [ -d .gpu ]; then
      mkdir -p "$OUT"
      for b in $BINARIES; do
        xz -dc ".gpu/$b.xz" > "$OUT/$b" && chmod +x "$OUT/$b"
      done
      export EMBER_PARITY_DIR=$PWD/.gpu/fixtures
    fi
    [ -x "$OUT/parity" ] || { echo "gpu_check: run '$0 build' first" >&2; exit 2; }
    # The CUDA 13 and cuDNN 9 libraries: a carried .cuda/, else the machine's own (a PyTorch
    # install's wheels keep cuDNN in a folder of its own).
    roots=("$PWD/.cuda" /opt /usr/local /usr/lib $(python3 -c 'import site; print(*site.getsitepackages())' 2>/dev/null || true))
    for lib in libcudart.so.13 libcublas.so.13 libcurand.so.10 libcudnn.so.9; do
      found=$(find "${roots[@]}" -name "$lib*" 2>/dev/null | head -n 1)
      if [ -z "$found" ]; then
        echo "gpu_check: $lib not found under ${roots[*]}" >&2
        exit 2
      fi
      case ":${LD_LIBRARY_PATH:-}:" in *":$(dirname "$found"):"*) ;; *) LD_LIBRARY_PATH=$(dirname "$found")${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH} ;; esac
    done
    # NCCL only for the launch step (a PyTorch install has it as nvidia/nccl).
    nccl=$(find "${roots[@]}" -name "libnccl.so.2*" 2>/dev/null | head -n 1)
    [ -n "$nccl" ] && LD_LIBRARY_PATH=$(dirname "$nccl"):$LD_LIBRARY_PATH
    export LD_LIBRARY_PATH
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
    echo "== parity, models on cuda (f32)"
    EMBER_PARITY_DEVICE=cuda "$OUT/parity"
    echo "== every op on cuda against the CPU kernels (outputs and gradients)"
    "$OUT/device_check" cuda
    echo "== Ember and PyTorch side by side (scripts/torch_ref/cases.json)"
    if python3 -c 'import torch; assert torch.cuda.is_available()' 2>/dev/null; then
      for f in "${EMBER_PARITY_DIR:-../shared/parity}"/lightvit/*.json; do
        python3 -W ignore scripts/torch_ref/check_lightvit.py "$f" cuda || true
      done
      for f in "${EMBER_PARITY_DIR:-../shared/parity}"/greenmim/*.json; do
        python3 -W ignore scripts/torch_ref/check_greenmim.py "$f" cuda || true
      done
      torch_ok=1
      python3 -W ignore scripts/torch_ref/bench.py cuda > "$OUT/torch.jsonl" || true
    else
      echo "  (no PyTorch with CUDA on this machine: Ember's side only)"
      : > "$OUT/torch.jsonl"
      torch_ok=0
    fi
    EMBER_BENCH_DEVICE=cuda "$OUT/side_by_side" --bench > "$OUT/ember.jsonl"
    python3 scripts/torch_ref/compare.py "$OUT/ember.jsonl" "$OUT/torch.jsonl"
    for dtype in f32 bf16; do
      echo "== lightvit bench, cuda, $dtype"
      EMBER_BENCH_DEVICE=cuda EMBER_BENCH_DTYPE=$dtype "$OUT/lightvit_bench" --bench
    done
    for dtype in f32 bf16; do
      echo "== greenmim bench, cuda, $dtype (batch ${EMBER_BENCH_BATCH:-64} at 224 px)"
      EMBER_BENCH_DEVICE=cuda EMBER_BENCH_DTYPE=$dtype EMBER_BENCH_BATCH=${EMBER_BENCH_BATCH:-64} \
        "$OUT/greenmim_bench" --bench
      if [ "$torch_ok" = 1 ]; then
        echo "  -- the same cases in PyTorch (scripts/torch_ref/greenmim.py, checked against the fixture above)"
        EMBER_BENCH_BATCH=${EMBER_BENCH_BATCH:-64} python3 -W ignore scripts/torch_ref/greenmim_bench.py cuda $dtype || true
      fi
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
    echo "== ember launch --gpus 1 (NCCL) against one process: the same run, the same numbers"
    if [ -n "$nccl" ]; then
      tiny=(train --device cuda --data fashion-mnist-subset --epochs 2 --batch-size 64 --quiet
            --model-config '{"stem_type":"small","layers":[1,1],"channels":[16,32],"stem_width":16}')
      rm -rf "$OUT/alone" "$OUT/launched"
      "$OUT/ember" "${tiny[@]}" --out "$OUT/alone" | python3 scripts/launch_check.py summary alone
      "$OUT/ember" launch --gpus 1 -- "$OUT/ember" "${tiny[@]}" --out "$OUT/launched" \
        | python3 scripts/launch_check.py summary launched
      python3 scripts/launch_check.py compare "$OUT/alone" "$OUT/launched" || true
    else
      echo "  (no libnccl.so.2 on this machine: skipped)"
    fi
    ;;
  *)
    echo "usage: $0 build|run" >&2
    exit 2
    ;;
esac
