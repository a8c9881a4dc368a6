#!/usr/bin/env bash
# Real-time factor and peak memory of `taylorse-enhance enhance` on one core (--threads 1),
# for the small and the official model (untrained weights: the cost does not depend on them),
# on pink noise of 1 and 10 minutes. RTF = processing seconds / audio seconds (below 1 is
# faster than real time); peak RSS from /usr/bin/time. Chunked enhancement (10 s pieces)
# keeps memory bounded: the 10-minute file should need little more than the 1-minute one
# beyond its own samples (10 min at 16 kHz = 38 MB per f32 copy).
#
#   scripts/bench_taylorse.sh [WORK_DIR]      # default runs/bench-taylorse
set -euo pipefail
cd "$(dirname "$0")/.."
work="${1:-runs/bench-taylorse}"
cargo build --release -p taylorse-enhance --quiet
bin=target/release/taylorse-enhance
mkdir -p "$work"

# Noise files (Python's standard library; deterministic).
for minutes in 1 10; do
  [ -f "$work/noise-${minutes}min.wav" ] || python3 - "$work/noise-${minutes}min.wav" "$minutes" <<'PY'
import array, random, sys, wave
rng, n = random.Random(0), int(sys.argv[2]) * 60 * 16000
b0 = b1 = b2 = 0.0
out = array.array("h")
for _ in range(n):
    w = rng.gauss(0, 0.1)
    b0, b1, b2 = 0.99765 * b0 + w * 0.0990460, 0.96300 * b1 + w * 0.2965164, 0.57000 * b2 + w * 1.0526913
    out.append(max(-32768, min(32767, int((b0 + b1 + b2 + w * 0.1848) * 0.3 * 32768))))
with wave.open(sys.argv[1], "wb") as f:
    f.setnchannels(1); f.setsampwidth(2); f.setframerate(16000); f.writeframes(out.tobytes())
PY
done

# A checkpoint per model: one training step on the bundled clips.
for model in small official; do
  [ -f "$work/$model/best.safetensors" ] || "$bin" train --model "$model" --data assets/speech/train \
    --out "$work/$model" --steps 1 --batch-size 1 --chunk-seconds 0.5 --valid-count 1 --quiet > /dev/null
done

printf "| model | audio | RTF (1 core) | peak RSS (MB) |\n|---|---|---|---|\n"
for model in small official; do
  for minutes in 1 10; do
    [ "$model" = official ] && [ "$minutes" = 10 ] && [ -z "${LONG_OFFICIAL:-}" ] && continue
    /usr/bin/time -f "%M" -o "$work/rss" "$bin" enhance "$work/noise-${minutes}min.wav" \
      -o "$work/out" --model "$work/$model" --threads 1 > "$work/result.json"
    python3 -c 'import json, sys
r = json.load(open(sys.argv[1]))
rtf, rss = r["real_time_factor"], int(open(sys.argv[4]).read()) / 1024
print(f"| {sys.argv[2]} | {sys.argv[3]} min | {rtf:.3f} | {rss:.0f} |")' \
      "$work/result.json" "$model" "$minutes" "$work/rss"
  done
done
