#!/usr/bin/env bash
# Reproduces README's self-supervised table on Fashion-MNIST: one small ResNet (8-16-32, one
# block per stage) pre-trained with ReSSL, MoCo, LEWEL on MoCo, BYOL and LEWEL on BYOL for
# the same epochs, then probed with `ember linear-eval` (frozen backbone, 100 epochs);
# beside them the same network at random initialisation and trained with labels for the
# same epochs. Then the table (scripts/ssl_table.py).
#
#   scripts/reproduce_ssl.sh [OUT_DIR]          # default runs/ssl
#
# Environment: SEEDS (default "0 1 2"), EPOCHS (5), METHODS ("ressl moco lewel-moco byol
# lewel-byol"), DATA (fashion-mnist). The recipes are the tools' fashion-mnist presets
# (specs/ssl_rep.md section 5). A killed script continues where it stopped: run the same
# command again.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-runs/ssl}"
seeds="${SEEDS:-0 1 2}"
epochs="${EPOCHS:-5}"
methods="${METHODS:-ressl moco lewel-moco byol lewel-byol}"
data="${DATA:-fashion-mnist}"
cargo build --release --workspace --quiet
bin=target/release
net='{"stem_type": "small", "layers": [1, 1, 1], "channels": [8, 16, 32], "stem_width": 8}'
mkdir -p "$out"

# `probe BACKBONE_FLAGS... > FILE`, written atomically.
probe() {
  local file="$1"; shift
  [ -f "$file" ] && return
  "$bin/ember" linear-eval --data "$data" "$@" > "$file.tmp"
  mv "$file.tmp" "$file"
}

pretrain_cmd() {
  case "$1" in
    ressl) echo "$bin/ressl-pretrain --preset fashion-mnist" ;;
    byol) echo "$bin/lewel-pretrain --preset fashion-mnist --no-align" ;;
    lewel-byol) echo "$bin/lewel-pretrain --preset fashion-mnist" ;;
    moco) echo "$bin/lewel-pretrain --preset fashion-mnist-moco --no-align" ;;
    lewel-moco) echo "$bin/lewel-pretrain --preset fashion-mnist-moco" ;;
    *) echo "unknown method $1" >&2; exit 2 ;;
  esac
}

for seed in $seeds; do
  probe "$out/random-s$seed.json" --random-arch resnet --model-config "$net" --seed "$seed"

  # The same network trained with labels for the same epochs, probed the same way.
  dir="$out/supervised-s$seed"
  if [ ! -f "$dir/summary.json" ]; then
    if [ -f "$dir/config.json" ]; then
      "$bin/ember" train --resume "$dir" > "$dir.json"
    else
      "$bin/ember" train --model-config "$net" --data "$data" --epochs "$epochs" \
        --batch-size 256 --lr 0.1 --weight-decay 5e-4 --warmup-epochs 0.25 --crop-padding 2 \
        --seed "$seed" --quiet --out "$dir" > "$dir.json"
    fi
  fi
  probe "$dir/linear.json" --backbone "$dir/last.safetensors" --seed "$seed"

  for method in $methods; do
    dir="$out/$method-s$seed"
    if [ ! -f "$dir/summary.json" ]; then
      if [ -f "$dir/config.json" ]; then
        $(pretrain_cmd "$method") --resume "$dir" > "$dir.json"
      else
        $(pretrain_cmd "$method") --data "$data" --epochs "$epochs" --seed "$seed" --quiet \
          --out "$dir" > "$dir.json"
      fi
    fi
    probe "$dir/linear.json" --backbone "$dir/backbone.safetensors" --seed "$seed"
    echo "done: $dir" >&2
  done
done
scripts/ssl_table.py "$out"
