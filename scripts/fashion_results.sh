#!/usr/bin/env bash
# Reproduces a row of README's Fashion-MNIST results table: trains one documented recipe,
# then prints the row from the run directory (scripts/results_row.py).
#
#   scripts/fashion_results.sh RECIPE [SEED] [RUN_DIR]
#
# RECIPE:
#   resnet18  the engine's recipe: ResNet-18 layout, small stem, widths 16-32-64-128, SGD
#             Nesterov lr 0.1, 20 epochs (0.035 GMACs; about 100 minutes on 2 cores)
#   resnet10  the ResNet baseline near LightViT's FLOPs: blocks 1-1-1-1, a 16-wide stem, the
#             same recipe for 30 epochs (0.013 GMACs; about 55 minutes on 2 cores)
#   lightvit  lightvit-train's fashion-mnist preset: lightvit_nano_32, AdamW, 60 epochs
#             (0.020 GMACs; about 2.5 hours on 2 cores: 125-140 s an epoch on the
#             2-core AMD EPYC VM)
# A killed run continues where it stopped: run the same command again.
set -euo pipefail
cd "$(dirname "$0")/.."
recipe="${1:?usage: $0 resnet18|resnet10|lightvit [SEED] [RUN_DIR]}"
seed="${2:-0}"
out="${3:-runs/fashion-$recipe-seed$seed}"
cargo build --release --workspace --quiet
sgd=(--data fashion-mnist --batch-size 128 --optimizer sgd --lr 0.1 --momentum 0.9 --nesterov
     --weight-decay 5e-4 --schedule cosine --warmup-epochs 1 --crop-padding 2)
if [ -f "$out/config.json" ]; then
  case "$recipe" in
    lightvit) target/release/lightvit-train --resume "$out" > "$out.json" ;;
    *) target/release/ember train --resume "$out" > "$out.json" ;;
  esac
else
  case "$recipe" in
    resnet18)
      target/release/ember train --arch resnet \
        --model-config '{"stem_type": "small", "channels": [16, 32, 64, 128]}' \
        --epochs 20 "${sgd[@]}" --seed "$seed" --out "$out" > "$out.json" ;;
    resnet10)
      target/release/ember train --arch resnet \
        --model-config '{"stem_type": "small", "layers": [1, 1, 1, 1], "channels": [16, 32, 64, 128], "stem_width": 16}' \
        --epochs 30 "${sgd[@]}" --seed "$seed" --out "$out" > "$out.json" ;;
    lightvit)
      target/release/lightvit-train --preset fashion-mnist --seed "$seed" --out "$out" > "$out.json" ;;
    *) echo "unknown recipe $recipe (resnet18, resnet10, lightvit)" >&2; exit 2 ;;
  esac
fi
scripts/results_row.py "$out"
