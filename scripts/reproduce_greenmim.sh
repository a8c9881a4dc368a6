#!/usr/bin/env bash
# Reproduces README's GreenMIM table on Fashion-MNIST (32 px): the three-stage swin_nano_32
# pre-trained without labels by GreenMIM (greenmim-pretrain's fashion-mnist preset), and by
# the SimMIM-style dense baseline for the same wall time; each then fine-tuned with 10% of
# the labels (the same 6000 images for every run), beside the same Swin trained from scratch
# on those 10%. Then the table (scripts/greenmim_table.py).
#
#   scripts/reproduce_greenmim.sh [OUT_DIR]          # default runs/greenmim
#
# Environment: SEEDS (default "0 1 2"), EPOCHS (GreenMIM pre-training epochs, 10),
# FT_EPOCHS (fine-tuning epochs, 20), DATA (fashion-mnist), BIN (the binaries' folder;
# default: target/release, built first). SimMIM's epochs are GreenMIM's
# seed-0 pre-training time divided by one SimMIM epoch's time, measured once here (saved in
# OUT_DIR/simmim-epochs). A killed script continues where it stopped: run it again.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-runs/greenmim}"
seeds="${SEEDS:-0 1 2}"
epochs="${EPOCHS:-10}"
ft_epochs="${FT_EPOCHS:-20}"
data="${DATA:-fashion-mnist}"
if [ -z "${BIN:-}" ]; then cargo build --release --workspace --quiet; fi
bin="${BIN:-target/release}"
mkdir -p "$out"

# `pretrain DIR FLAGS...`: a pre-training run, resumed if it was started.
pretrain() {
  local dir="$1"; shift
  [ -f "$dir/summary.json" ] && return
  if [ -f "$dir/config.json" ]; then
    "$bin/greenmim-pretrain" --resume "$dir" > "$dir.json"
  else
    "$bin/greenmim-pretrain" --preset fashion-mnist --data "$data" --quiet --grid-every 0 \
      --out "$dir" "$@" > "$dir.json"
  fi
}

# `finetune DIR FLAGS...`: 10% of the labels, the same recipe for every start.
finetune() {
  local dir="$1"; shift
  [ -f "$dir/summary.json" ] && return
  if [ -f "$dir/config.json" ]; then
    "$bin/ember" train --resume "$dir" > "$dir.json"
  else
    "$bin/ember" train --data "$data" --image-size 32 --label-fraction 0.1 --label-seed 0 \
      --epochs "$ft_epochs" --batch-size 128 --optimizer adamw --lr 1e-3 --weight-decay 0.05 \
      --warmup-epochs 2 --label-smoothing 0.1 --crop-padding 2 --quiet --out "$dir" "$@" \
      > "$dir.json"
  fi
}

py_field() { python3 -c "import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])" "$@"; }

# GreenMIM, seed 0 first: its pre-training time sets SimMIM's budget.
first=$(echo "$seeds" | awk '{print $1}')
pretrain "$out/greenmim-s$first" --epochs "$epochs" --seed "$first"
if [ ! -f "$out/simmim-epochs" ]; then
  cal="$out/simmim-calibration"
  pretrain "$cal" --method simmim --epochs 1 --seed "$first"
  python3 - "$out/greenmim-s$first/summary.json" "$cal/metrics.jsonl" > "$out/simmim-epochs" <<'PY'
import json, sys
green = json.load(open(sys.argv[1]))["train_seconds"]
epoch = json.loads(open(sys.argv[2]).readline())["epoch_seconds"]
print(max(1, round(green / epoch)))
PY
fi
sim_epochs=$(cat "$out/simmim-epochs")
echo "SimMIM gets $sim_epochs epochs (the same pre-training time as $epochs GreenMIM epochs)" >&2

for seed in $seeds; do
  pretrain "$out/greenmim-s$seed" --epochs "$epochs" --seed "$seed"
  pretrain "$out/simmim-s$seed" --method simmim --epochs "$sim_epochs" --seed "$seed"
  for start in greenmim simmim; do
    finetune "$out/ft-$start-s$seed" --init "$out/$start-s$seed/backbone.safetensors" \
      --model-config '{"drop_path_rate": 0.1}' --seed "$seed"
  done
  finetune "$out/ft-scratch-s$seed" --arch swin_nano_32 \
    --model-config '{"drop_path_rate": 0.1, "norm_eps": 1e-6}' --seed "$seed"
  echo "done: seed $seed" >&2
done
scripts/greenmim_table.py "$out"
