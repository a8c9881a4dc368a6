#!/usr/bin/env python3
"""Puts Ember's and PyTorch's JSON lines (benches/side_by_side.rs, scripts/torch_ref/bench.py)
side by side: per case both times, both throughputs and the ratio Ember/PyTorch in speed
(PyTorch's time over Ember's: above 1, Ember is faster).

    python3 scripts/torch_ref/compare.py EMBER.jsonl TORCH.jsonl
"""

import json
import sys


def load(path):
    out = {}
    for line in open(path):
        line = line.strip()
        if line.startswith("{"):
            r = json.loads(line)
            out[r["name"]] = r
    return out


def main():
    ember, torch = load(sys.argv[1]), load(sys.argv[2])
    names = list(ember) + [n for n in torch if n not in ember]
    width = max(len(n) for n in names)
    print(f"{'case':<{width}}  {'Ember ms':>10}  {'PyTorch ms':>10}  {'Ember/PyTorch':>13}  throughput (Ember / PyTorch)")
    for n in names:
        e, t = ember.get(n), torch.get(n)
        ems = f"{e['ms']:.3f}" if e else "-"
        tms = f"{t['ms']:.3f}" if t else "-"
        ratio = f"{t['ms'] / e['ms']:.2f}x" if e and t else "-"
        rate = ""
        if e and t and "per_s" in e and "per_s" in t:
            rate = f"{e['per_s']:.4g} / {t['per_s']:.4g} {e['unit']}"
        print(f"{n:<{width}}  {ems:>10}  {tms:>10}  {ratio:>13}  {rate}")


if __name__ == "__main__":
    main()
