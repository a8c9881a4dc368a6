#!/usr/bin/env bash
# What --sync-bn changes under `ember launch`: LEWEL-BYOL (quick preset, a tiny ResNet,
# batch 16, one epoch of the bundled subset: 250 steps) as one process, as two ranks (each
# batch norm sees its shard of 8) and as two ranks with --sync-bn (every batch norm sees the
# batch of 16); prints each run's training loss and its distance from the one-process run.
#
#   scripts/sync_bn_check.sh                        # builds the release binaries first
#   EMBER_BIN=target/debug scripts/sync_bn_check.sh # binaries already built there
set -euo pipefail
cd "$(dirname "$0")/.."
bin="${EMBER_BIN:-}"
if [ -z "$bin" ]; then
  cargo build --release --workspace --quiet
  bin=target/release
fi
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
args=(--preset quick --base byol --batch-size 16 --epochs 1 --threads 1 --quiet
      --model-config '{"stem_type":"small","layers":[1,1],"channels":[4,8],"stem_width":4}'
      --dim 8 --hidden 16 --heads 2 --knn-bank 200)
"$bin/lewel-pretrain" "${args[@]}" --out "$out/alone" > /dev/null
"$bin/ember" launch --nproc 2 -- "$bin/lewel-pretrain" "${args[@]}" --out "$out/ranks" > /dev/null
"$bin/ember" launch --nproc 2 -- "$bin/lewel-pretrain" "${args[@]}" --sync-bn \
  --out "$out/synced" > /dev/null
python3 - "$out" <<'EOF'
import json, sys

def loss(run):
    with open(f"{sys.argv[1]}/{run}/metrics.jsonl") as f:
        return json.loads(f.readline())["train_loss"]

alone = loss("alone")
print(f"one process:             train loss {alone:.6f}")
for run, label in [("ranks", "two ranks"), ("synced", "two ranks, --sync-bn")]:
    x = loss(run)
    print(f"{label + ':':<24} train loss {x:.6f} ({abs(x - alone) / alone:.2e} relative)")
EOF
