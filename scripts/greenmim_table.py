#!/usr/bin/env python3
"""Prints the GreenMIM table of a scripts/reproduce_greenmim.sh output folder: per start
(GreenMIM pre-training, SimMIM-style pre-training of the same wall time, from scratch), the
fine-tuned test top-1 with 10% of the labels after the last epoch (mean +- std over seeds;
the best epoch too, which selects on the test set), and each pre-training's epochs, time,
images/s and final kNN monitor."""
import glob, json, os, statistics, sys

out = sys.argv[1] if len(sys.argv) > 1 else "runs/greenmim"

def stats(xs):
    if not xs:
        return None
    return statistics.mean(xs), (statistics.stdev(xs) if len(xs) > 1 else 0.0), len(xs)

def fmt(s, digits=2):
    return "-" if s is None else f"{s[0]:.{digits}f} +- {s[1]:.{digits}f}"

def load(pattern):
    return [json.load(open(f)) for f in sorted(glob.glob(os.path.join(out, pattern)))]

rows = [
    ("greenmim", "GreenMIM pre-training"),
    ("simmim", "SimMIM-style pre-training, same wall time"),
    ("scratch", "from scratch"),
]
print("| start | fine-tuned top-1 %, 10% labels (last epoch) | best epoch | seeds | pre-training epochs | pre-training minutes | pre-training img/s | kNN top-1 % after pre-training |")
print("|---|---|---|---|---|---|---|---|")
top = {}
for key, label in rows:
    ft = load(f"ft-{key}-s*/summary.json")
    if not ft:
        continue
    last = stats([r["final_eval"]["top1"] for r in ft])
    best = stats([r["best_top1"] for r in ft])
    top[key] = last
    pre = load(f"{key}-s*/summary.json")
    epochs = "-" if not pre else str(pre[0]["epochs"])
    minutes = stats([r["train_seconds"] / 60 for r in pre])
    rate = stats([r["images_per_s"] for r in pre])
    knn = stats([r["knn_top1"] for r in pre])
    print(f"| {label} | {fmt(last)} | {fmt(best)} | {last[2]} | {epochs} | {fmt(minutes, 1)} | "
          f"{fmt(rate, 0)} | {fmt(knn)} |")

print()
for a, b, claim in [
    ("greenmim", "scratch", "GreenMIM pre-training helps over training from scratch"),
    ("greenmim", "simmim", "GreenMIM beats SimMIM-style pre-training of the same wall time"),
]:
    if a in top and b in top:
        (ma, sa, na), (mb, sb, nb) = top[a], top[b]
        d, noise = ma - mb, max(sa, sb)
        if min(na, nb) < 2 or abs(d) <= noise:
            verdict = f"within seed noise (std up to {noise:.2f}, seeds {min(na, nb)})"
        else:
            verdict = "shown here" if d > 0 else "not shown here: the opposite"
        print(f"- {claim}: {d:+.2f} points, {verdict}")
