#!/usr/bin/env python3
"""Prints README's results-table row for a finished training run directory (from `ember
train` or a method tool): the model from its config, parameters and GMACs from `ember info`,
accuracy and times from the run's summary and metrics."""
import json, os, platform, sys

run = sys.argv[1]
summary = json.load(open(os.path.join(run, "summary.json")))
config = json.load(open(os.path.join(run, "config.json")))
info = json.loads(os.popen(f"target/release/ember info {run}/best.safetensors").read())
model = config["model"]["config"]
if config["model"]["family"] == "lightvit":
    name = (f"LightViT, widths {'-'.join(map(str, model['embed_dims']))}, "
            f"blocks {'-'.join(map(str, model['num_layers']))}, {model['window_size']}x{model['window_size']} windows")
else:
    name = (f"ResNet, blocks {'-'.join(map(str, model['layers']))}, {model.get('stem_type', 'imagenet')} stem "
            f"{model['stem_width']}, widths {'-'.join(map(str, model['channels']))}")
gmacs = info["gmacs"].get("window_attention_included", info["gmacs"].get("convs_and_classifier"))
e = summary["final_eval"]
records = [json.loads(l) for l in open(os.path.join(run, "metrics.jsonl")) if l.strip()]
epoch_secs = sorted(r["epoch_seconds"] for r in records)
median_epoch = epoch_secs[len(epoch_secs) // 2]
cores = os.cpu_count()
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), platform.machine())
print(f"| {name} | {info['parameters'] / 1e6:.2f} M | {gmacs:.3f} | {info['input_size']} px "
      f"| {summary['epochs']} | {config['settings']['seed']} | {e['top1']:.2f} | {e['top5']:.2f} "
      f"| {summary['best_top1']:.2f} (epoch {summary['best_epoch']}) | {summary['train_seconds'] / 60:.0f} min "
      f"| {median_epoch / 60:.1f} min | {cores} cores, {cpu} |")
