#!/usr/bin/env python3
"""Prints the ScaleNet tables of a scripts/reproduce_scalenet.sh output folder and writes
OUT/points.json for `scalenet-search plot`: each family's members (MCEA's joint search vs the
compound-scaling baseline) with their MACs, strategy, supernet score and from-scratch test
top-1 at the last epoch (mean +- std over seeds; never the best epoch, which would select on
the test set), and the search cost.

Search cost: ours is the super-supernet's training plus MCEA's scoring time. Searching every
scale separately would train one supernet per scale and run one base search per scale; its
cost is estimated from what was measured here: a per-scale supernet trained for as many
steps costs this training time times the mean MACs of that scale's draws over the mean MACs
of all draws (in the training run's config), and a per-scale search scores population x
generations sub-networks at that scale's measured mean scoring time."""
import json, os, statistics, sys

out = sys.argv[1] if len(sys.argv) > 1 else "runs/scalenet"


def load(path):
    with open(path) as f:
        return json.load(f)


def final_top1(run):
    return load(os.path.join(run, "summary.json"))["final_eval"]["top1"]


def mean_std(xs):
    if not xs:
        return "-"
    sd = statistics.stdev(xs) if len(xs) > 1 else 0.0
    return f"{statistics.mean(xs):.2f} +- {sd:.2f} (n={len(xs)})"


families = {m: load(os.path.join(out, m, "family.json")) for m in ("mcea", "compound")
            if os.path.isfile(os.path.join(out, m, "family.json"))}
names = {"mcea": "MCEA (joint)", "compound": "compound rule"}
print("| family | scale | MACs (exact) | x base | depths | width | px | supernet top-1 % | from scratch top-1 % |")
print("|---|---|---|---|---|---|---|---|---|")
points = []
for method, fam in families.items():
    series = []
    for m in fam["members"]:
        s = m["stage"]
        runs = [os.path.join(out, "final", f"{method}-{s}-s{seed}") for seed in range(10)]
        accs = [final_top1(r) for r in runs if os.path.isfile(os.path.join(r, "summary.json"))]
        print(f"| {names[method]} | {2 ** s}x | {m['macs'] / 1e6:.3f} M | {m['macs_over_base']:.2f} | "
              f"{m['depth']} | {m['width']:.2f} | {m['resolution']} | {m['supernet_top1']:.2f} | {mean_std(accs)} |")
        if accs:
            series.append([m["macs"] / 1e6, statistics.mean(accs)])
    points.append({"name": names[method], "points": series})
with open(os.path.join(out, "points.json"), "w") as f:
    json.dump({"title": "Fashion-MNIST: test top-1 vs MACs", "x_label": "MMACs",
               "y_label": "test top-1 % (mean over seeds)", "series": points}, f)

train = os.path.join(out, "supernet.json")
if "mcea" in families and os.path.isfile(train) and os.path.getsize(train) > 0:
    t = load(train)
    cfg = load(os.path.join(out, "supernet", "config.json"))
    draw_macs = cfg["method"]["draw_macs_by_stage"]
    fam = families["mcea"]
    shares = [len(s["width"]) for s in fam["space"]["scaling"]]
    mean_all = sum(p * m for p, m in zip(shares, draw_macs)) / sum(shares)
    per_eval = []
    for s in range(len(shares)):
        src = fam if fam["evaluations_by_stage"][s] else families.get("compound", fam)
        n = src["evaluations_by_stage"][s]
        per_eval.append(src["evaluation_seconds_by_stage"][s] / n if n else float("nan"))
    ga = fam["search"]["population"] * fam["search"]["generations"]
    train_min = t["train_seconds"] / 60
    ours = train_min + fam["evaluation_seconds"] / 60
    separate_train = sum(train_min * m / mean_all for m in draw_macs)
    separate_search = sum(ga * e / 60 for e in per_eval)
    print()
    print("| search | supernet training (min) | scoring (min) | evaluations | total (CPU-min x cores) |")
    print("|---|---|---|---|---|")
    print(f"| MCEA, one super-supernet | {train_min:.1f} | {fam['evaluation_seconds'] / 60:.1f} | "
          f"{fam['evaluations']} | {ours:.1f} |")
    if "compound" in families:
        c = families["compound"]
        print(f"| compound baseline (same supernet) | {train_min:.1f} | {c['evaluation_seconds'] / 60:.1f} | "
              f"{c['evaluations']} | {train_min + c['evaluation_seconds'] / 60:.1f} |")
    print(f"| every scale separately (estimated) | {separate_train:.1f} | {separate_search:.1f} | "
          f"{ga * len(shares)} | {separate_train + separate_search:.1f} |")
    print(f"\nseparate / MCEA = {(separate_train + separate_search) / ours:.2f}x "
          f"(supernet: {t['epochs']} epochs, {t['images_per_s']:.0f} img/s; mean draw MACs by stage "
          f"{', '.join(f'{m / 1e6:.2f}M' for m in draw_macs)})")
