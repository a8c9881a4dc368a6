#!/usr/bin/env bash
# Two builds of a training tool on the same command, alternating: the images per second
# each reaches in SECONDS of training, their ratio, and whether they print the same losses
# (the same seed gives the same batches, so two builds that compute alike agree step for
# step). Run it on an otherwise idle machine.
#
#   scripts/ab_speed.sh OLD_BIN NEW_BIN SECONDS [ROUNDS] -- TOOL_ARGS...
#
# For example, against the build of an older revision:
#   git worktree add /tmp/ember-old REV
#   (cd /tmp/ember-old && cargo build --release --workspace)
#   scripts/ab_speed.sh /tmp/ember-old/target/release/lightvit-train \
#     target/release/lightvit-train 80 -- --preset fashion-mnist
set -euo pipefail
usage="usage: $0 OLD_BIN NEW_BIN SECONDS [ROUNDS] -- TOOL_ARGS..."
old="${1:?$usage}"; new="${2:?$usage}"; secs="${3:?$usage}"; shift 3
rounds=1
if [ "${1:-}" != "--" ]; then rounds="${1:?$usage}"; shift; fi
[ "${1:-}" = "--" ] || { echo "$usage" >&2; exit 2; }
shift
args=("$@")
for bin in "$old" "$new"; do
  [ -x "$bin" ] || { echo "error: $bin is not an executable" >&2; exit 2; }
done
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# One timed run of BIN ($1); its progress lines ("epoch E/N S/T loss L ... R img/s (Ts)")
# go to the file $2.
run() {
  rm -rf "$work/out"
  { timeout "$secs" "$1" "${args[@]}" --out "$work/out" 2>&1 >/dev/null || true; } \
    | tr '\r' '\n' | grep ' img/s ' > "$2" || true
}

for r in $(seq "$rounds"); do
  run "$old" "$work/old$r"
  run "$new" "$work/new$r"
done

python3 - "$work" "$rounds" <<'EOF'
import re, statistics, sys
work, rounds = sys.argv[1], int(sys.argv[2])
line = re.compile(r"epoch (\d+)/\d+ (\d+)/\d+ loss (\S+) .* ([\d.]+) img/s")
def read(path):
    rows = [line.search(l) for l in open(path)]
    return [(int(m[1]), int(m[2]), m[3], float(m[4])) for m in rows if m]
ratios, agree, differ = [], 0, []
for r in range(1, rounds + 1):
    a, b = read(f"{work}/old{r}"), read(f"{work}/new{r}")
    if not a or not b:
        sys.exit(f"round {r}: a run printed no progress (too few SECONDS?)")
    print(f"round {r}: old {a[-1][3]:.0f} img/s, new {b[-1][3]:.0f} img/s")
    ratios.append(b[-1][3] / a[-1][3])
    losses_a = {(e, s): l for e, s, l, _ in a}
    for e, s, l, _ in b:
        if (e, s) in losses_a:
            if losses_a[(e, s)] == l:
                agree += 1
            else:
                differ.append(f"epoch {e} step {s}: {losses_a[(e, s)]} vs {l}")
print(f"new/old: {statistics.median(ratios):.2f}x (median of {rounds})")
if differ:
    print(f"losses differ at {len(differ)} of {agree + len(differ)} shared steps, first {differ[0]}")
else:
    print(f"losses equal at all {agree} shared progress steps")
EOF
