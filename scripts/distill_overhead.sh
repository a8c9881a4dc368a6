#!/usr/bin/env bash
# Distillation overhead: the training step time of `dist-distill` against `ember train` for
# the same student, data and recipe, with the teacher run live each step and with its logits
# cached (--cache-teacher), as ratios measured in one script. The teacher is the
# reproduce_dist.sh strong teacher's architecture (ResNet-18 layout, widths 16-128); only its
# size matters here, so it trains for one epoch.
#
#   scripts/distill_overhead.sh [DATA] [EPOCHS]      # default fashion-mnist-subset, 3
#
# Each run's images/s is the mean over its epochs after the first (warm); the whole run's
# wall time (setup, the teacher's evaluation and cache pass, per-epoch evaluation) is
# printed beside it.
set -euo pipefail
cd "$(dirname "$0")/.."
data="${1:-fashion-mnist-subset}"
epochs="${2:-3}"
cargo build --release --workspace --quiet
bin=target/release
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

teacher='{"stem_type": "small", "layers": [2, 2, 2, 2], "channels": [16, 32, 64, 128], "stem_width": 16}'
student='{"stem_type": "small", "layers": [1, 1], "channels": [8, 16], "stem_width": 8}'
same=(--data "$data" --epochs "$epochs" --crop-padding 0 --no-flip --quiet --checkpoint-secs 0)
"$bin/ember" train --arch resnet --model-config "$teacher" --data "$data" --epochs 1 --quiet \
  --out "$tmp/teacher" > /dev/null 2>&1

# `timed NAME TOOL ARGS...`: runs into $tmp/NAME and records its wall time.
timed() {
  local name="$1"; shift
  SECONDS=0
  "$@" --out "$tmp/$name" > /dev/null 2>&1
  echo "$SECONDS" > "$tmp/$name.seconds"
}
timed train "$bin/ember" train --arch resnet --model-config "$student" "${same[@]}"
distil=(--teacher "$tmp/teacher/best.safetensors" --student resnet --student-config "$student" "${same[@]}")
timed live "$bin/dist-distill" "${distil[@]}"
timed cached "$bin/dist-distill" "${distil[@]}" --cache-teacher

python3 - "$tmp" "$data" <<'PY'
import json, os, sys
tmp, data = sys.argv[1], sys.argv[2]
def measured(run):
    recs = [json.loads(l) for l in open(os.path.join(tmp, run, "metrics.jsonl")) if l.strip()]
    warm = recs[1:] or recs
    wall = int(open(os.path.join(tmp, run + ".seconds")).read())
    return sum(r["images_per_s"] for r in warm) / len(warm), wall
base, base_wall = measured("train")
print(f"data: {data}; student ResNet blocks 1-1 widths 8-16; teacher ResNet-18 layout widths 16-128")
for name, run in [("ember train", "train"), ("dist-distill, live teacher", "live"),
                  ("dist-distill --cache-teacher", "cached")]:
    ips, wall = measured(run)
    print(f"{name:30} {ips:7.0f} img/s  step time {base / ips:5.2f}x  whole run {wall} s")
PY
