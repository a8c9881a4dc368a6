#!/usr/bin/env python3
"""Prints the DIST table of a scripts/reproduce_dist.sh output folder: per teacher, the
student's test top-1 (mean +- std over seeds) with CE, KD and DIST, and KD's and DIST's gain
over CE. The final epoch's accuracy is reported, never the best over epochs (that would
select on the test set)."""
import glob, json, os, statistics, sys

out = sys.argv[1] if len(sys.argv) > 1 else "runs/dist"

def top1(run):
    return json.load(open(os.path.join(run, "summary.json")))["final_eval"]["top1"]

def finished(pattern):
    """Run folders matching `pattern` that finished (the .json beside each is its stdout)."""
    return sorted(r for r in glob.glob(pattern) if os.path.isfile(os.path.join(r, "summary.json")))

def stats(runs):
    accs = [top1(r) for r in runs]
    if not accs:
        return None, 0.0, 0
    return statistics.mean(accs), (statistics.stdev(accs) if len(accs) > 1 else 0.0), len(accs)

def cell(s):
    return "n/a" if s[0] is None else f"{s[0]:.2f} +- {s[1]:.2f}"

students = os.path.join(out, "students")
ce = stats(finished(os.path.join(students, "ce-s*")))
teachers = sorted(finished(os.path.join(out, "teachers", "*")), key=top1)
print(f"Student alone (CE): {cell(ce)} (n={ce[2]})\n")
print("| teacher | teacher top-1 % | student CE | student KD | student DIST | KD - CE | DIST - CE | seeds |")
print("|---|---|---|---|---|---|---|---|")
for t in teachers:
    name = os.path.basename(t)
    kd = stats(finished(os.path.join(students, f"{name}-kd-s*")))
    dist = stats(finished(os.path.join(students, f"{name}-dist-s*")))
    gain = lambda s: "n/a" if s[0] is None or ce[0] is None else f"{s[0] - ce[0]:+.2f}"
    n = min(ce[2], kd[2], dist[2])
    print(f"| {name} | {top1(t):.2f} | {cell(ce)} | {cell(kd)} | {cell(dist)} | {gain(kd)} | {gain(dist)} | {n} |")
