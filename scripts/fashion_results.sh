#!/usr/bin/env bash
# Reproduces README's results table: the documented Fashion-MNIST recipe (ResNet-18 layout,
# small-image stem, stage widths 16-32-64-128, 20 epochs), then one table row from the
# run's summary. Usage: scripts/fashion_results.sh [SEED] [RUN_DIR]
# About 100 minutes on 2 cores; a killed run continues with `ember train --resume RUN_DIR`.
set -euo pipefail
cd "$(dirname "$0")/.."
seed="${1:-0}"
out="${2:-runs/fashion-recipe-seed$seed}"
cargo build --release --quiet
if [ -f "$out/config.json" ]; then
  target/release/ember train --resume "$out" > "$out.json"
else
  target/release/ember train --arch resnet \
    --model-config '{"stem_type": "small", "channels": [16, 32, 64, 128]}' \
    --data fashion-mnist --epochs 20 --batch-size 128 --optimizer sgd --lr 0.1 --momentum 0.9 \
    --nesterov --weight-decay 5e-4 --schedule cosine --warmup-epochs 1 --crop-padding 2 \
    --seed "$seed" --out "$out" > "$out.json"
fi
scripts/results_row.py "$out"
