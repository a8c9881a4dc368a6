#!/usr/bin/env python3
"""README's TaylorSENet table from a scripts/reproduce_taylorse.sh folder: per test SNR, the
noisy input, the 0th-order-only ablation and the full model (same training budget): PESQ-WB
and CSIG/CBAK/COVL (when scripts/eval_pesq.py ran), STOI, ESTOI and SI-SDR, means over the
same mixtures."""
import json, os, sys

out = sys.argv[1] if len(sys.argv) > 1 else "runs/taylorse"


def load(name):
    path = os.path.join(out, name)
    if not os.path.isfile(path) or os.path.getsize(path) == 0:
        return None
    with open(path) as f:
        text = f.read().strip()
    try:
        return json.loads(text)
    except json.JSONDecodeError:  # a tool's stdout: the result is the last line
        return json.loads(text.splitlines()[-1])


evals = {m: load(f"eval-{m}.json") for m in ("order0", "taylor")}
pesq = {m: load(f"pesq-{m}.json") for m in ("order0", "taylor")}
if not all(evals.values()):
    sys.exit(f"{out}: eval-order0.json and eval-taylor.json are needed")
names = {"order0": "0th order only", "taylor": "TaylorSENet (3 orders)"}
perceptual = ("pesq_wb", "csig", "cbak", "covl")
print("| SNR (dB) | input | PESQ-WB | CSIG | CBAK | COVL | STOI % | ESTOI % | SI-SDR (dB) |")
print("|---|---|---|---|---|---|---|---|---|")
for snr in sorted(evals["taylor"]["by_snr_db"], key=float):
    rows = [("noisy", "taylor", "noisy")] + [(names[m], m, "enhanced") for m in ("order0", "taylor")]
    for label, model, kind in rows:
        e = evals[model]["by_snr_db"][snr][kind]
        p = (pesq[model] or {}).get("by_snr_db", {}).get(snr, {}).get(kind, {})
        cells = " | ".join(f"{p[k]:.2f}" if k in p else "-" for k in perceptual)
        print(f"| {snr} | {label} | {cells} | {100 * e['stoi']:.1f} | {100 * e['estoi']:.1f} | {e['si_sdr']:.2f} |")


def train_minutes(model):
    """Training time over every session: the sum of the records' interval_seconds."""
    with open(os.path.join(out, model, "metrics.jsonl")) as f:
        return sum(json.loads(line).get("interval_seconds", 0.0) for line in f if line.strip()) / 60


for m in ("order0", "taylor"):
    s = load(os.path.join(m, "summary.json"))
    if s:
        print(f"\n{names[m]}: {s['parameters']:,} parameters, {s['steps']} steps, best validation SI-SDR "
              f"{s['best_valid_si_sdr']:.2f} dB, {train_minutes(m):.1f} min")
print(f"\n{evals['taylor']['mixtures_per_snr']} mixtures per SNR (seed {evals['taylor']['seed']}), "
      "the same for every model.")
