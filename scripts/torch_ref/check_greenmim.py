#!/usr/bin/env python3
"""Checks scripts/torch_ref/greenmim.py against a GreenMIM parity fixture (official weights,
input, mask and outputs), so that the PyTorch side of scripts/gpu_check.sh is known to run
the same network as Ember. Needs torch only.

    python3 scripts/torch_ref/check_greenmim.py ../shared/parity/greenmim/small.json [cuda]
"""

import json
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from check_lightvit import read_safetensors  # noqa: E402
from greenmim import GreenMIM, masked_loss  # noqa: E402


def main():
    manifest_path = sys.argv[1]
    device = sys.argv[2] if len(sys.argv) > 2 else "cpu"
    folder = os.path.dirname(manifest_path)
    m = json.load(open(manifest_path))
    if m.get("kind") != "model":
        return
    cfg = dict(m["config"])
    model = GreenMIM(cfg)
    weights = read_safetensors(os.path.join(folder, m["weights"]))
    # The relative position indices are recomputable buffers the forward never reads.
    weights = {k: v for k, v in weights.items() if k not in set(m.get("int64_keys", []))}
    model.load_state_dict(weights, strict=True)
    model = model.to(device).eval()
    io = read_safetensors(os.path.join(folder, m["io"]))
    images = io["input"].to(device)
    mask, ids_restore = io["mask"], io["ids_restore"]
    visible = (mask[0] == 0).nonzero().flatten().tolist()
    with torch.no_grad():
        plan = model.plan(visible, device)
        pred = model(images, ids_restore.to(device), plan).cpu()
        loss = masked_loss(pred, images.cpu(), mask[0], model.encoder.mask_unit())
    tol = m["tolerance"]["abs"]
    worst = 0.0
    for name, got in [(m["primary_output"], pred), ("loss", loss)]:
        diff = (got - io[name]).abs().max().item()
        worst = max(worst, diff)
        print(f"torch greenmim vs {os.path.basename(manifest_path)} {name} on {device}: "
              f"max abs diff {diff:.3g}")
    print(f"  {'ok' if worst <= tol else 'FAILED'} (tolerance {tol})")
    sys.exit(0 if worst <= tol else 1)


if __name__ == "__main__":
    main()
