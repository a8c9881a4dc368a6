#!/usr/bin/env bash
# Reproduces README's TaylorSENet table: the small TaylorSENet (official structure, narrow
# widths, three Taylor orders) against its 0th-order-only ablation (--order 0: the magnitude
# filter alone), trained with the same budget on the corpus of scripts/setup_speech.sh, then
# both scored on held-out speakers and noise types at -5, 0, 5 and 10 dB: SI-SDR, STOI and
# ESTOI (taylorse-enhance eval) and PESQ-WB with CSIG/CBAK/COVL (scripts/eval_pesq.py, if its
# Python packages are installed).
#
#   scripts/reproduce_taylorse.sh [OUT_DIR]        # default runs/taylorse
#
# Environment: DATA (default data/speech), STEPS (1500), BATCH (8), CHUNK (2 seconds), LR
# (1e-3), COUNT (mixtures per SNR, 40), SEED (0), BIN (default: target/release, built first).
# A killed script continues where it stopped: run it again.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-runs/taylorse}"
data="${DATA:-data/speech}"
[ -d "$data/train/clean" ] || { echo "no corpus at $data: run scripts/setup_speech.sh first" >&2; exit 2; }
if [ -z "${BIN:-}" ]; then cargo build --release -p taylorse-enhance --quiet; fi
bin="${BIN:-target/release}"
mkdir -p "$out"
source scripts/lib/resumable_run.sh

budget=(--data "$data/train" --model small --steps "${STEPS:-1500}" --batch-size "${BATCH:-8}"
        --chunk-seconds "${CHUNK:-2}" --lr "${LR:-1e-3}" --seed "${SEED:-0}" --quiet)
run "$out/taylor" taylorse-enhance train "${budget[@]}"
run "$out/order0" taylorse-enhance train "${budget[@]}" --order 0

for model in taylor order0; do
  [ -f "$out/eval-$model.json" ] || "$bin/taylorse-enhance" eval --model "$out/$model" \
    --data "$data/test" --count "${COUNT:-40}" --write "$out/wavs-$model" \
    --plot "$out/plots-$model" > "$out/eval-$model.json"
  if [ ! -f "$out/pesq-$model.json" ] && python3 -c "import importlib.util as u, sys
sys.exit(not all(u.find_spec(m) for m in ('pesq', 'pysepm_evo', 'scipy', 'numpy')))"; then
    python3 scripts/eval_pesq.py "$out/wavs-$model" > "$out/pesq-$model.json"
  fi
done
python3 scripts/taylorse_table.py "$out"
