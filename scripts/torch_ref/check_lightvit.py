#!/usr/bin/env python3
"""Checks scripts/torch_ref/lightvit.py against a LightViT parity fixture (official weights,
inputs and logits), so that the PyTorch side of scripts/gpu_check.sh is known to run the
same network as Ember. Needs torch only.

    python3 scripts/torch_ref/check_lightvit.py ../shared/parity/lightvit/small.json [cuda]
"""

import json
import os
import struct
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lightvit import LightViT  # noqa: E402

DTYPES = {"F32": torch.float32, "F64": torch.float64, "I64": torch.int64,
          "F16": torch.float16, "BF16": torch.bfloat16}


def read_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, meta in header.items():
        if name == "__metadata__":
            continue
        start, end = meta["data_offsets"]
        t = torch.frombuffer(bytearray(data[start:end]), dtype=DTYPES[meta["dtype"]])
        out[name] = t.reshape(meta["shape"])
    return out


def main():
    manifest_path = sys.argv[1]
    device = sys.argv[2] if len(sys.argv) > 2 else "cpu"
    folder = os.path.dirname(manifest_path)
    m = json.load(open(manifest_path))
    cfg = m["config"]
    model = LightViT(cfg["embed_dims"], cfg["num_layers"], cfg["num_heads"], cfg["num_tokens"],
                     patch_size=cfg["patch_size"], in_chans=cfg["in_chans"],
                     num_classes=cfg["num_classes"], mlp_ratios=cfg["mlp_ratios"],
                     window_size=cfg["window_size"], neck_dim=cfg["neck_dim"])
    weights = read_safetensors(os.path.join(folder, m["weights"]))
    model.load_state_dict(weights, strict=True)
    model = model.to(device).eval()
    io = read_safetensors(os.path.join(folder, m["io"]))
    (name,) = m["inputs"].keys()
    with torch.no_grad():
        logits = model(io[name].to(device)).cpu()
    want = io[m["primary_output"]]
    diff = (logits - want).abs().max().item()
    tol = m["tolerance"]["abs"]
    print(f"torch lightvit vs {os.path.basename(manifest_path)} on {device}: max abs diff {diff:.3g} "
          f"({'ok' if diff <= tol else 'FAILED'}, tolerance {tol})")
    sys.exit(0 if diff <= tol else 1)


if __name__ == "__main__":
    main()
