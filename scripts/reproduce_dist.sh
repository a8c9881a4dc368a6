#!/usr/bin/env bash
# Reproduces README's DIST table on Fashion-MNIST: trains teachers of increasing strength
# with `ember train`, then one student with CE (labels only), KD and DIST from each teacher
# over several seeds with `dist-distill`, and prints the table (scripts/dist_table.py).
#
#   scripts/reproduce_dist.sh [OUT_DIR]          # default runs/dist
#
# Environment: SEEDS (default "0 1 2"), TEACHER_EPOCHS (10), STUDENT_EPOCHS (10),
# DATA (fashion-mnist). About 95 minutes on 2 cores with the defaults (measured with other
# runs sharing the cores, and seed 2's students in a second copy, `SEEDS=2`, started once
# the teachers had finished: two copies must never share a run). A killed script
# continues where it stopped: run the same command again.
#
# Students train without random crop or flip (the same inputs every epoch), so the teacher's
# logits are computed once per run (--cache-teacher); CE, KD and DIST see identical data.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-runs/dist}"
seeds="${SEEDS:-0 1 2}"
data="${DATA:-fashion-mnist}"
cargo build --release --workspace --quiet
bin=target/release

sgd=(--data "$data" --batch-size 128 --optimizer sgd --lr 0.1 --momentum 0.9 --nesterov
     --weight-decay 5e-4 --schedule cosine --warmup-epochs 1 --quiet)
small='{"stem_type": "small"'
# Teachers, weakest first: name and ResNet config.
teachers=(
  "resnet-8-64|$small, \"layers\": [1, 1, 1, 1], \"channels\": [8, 16, 32, 64], \"stem_width\": 8}"
  "resnet18-16-128|$small, \"layers\": [2, 2, 2, 2], \"channels\": [16, 32, 64, 128], \"stem_width\": 16}"
)
student="$small, \"layers\": [1, 1], \"channels\": [8, 16], \"stem_width\": 8}"

# `run DIR TOOL [train] ARGS...`: trains into DIR unless DIR finished; resumes DIR if it
# was started.
run() {
  local dir="$1" tool=("$bin/$2"); shift 2
  if [ "${1:-}" = train ]; then tool+=(train); shift; fi
  if [ -f "$dir/summary.json" ]; then return; fi
  if [ -f "$dir/config.json" ]; then
    "${tool[@]}" --resume "$dir" > "$dir.json"
  else
    mkdir -p "$(dirname "$dir")"
    "${tool[@]}" "$@" --out "$dir" > "$dir.json"
  fi
  echo "done: $dir ($(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["final_eval"]["top1"])' "$dir/summary.json")%)" >&2
}

for t in "${teachers[@]}"; do
  name="${t%%|*}"
  run "$out/teachers/$name" ember train --arch resnet --model-config "${t#*|}" \
    --epochs "${TEACHER_EPOCHS:-10}" "${sgd[@]}" --crop-padding 2 --seed 0
done
for seed in $seeds; do
  common=(--student resnet --student-config "$student" --epochs "${STUDENT_EPOCHS:-10}"
          "${sgd[@]}" --crop-padding 0 --no-flip --seed "$seed")
  run "$out/students/ce-s$seed" dist-distill --loss ce "${common[@]}"
  for t in "${teachers[@]}"; do
    name="${t%%|*}"
    for loss in kd dist; do
      run "$out/students/$name-$loss-s$seed" dist-distill --loss "$loss" --cache-teacher \
        --teacher "$out/teachers/$name/best.safetensors" "${common[@]}"
    done
  done
done
scripts/dist_table.py "$out"
