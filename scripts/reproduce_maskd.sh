#!/usr/bin/env bash
# Reproduces README's MasKD table on FashionSeg (64 px canvases of 1-4 Fashion-MNIST items,
# 11 classes): a seg_resnet18 teacher trained with `ember train`, stage 1 of MasKD (8
# receptive tokens on the frozen teacher's logits) with its mask pictures before and after,
# then a seg_resnet_quarter student over several seeds with labels only, pixel-wise KD,
# DIST's segmentation variant, plain logit MSE (MasKD's loss with one all-ones mask) and
# MasKD, the same recipe for all. Then the table (scripts/maskd_table.py).
#
#   scripts/reproduce_maskd.sh [OUT_DIR]          # default runs/maskd
#
# Environment: SEEDS (default "0 1 2"), TEACHER_EPOCHS (10), STUDENT_EPOCHS (6),
# TOKEN_ITERATIONS (2000), DATA (fashion-seg:train=8000; 2000 test canvases), BIN (the
# binaries' folder; default: target/release, built first). A killed script continues where
# it stopped: run the same command again (two copies must never share a run).
#
# The student sees the same canvases every epoch (FashionSeg draws them from the seed and
# the index alone), so the teacher's logits are computed once per run (--cache-teacher).
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-runs/maskd}"
seeds="${SEEDS:-0 1 2}"
data="${DATA:-fashion-seg:train=8000}"
if [ -z "${BIN:-}" ]; then cargo build --release --workspace --quiet; fi
bin="${BIN:-target/release}"
mkdir -p "$out"

sgd=(--data "$data" --batch-size 32 --optimizer sgd --lr 0.05 --momentum 0.9
     --weight-decay 5e-4 --schedule cosine --warmup-epochs 1)

# `run DIR TOOL SUBCOMMAND FLAGS...`: runs into DIR unless DIR finished; resumes DIR if
# it was started.
run() {
  local dir="$1" tool=("$bin/$2"); shift 2
  case "${1:-}" in train|tokens|distill) tool+=("$1"); shift ;; esac
  if [ -f "$dir/summary.json" ]; then return; fi
  if [ -f "$dir/config.json" ] || [ -f "$dir/last.safetensors" ]; then
    "${tool[@]}" --resume "$dir" --quiet > "$dir.json"
  else
    mkdir -p "$(dirname "$dir")"
    "${tool[@]}" "$@" --quiet --out "$dir" > "$dir.json"
  fi
  echo "done: $dir" >&2
}

run "$out/teacher" ember train --arch seg_resnet18 --epochs "${TEACHER_EPOCHS:-10}" \
  "${sgd[@]}" --seed 0
teacher="$out/teacher/best.safetensors"

run "$out/tokens" maskd-distill tokens --teacher "$teacher" --data "$data" \
  --iterations "${TOKEN_ITERATIONS:-2000}" --seed 0
for when in before after; do
  tokens=()
  if [ "$when" = after ]; then tokens=(--tokens "$out/tokens/tokens.safetensors"); fi
  [ -f "$out/masks-$when.json" ] || "$bin/maskd-distill" masks --teacher "$teacher" \
    --data "$data" "${tokens[@]}" --count 8 --out "$out/masks-$when.png" > "$out/masks-$when.json"
done

for seed in $seeds; do
  common=(--student seg_resnet_quarter --epochs "${STUDENT_EPOCHS:-6}" "${sgd[@]}"
          --seed "$seed")
  run "$out/students/none-s$seed" maskd-distill distill --loss none "${common[@]}"
  for loss in kd dist mse maskd; do
    tokens=()
    if [ "$loss" = maskd ]; then tokens=(--tokens "$out/tokens/tokens.safetensors"); fi
    run "$out/students/$loss-s$seed" maskd-distill distill --loss "$loss" \
      --teacher "$teacher" "${tokens[@]}" --cache-teacher "${common[@]}"
  done
done
scripts/maskd_table.py "$out"
