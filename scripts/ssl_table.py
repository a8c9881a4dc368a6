#!/usr/bin/env python3
"""Prints the self-supervised table of a scripts/reproduce_ssl.sh output folder: per method,
the linear-probe test top-1 after the probe's last epoch (mean +- std over seeds; the
official scripts report the best epoch, given too, which selects on the test set), the
kNN monitor's top-1 after pre-training, pre-training throughput (images/s, the median
epoch, and as a ratio to the supervised run of the same network in the same script) and
the share of the epoch the loader's workers spent augmenting; then the gains the papers
claim."""
import glob, json, os, statistics, sys

out = sys.argv[1] if len(sys.argv) > 1 else "runs/ssl"

def load(path):
    return json.load(open(path))

def stats(xs):
    if not xs:
        return None
    return statistics.mean(xs), (statistics.stdev(xs) if len(xs) > 1 else 0.0), len(xs)

def fmt(s):
    return "-" if s is None else f"{s[0]:.2f} +- {s[1]:.2f}"

def probes(name):
    files = sorted(glob.glob(os.path.join(out, f"{name}-s*.json"))) if name == "random" else \
        sorted(glob.glob(os.path.join(out, f"{name}-s*", "linear.json")))
    return [load(f) for f in files]

def pretrain_metrics(name):
    runs = sorted(glob.glob(os.path.join(out, f"{name}-s*", "summary.json")))
    return [[json.loads(l) for l in open(os.path.join(os.path.dirname(r), "metrics.jsonl"))] for r in runs]

def median_rate(m):
    return statistics.median(r["images_per_s"] for r in m)

supervised = pretrain_metrics("supervised")
base_rate = statistics.mean(median_rate(m) for m in supervised) if supervised else None

rows = [
    ("random", "random initialisation"),
    ("supervised", "supervised (labels), same epochs"),
    ("ressl", "ReSSL"),
    ("moco", "MoCo v2 (EMA target, InfoNCE)"),
    ("lewel-moco", "LEWEL on MoCo"),
    ("byol", "BYOL"),
    ("lewel-byol", "LEWEL on BYOL"),
]
print("| backbone | linear top-1 % (last epoch) | best epoch | seeds | kNN top-1 % | training img/s | vs supervised | augment share |")
print("|---|---|---|---|---|---|---|---|")
top = {}
for key, label in rows:
    p = probes(key)
    if not p:
        continue
    last = stats([r["top1"] for r in p])
    best = stats([r["best_top1"] for r in p])
    top[key] = last
    runs = pretrain_metrics(key) if key != "random" else []
    knn = stats([m[-1]["knn_top1"] for m in runs if "knn_top1" in m[-1]])
    rate = stats([median_rate(m) for m in runs])
    aug = stats([statistics.median(r["augment_share"] for r in m)
                 for m in runs if all("augment_share" in r for r in m)])
    ratio = "-" if rate is None or not base_rate else f"{rate[0] / base_rate:.2f}x"
    print(f"| {label} | {fmt(last)} | {fmt(best)} | {last[2]} | {fmt(knn)} | "
          f"{'-' if rate is None else f'{rate[0]:.0f}'} | {ratio} | {'-' if aug is None else f'{aug[0]:.3f}'} |")

print()
for a, b, claim in [
    ("lewel-byol", "byol", "LEWEL improves BYOL"),
    ("lewel-moco", "moco", "LEWEL improves MoCo"),
    ("ressl", "moco", "ReSSL beats MoCo-style InfoNCE"),
]:
    if a in top and b in top:
        (ma, sa, na), (mb, sb, nb) = top[a], top[b]
        d = ma - mb
        # A gap within the seeds' spread (or measured on one seed) is not evidence either way.
        noise = max(sa, sb)
        if min(na, nb) < 2 or abs(d) <= noise:
            verdict = f"within seed noise (std up to {noise:.2f}, seeds {min(na, nb)})"
        else:
            verdict = "shown here" if d > 0 else "not shown here: the opposite"
        print(f"- {claim}: {d:+.2f} points, {verdict}")
