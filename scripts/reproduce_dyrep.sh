#!/usr/bin/env bash
# Reproduces README's DyRep table on Fashion-MNIST: one small ResNet trained plain, with
# every 3x3 conv a RepVGG block from the start (--mode repvgg), and with DyRep, for the same
# epochs over several seeds; each final network deployed (merged into the plain
# architecture) and timed against the plain network; then the table (scripts/dyrep_table.py) and structure.png of the
# first DyRep run.
#
#   scripts/reproduce_dyrep.sh [OUT_DIR]          # default runs/dyrep
#
# Environment: SEEDS (default "0 1 2"), EPOCHS (10), MODES ("plain repvgg dyrep"), DATA
# (fashion-mnist). The recipe is the spec's small-data one (specs/ssl_rep.md section 5): SGD
# momentum 0.9 without Nesterov, lr 0.1, cosine, batch 128, weight decay 1e-4, crop with 2 px
# padding and flips; DyRep adjusts after every epoch up to 5/6 of the run. A killed script
# continues where it stopped: run the same command again.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-runs/dyrep}"
seeds="${SEEDS:-0 1 2}"
modes="${MODES:-plain repvgg dyrep}"
cargo build --release --workspace --quiet
bin=target/release/dyrep-train
net='{"stem_type": "small", "layers": [1, 1, 1], "channels": [8, 16, 32], "stem_width": 8}'
recipe=(--data "${DATA:-fashion-mnist}" --batch-size 128 --optimizer sgd --lr 0.1 --momentum 0.9
        --weight-decay 1e-4 --schedule cosine --warmup-epochs 0 --crop-padding 2 --quiet)
mkdir -p "$out"
for seed in $seeds; do
  for mode in $modes; do
    dir="$out/$mode-s$seed"
    if [ ! -f "$dir/summary.json" ]; then
      if [ -f "$dir/config.json" ]; then
        "$bin" --resume "$dir" > "$dir.json"
      else
        "$bin" --mode "$mode" --model-config "$net" --epochs "${EPOCHS:-10}" "${recipe[@]}" \
          --seed "$seed" --out "$dir" > "$dir.json"
      fi
    fi
    # Deployed, then timed against the plain run of the same seed in the same process.
    plain="$out/plain-s$seed/last.safetensors"
    if [ ! -f "$dir/deploy.json" ] && [ -f "$plain" ]; then
      "$bin" deploy "$dir/last.safetensors" --out "$dir/deployed.safetensors" --compare "$plain" \
        > "$dir/deploy.json.tmp"
      mv "$dir/deploy.json.tmp" "$dir/deploy.json"
    fi
    echo "done: $dir" >&2
  done
done
scripts/dyrep_table.py "$out"
