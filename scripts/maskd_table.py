#!/usr/bin/env python3
"""Prints the MasKD table of a scripts/reproduce_maskd.sh output folder: the teacher's test
mIoU, what stage 1 did to the receptive tokens (mean pairwise Dice between their masks and
the masked teacher's mIoU, before and after), and the student's test mIoU (mean +- std over
seeds) for each distillation term, with its gain over labels only. The final epoch's mIoU
is reported, never the best over epochs (that would select on the test set)."""
import glob, json, os, statistics, sys

out = sys.argv[1] if len(sys.argv) > 1 else "runs/maskd"
TERMS = [
    ("none", "labels only (CE)"),
    ("kd", "pixel-wise KD (tau 1)"),
    ("dist", "DIST, segmentation variant"),
    ("mse", "logit MSE (MasKD loss, one all-ones mask)"),
    ("maskd", "MasKD (8 learnt tokens)"),
]

def load(path):
    with open(path) as f:
        return json.load(f)

def miou(run):
    return load(os.path.join(run, "summary.json"))["final_eval"]["segmentation"]["miou"]

def finished(pattern):
    return sorted(r for r in glob.glob(pattern) if os.path.isfile(os.path.join(r, "summary.json")))

def stats(values):
    if not values:
        return None
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return statistics.mean(values), sd, len(values)

# The teacher as the students met it (best.safetensors, scored by each distillation run).
taught = [load(p) for p in glob.glob(os.path.join(out, "students", "*-s*.json"))
          if os.path.getsize(p) > 0]
teacher = next((t["teacher_miou"] for t in taught if "teacher_miou" in t), None)
if teacher is not None:
    print(f"Teacher (seg_resnet18, its best epoch): test mIoU {teacher:.2f}%\n")
tokens = os.path.join(out, "tokens", "summary.json")
if os.path.isfile(tokens):
    t = load(tokens)
    print(f"Stage 1 ({t['iterations']} iterations, {t['eval_images']} test canvases): "
          f"mean pairwise Dice between the 8 masks {t['dice_before']:.3f} -> {t['dice_after']:.3f}; "
          f"masked teacher mIoU {t['masked_miou_before']:.2f}% -> {t['masked_miou_after']:.2f}% "
          f"(teacher alone {t['teacher_miou']:.2f}%)\n")

base = stats([miou(r) for r in finished(os.path.join(out, "students", "none-s*"))])
print("| student (seg_resnet_quarter) trained with | test mIoU % (mean +- std) | vs labels only | seeds |")
print("|---|---|---|---|")
for key, label in TERMS:
    s = stats([miou(r) for r in finished(os.path.join(out, "students", f"{key}-s*"))])
    if s is None:
        print(f"| {label} | n/a | n/a | 0 |")
        continue
    gain = "" if key == "none" or base is None else f"{s[0] - base[0]:+.2f}"
    print(f"| {label} | {s[0]:.2f} +- {s[1]:.2f} | {gain} | {s[2]} |")
