#!/usr/bin/env python3
"""Prints README's results-table row for a finished `ember train` run directory."""
import json, os, platform, sys

run = sys.argv[1]
summary = json.load(open(os.path.join(run, "summary.json")))
config = json.load(open(os.path.join(run, "config.json")))
info = os.popen(f"target/release/ember info {run}/best.safetensors").read()
params = json.loads(info)["parameters"] if info else "?"
e = summary["final_eval"]
records = [json.loads(l) for l in open(os.path.join(run, "metrics.jsonl")) if l.strip()]
epoch_secs = sorted(r["epoch_seconds"] for r in records)
median_epoch = epoch_secs[len(epoch_secs) // 2]
cores = os.cpu_count()
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), platform.machine())
print(f"| ResNet-18 layout, small stem, widths 16-32-64-128 ({params / 1e6:.2f} M params) "
      f"| {summary['epochs']} | {config['settings']['seed']} | {e['top1']:.2f} | {e['top5']:.2f} "
      f"| {summary['best_top1']:.2f} (epoch {summary['best_epoch']}) | {summary['train_seconds'] / 60:.0f} min "
      f"| {median_epoch / 60:.1f} min "
      f"| {cores} cores, {cpu} |")
