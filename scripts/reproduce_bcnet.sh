#!/usr/bin/env bash
# Reproduces README's BCNet table on Fashion-MNIST with the spec's scaled-down search space:
# Channel-Bench-Macro's MobileNet at 1/8 of its widths (cbm_mobilenet_small, 2.95 MMACs at
# full width), K = 8 bins, BCNetV2's m = 2.
#
# 1. Supernets: BC (left and right paths) for EPOCHS epochs and the left-only UA baseline
#    for 2 x EPOCHS, the same number of sub-network passes; their images/s are in the runs.
# 2. Ranking: ARCHS random width vectors, scored by both supernets and trained from scratch
#    for SCRATCH_EPOCHS each; Kendall tau-b between scores and test accuracies.
# 3. Search at 50% of the largest FLOPs with the BC supernet (from BCNet's prior) against
#    uniform width scaling at the same FLOPs, both trained from scratch for FINAL_EPOCHS.
# Then the table (scripts/bcnet_table.py).
#
#   scripts/reproduce_bcnet.sh [OUT_DIR]          # default runs/bcnet
#
# Environment: SEEDS (final trainings, default "0 1 2"), EPOCHS (4), ARCHS (20),
# SCRATCH_EPOCHS (2), FINAL_EPOCHS (10), DATA (fashion-mnist), BIN (default:
# target/release, built first). A killed script continues where it stopped: run it again.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-runs/bcnet}"
seeds="${SEEDS:-0 1 2}"
epochs="${EPOCHS:-4}"
data="${DATA:-fashion-mnist}"
if [ -z "${BIN:-}" ]; then cargo build --release --workspace --quiet; fi
bin="${BIN:-target/release}"
mkdir -p "$out/archs" "$out/scratch" "$out/final"

# The Channel-Bench-Macro CIFAR recipe (SGD 0.1, cosine, wd 5e-4, no label smoothing).
recipe=(--data "$data" --batch-size 128 --optimizer sgd --lr 0.1 --momentum 0.9 --nesterov
        --weight-decay 5e-4 --schedule cosine --warmup-epochs 1 --crop-padding 2 --quiet)

source scripts/lib/resumable_run.sh

supernet=(--arch cbm_mobilenet_small --bins 8 --min-bins 2 --knn-bank 2000 "${recipe[@]}")
run "$out/bc" bcnet-search train "${supernet[@]}" --coupling bc --epochs "$epochs"
run "$out/ua" bcnet-search train "${supernet[@]}" --coupling ua --epochs $((2 * epochs))

# Random width vectors, scored by the BC supernet, then the same ones by the UA supernet.
score=(--data "$data" --seed 0)
[ -s "$out/scores-bc.jsonl" ] || "$bin/bcnet-search" score --supernet "$out/bc" "${score[@]}" \
  --random "${ARCHS:-20}" > "$out/scores-bc.jsonl"
mapfile -t vectors < <(python3 -c 'import json,sys
for l in open(sys.argv[1]): print(",".join(map(str, json.loads(l)["bins"])))' "$out/scores-bc.jsonl")
widths=(); for v in "${vectors[@]}"; do widths+=(--widths "$v"); done
[ -s "$out/scores-ua.jsonl" ] || "$bin/bcnet-search" score --supernet "$out/ua" "${score[@]}" \
  "${widths[@]}" > "$out/scores-ua.jsonl"

# Each from scratch (its model config from the scores file).
python3 - "$out" <<'EOF'
import json, sys
out = sys.argv[1]
for i, line in enumerate(open(f"{out}/scores-bc.jsonl")):
    w = json.loads(line)["widths"]
    cfg = {"layout": "mobilenet", "widths": w, "in_chans": 1, "num_classes": 10}
    json.dump(cfg, open(f"{out}/archs/{i:02d}.json", "w"))
EOF
for arch in "$out"/archs/*.json; do
  name=$(basename "$arch" .json)
  run "$out/scratch/$name" ember train --arch cbm --model-config "$arch" "${recipe[@]}" \
    --epochs "${SCRATCH_EPOCHS:-2}" --seed 0
done

# The search at 50% FLOPs and the uniform baseline, each trained from scratch per seed.
[ -f "$out/search/arch.json" ] || "$bin/bcnet-search" search --supernet "$out/bc" \
  --data "$data" --flops-ratio 0.5 --seed 0 --out "$out/search" > "$out/search.json"
"$bin/bcnet-search" uniform --flops-ratio 0.5 -o "$out/uniform.json" > "$out/uniform-report.json"
for seed in $seeds; do
  for method in search uniform; do
    config="$out/$method.json"; [ "$method" = search ] && config="$out/search/arch.json"
    run "$out/final/$method-s$seed" ember train --arch cbm --model-config "$config" \
      "${recipe[@]}" --epochs "${FINAL_EPOCHS:-10}" --seed "$seed"
  done
done
scripts/bcnet_table.py "$out"
