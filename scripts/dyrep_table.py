#!/usr/bin/env python3
"""Prints the DyRep table of a scripts/reproduce_dyrep.sh output folder: per mode, the final
epoch's test top-1 (mean +- std over seeds; never the best epoch, which would select on the
test set), the training step time relative to plain two ways (over the whole run, from each
run's median images/s, which a busy machine skews; and of the final structure, a 128-image
forward and backward timed against the plain network in one process by `dyrep-train deploy
--compare`), the inference time of the trained and of the deployed network relative to
plain's (a 128-image forward, timed the same way), and the branches the final network
holds."""
import glob, json, os, statistics, sys

out = sys.argv[1] if len(sys.argv) > 1 else "runs/dyrep"

def runs(mode):
    found = sorted(glob.glob(os.path.join(out, f"{mode}-s*")))
    return [r for r in found if os.path.isdir(r) and os.path.isfile(os.path.join(r, "deploy.json"))]

def metrics(run):
    return [json.loads(l) for l in open(os.path.join(run, "metrics.jsonl"))]

def final_top1(run):
    return json.load(open(os.path.join(run, "summary.json")))["final_eval"]["top1"]

def median_rate(run):
    return statistics.median(r["images_per_s"] for r in metrics(run))

def inference_ratio(run, which, timing="forward_ms_batch128"):
    """`which` (trained or deployed) over the plain baseline, timed in one process."""
    ms = json.load(open(os.path.join(run, "deploy.json"))).get(timing)
    return None if ms is None else ms[which] / ms["baseline"]

def branches(run):
    last = metrics(run)[-1]
    counts = last.get("rep_branches")
    if counts:
        return sum(counts.values())
    plan = json.load(open(os.path.join(run, "config.json")))["model"]["config"].get("rep", {})
    return None if not plan else sum(sum(v) for v in plan.values() if isinstance(v, list))

def mean(xs):
    return statistics.mean(xs) if xs else float("nan")

modes = ["plain", "repvgg", "dbb", "dyrep"]
present = {m: runs(m) for m in modes if runs(m)}
if "plain" not in present:
    sys.exit(f"no finished plain runs in {out}")
plain_rate = mean([median_rate(r) for r in present["plain"]])
print("| training | test top-1 % (final epoch) | seeds | train step vs plain: whole run (wall clock) | final structure (same process) | inference vs plain: trained | deployed | branches at the end |")
print("|---|---|---|---|---|---|---|---|")
for mode, rs in present.items():
    accs = [final_top1(r) for r in rs]
    sd = statistics.stdev(accs) if len(accs) > 1 else 0.0
    step = plain_rate / mean([median_rate(r) for r in rs])
    steps = [x for x in (inference_ratio(r, "trained", "train_step_ms_batch128") for r in rs) if x is not None]
    step_final = f"{mean(steps):.2f}x" if steps else "-"
    trained = mean([inference_ratio(r, "trained") for r in rs])
    deployed = mean([inference_ratio(r, "deployed") for r in rs])
    b = [x for x in (branches(r) for r in rs) if x is not None]
    bcell = f"{mean(b):.1f}" if b else "1 per conv"
    print(f"| {mode} | {mean(accs):.2f} +- {sd:.2f} | {len(accs)} | {step:.2f}x | {step_final} | {trained:.2f}x | {deployed:.2f}x | {bcell} |")
