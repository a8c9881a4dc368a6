#!/usr/bin/env python3
"""Prints the BCNet tables of a scripts/reproduce_bcnet.sh output folder: the supernets'
training throughput (BC's two paths vs UA's one), how well each supernet ranks the random
architectures that were trained from scratch (Kendall tau-b between supernet score and test
top-1), and the searched widths against uniform scaling at the same FLOPs (test top-1 at the
last epoch, mean +- std over seeds; never the best epoch, which would select on the test
set)."""
import glob, json, os, statistics, sys

out = sys.argv[1] if len(sys.argv) > 1 else "runs/bcnet"


def load(path):
    with open(path) as f:
        return json.load(f)


def tau_b(x, y):
    """Kendall's tau-b, ties in either variable handled (the O(n^2) definition)."""
    s = tx = ty = n0 = 0
    for i in range(len(x)):
        for j in range(i + 1, len(x)):
            dx, dy = x[i] - x[j], y[i] - y[j]
            n0 += 1
            tx += dx == 0
            ty += dy == 0
            if dx and dy:
                s += 1 if (dx > 0) == (dy > 0) else -1
    denom = ((n0 - tx) * (n0 - ty)) ** 0.5
    return s / denom if denom else float("nan")


def top1(run):
    return load(os.path.join(run, "summary.json"))["final_eval"]["top1"]


print("| supernet | paths per step | epochs | images/s | train minutes | kNN top-1 % (full width) |")
print("|---|---|---|---|---|---|")
for name, paths in (("bc", 2), ("ua", 1)):
    f = os.path.join(out, f"{name}.json")
    if os.path.isfile(f) and os.path.getsize(f) > 0:
        r = load(f)
        print(f"| {name.upper()} | {paths} | {r['epochs']} | {r['images_per_s']:.0f} | "
              f"{r['train_seconds'] / 60:.1f} | {r['knn_top1']:.2f} |")

scratch = {}
for run in sorted(glob.glob(os.path.join(out, "scratch", "*"))):
    if os.path.isfile(os.path.join(run, "summary.json")):
        scratch[int(os.path.basename(run))] = top1(run)
print()
for name in ("bc", "ua"):
    f = os.path.join(out, f"scores-{name}.jsonl")
    if not os.path.isfile(f):
        continue
    scores = [json.loads(l)["score"] for l in open(f)]
    pairs = [(scores[i], acc) for i, acc in scratch.items() if i < len(scores)]
    if len(pairs) > 1:
        tau = tau_b([p[0] for p in pairs], [p[1] for p in pairs])
        print(f"- {name.upper()} supernet: Kendall tau-b {tau:.3f} between its scores and the "
              f"from-scratch test top-1 of {len(pairs)} random architectures")

print()
print("| widths at 50% FLOPs | MACs | test top-1 % (mean +- std) | seeds |")
print("|---|---|---|---|")
for method, label in (("search", "BCNet search (BC supernet, prior)"), ("uniform", "uniform scaling")):
    runs = [r for r in sorted(glob.glob(os.path.join(out, "final", f"{method}-s*")))
            if os.path.isfile(os.path.join(r, "summary.json"))]
    report = os.path.join(out, f"{method}.json" if method == "search" else "uniform-report.json")
    macs = "?"
    if os.path.isfile(report) and os.path.getsize(report) > 0:
        r = load(report)
        macs = f"{(r['best']['macs'] if method == 'search' else r['macs']) / 1e6:.2f} M"
    accs = [top1(r) for r in runs]
    cell = "n/a" if not accs else f"{statistics.mean(accs):.2f} +- {statistics.stdev(accs) if len(accs) > 1 else 0:.2f}"
    print(f"| {label} | {macs} | {cell} | {len(accs)} |")
