#!/usr/bin/env bash
# Supernet training throughput, BC (left and right paths per step) vs UA (the left path only),
# measured in one script: ROUNDS alternating one-epoch runs of each on the same data, so both
# see the same machine state; prints each run's images/s and the median ratio.
#
#   scripts/bench_bcnet_throughput.sh            # DATA (fashion-mnist-subset), ROUNDS (3), BIN
set -euo pipefail
cd "$(dirname "$0")/.."
data="${DATA:-fashion-mnist-subset}"
if [ -z "${BIN:-}" ]; then cargo build --release -p bcnet-search --quiet; fi
bin="${BIN:-target/release}"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for round in $(seq "${ROUNDS:-3}"); do
  for coupling in bc ua; do
    "$bin/bcnet-search" train --arch cbm_mobilenet_small --bins 8 --min-bins 2 --coupling "$coupling" \
      --data "$data" --epochs 1 --batch-size 128 --optimizer sgd --lr 0.1 --momentum 0.9 --nesterov \
      --weight-decay 5e-4 --knn-bank 256 --quiet --out "$tmp/$coupling-$round" > "$tmp/$coupling-$round.json"
  done
done
python3 - "$tmp" "${ROUNDS:-3}" <<'PY'
import json, statistics, sys
tmp, rounds = sys.argv[1], int(sys.argv[2])
ips = {c: [json.load(open(f"{tmp}/{c}-{r}.json"))["images_per_s"] for r in range(1, rounds + 1)] for c in ("bc", "ua")}
for c, v in ips.items():
    print(f"{c}: images/s {', '.join(f'{x:.0f}' for x in v)} (median {statistics.median(v):.0f})")
ratio = statistics.median(b / u for b, u in zip(ips["bc"], ips["ua"]))
print(f"BC / UA images per second: {ratio:.2f} (each BC step trains two paths: per path {2 * ratio:.2f}x)")
PY
