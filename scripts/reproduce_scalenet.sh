#!/usr/bin/env bash
# Reproduces README's ScaleNet table on Fashion-MNIST with the spec's scaled-down space
# (section 4.3: stem 8, four stages, kernels 3/5, base 0.3 MMACs at 20 px, scales 2x and 4x
# up to 28 px).
#
# 1. The super-supernet (BC coupling, hierarchical sampling) for EPOCHS epochs.
# 2. MCEA (the joint search of base and scaling) and the compound baseline (the base
#    searched at stage 0 alone, scaled by EfficientNet's rule), both on the same supernet
#    with the same GA budget; their scoring time is in family.json.
# 3. Every member of both families (base, 2x, 4x) trained from scratch with the same recipe
#    for FINAL_EPOCHS, per seed.
# Then the table (scripts/scalenet_table.py) and accuracy_vs_flops.png.
#
#   scripts/reproduce_scalenet.sh [OUT_DIR]          # default runs/scalenet
#
# Environment: SEEDS (default "0 1 2"), EPOCHS (4), FINAL_EPOCHS (5), DATA (fashion-mnist),
# COUPLING (bc: the official asynchronous coupling; bc-sync; left), SEARCH_FLAGS (extra
# flags for both searches), BIN (default: target/release, built first).
# A killed script continues where it stopped: run it again.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-runs/scalenet}"
seeds="${SEEDS:-0 1 2}"
data="${DATA:-fashion-mnist}"
if [ -z "${BIN:-}" ]; then cargo build --release --workspace --quiet; fi
bin="${BIN:-target/release}"
mkdir -p "$out/final"

# SGD with Nesterov momentum, cosine with a warm-up epoch, batch 128 (spec 4.3).
recipe=(--data "$data" --batch-size 128 --optimizer sgd --lr 0.1 --momentum 0.9 --nesterov
        --schedule cosine --warmup-epochs 1 --crop-padding 2 --quiet)

source scripts/lib/resumable_run.sh

# The official weight decay 4e-5 (conv weights 2x, BN and biases none).
run "$out/supernet" scalenet-search train --arch scalenet_supernet_fashion "${recipe[@]}" \
  --weight-decay 4e-5 --epochs "${EPOCHS:-4}" --knn-bank 2000 --coupling "${COUPLING:-bc}"

search=(--supernet "$out/supernet" --data "$data" --seed 0 ${SEARCH_FLAGS:-})
[ -f "$out/mcea/family.json" ] || "$bin/scalenet-search" search "${search[@]}" \
  --out "$out/mcea" > "$out/mcea.json"
[ -f "$out/compound/family.json" ] || "$bin/scalenet-search" search "${search[@]}" \
  --baseline compound --out "$out/compound" > "$out/compound.json"

scales=$(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))["members"]))' \
  "$out/mcea/family.json")
for seed in $seeds; do
  for method in mcea compound; do
    for ((scale = 0; scale < scales; scale++)); do
      config="$out/$method/scale-$scale.json"
      [ -f "$config" ] || "$bin/scalenet-search" export --family "$out/$method" \
        --scale "$scale" -o "$config" > /dev/null
      run "$out/final/$method-$scale-s$seed" ember train --arch scalenet --model-config "$config" \
        "${recipe[@]}" --weight-decay 5e-4 --epochs "${FINAL_EPOCHS:-5}" --seed "$seed"
    done
  done
done

python3 scripts/scalenet_table.py "$out"
"$bin/scalenet-search" plot --points "$out/points.json" -o "$out/accuracy_vs_flops.png"
