#!/usr/bin/env python3
"""The PyTorch side of scripts/gpu_check.sh: every case of cases.json timed on one device,
one JSON line per case ({"name", "ms", "per_s"}) on stdout, as benches/side_by_side.rs
prints Ember's. Training steps use torch.autocast(bfloat16) with f32 weights and
torch.optim.AdamW (its default multi-tensor path on CUDA), cuDNN with benchmark off (its
heuristics, as Ember asks cuDNN), TF32 only for the case that asks for it.

    python3 scripts/torch_ref/bench.py [cuda|cpu] [--quick]

--quick shrinks every case (batch / 16, matmul n / 8, 1 timed iteration): a smoke run of the
script itself on a machine without a GPU.
"""

import json
import os
import statistics
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lightvit import build as build_lightvit  # noqa: E402

DTYPES = {"f32": torch.float32, "bf16": torch.bfloat16, "f16": torch.float16}


class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        y = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        return F.relu(y + (x if self.downsample is None else self.downsample(x)))


class ResNet18(nn.Module):
    """torchvision's resnet18 layout (62 parameter tensors, 11,689,512 parameters)."""

    def __init__(self, num_classes=1000):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        widths, cin = [64, 128, 256, 512], 64
        for i, w in enumerate(widths):
            stride = 1 if i == 0 else 2
            setattr(self, f"layer{i + 1}", nn.Sequential(BasicBlock(cin, w, stride), BasicBlock(w, w, 1)))
            cin = w
        self.fc = nn.Linear(512, num_classes)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.bn1(self.conv1(x))), 3, 2, 1)
        for i in range(4):
            x = getattr(self, f"layer{i + 1}")(x)
        return self.fc(x.mean((2, 3)))


def build(arch):
    if arch == "resnet18":
        return ResNet18()
    return build_lightvit(arch)


def timed(fn, device, iters, warmup=3):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(iters):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def case_fn(c, device, quick):
    dtype = DTYPES.get(c.get("dtype", "f32"))
    torch.backends.cuda.matmul.allow_tf32 = bool(c.get("tf32"))
    torch.backends.cudnn.allow_tf32 = bool(c.get("tf32"))
    g = torch.Generator(device="cpu").manual_seed(0)
    randn = lambda *s: torch.randn(*s, generator=g).to(device)
    kind = c["kind"]
    if kind == "matmul":
        n = c["n"] // (8 if quick else 1)
        a, b = randn(n, n).to(dtype), randn(n, n).to(dtype)
        return (lambda: a @ b), 2 * n ** 3 / 1e12, "TFLOP/s"
    if kind == "conv":
        bsz = max(1, c["batch"] // (16 if quick else 1))
        x = randn(bsz, c["cin"], c["hw"], c["hw"]).to(dtype)
        w = randn(c["cout"], c["cin"] // c["groups"], 3, 3).to(dtype)
        conv = lambda: F.conv2d(x, w, padding=1, groups=c["groups"])
        if not c["backward"]:
            def fwd():
                with torch.no_grad():
                    conv()
            return fwd, bsz, "img/s"
        x.requires_grad_(True)
        w.requires_grad_(True)
        r = randn(bsz, c["cout"], c["hw"], c["hw"]).to(dtype)

        def fwd_bwd():
            (conv() * r).sum().backward()
            x.grad = w.grad = None
        return fwd_bwd, bsz, "img/s"
    model = build(c["arch"]).to(device)
    if kind == "adamw":
        params = [p for p in model.parameters()]
        for p in params:
            p.grad = torch.randn(p.shape, generator=g).to(device)
        opt = torch.optim.AdamW(params, lr=1e-3, weight_decay=0.05)
        return opt.step, None, ""
    bsz = max(1, c["batch"] // (16 if quick else 1))
    size = c["size"]
    x = randn(bsz, 3, size, size)
    y = torch.randint(0, 1000, (bsz,), generator=g).to(device)
    amp = lambda: torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32)
    if kind == "infer":
        model.eval()

        def infer():
            with torch.no_grad(), amp():
                model(x)
        return infer, bsz, "img/s"
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.05)

    def step():
        with amp():
            loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    return step, bsz, "img/s"


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    quick = "--quick" in sys.argv
    device = torch.device(args[0] if args else ("cuda" if torch.cuda.is_available() else "cpu"))
    torch.backends.cudnn.benchmark = False
    cases = json.load(open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "cases.json")))["cases"]
    for c in cases:
        fn, work, unit = case_fn(c, device, quick)
        s = timed(fn, device, 1 if quick else 10, 1 if quick else 3)
        record = {"name": c["name"], "ms": s * 1e3}
        if work is not None:
            record["per_s"] = work / s
            record["unit"] = unit
        print(json.dumps(record), flush=True)
        if device.type == "cuda":
            torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
