#!/usr/bin/env python3
"""The PyTorch side of the GreenMIM bench (benches/greenmim.rs): one pre-training step
(forward, the norm-pix masked loss, backward, AdamW betas (0.9, 0.95) lr 1e-4 wd 0.05) of
GreenMIM and of the SimMIM-style dense baseline, same Swin encoder, batch and mask ratio
(0.75), the two alternating on the same masks; the median step time and, on CUDA, each
method's peak device memory above what was live before its step
(torch.cuda.max_memory_allocated). The same cases and output lines as Ember's bench:
swin_nano_32 at batch 128, and Swin-T's encoder at 224 px (batch EMBER_BENCH_BATCH, 8 by
default). bf16 runs under torch.autocast with f32 weights.

    python3 scripts/torch_ref/greenmim_bench.py [cuda|cpu] [f32|bf16] [--quick]
"""

import os
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from greenmim import GreenMIM, SimMIMStyle, masked_loss, random_units  # noqa: E402

NANO = dict(img_size=32, patch_size=2, in_chans=1, embed_dim=32, depths=[2, 2, 2],
            num_heads=[2, 4, 8], window_size=4, mlp_ratio=4.0, qkv_bias=True, norm_eps=1e-6)
TINY = dict(img_size=224, patch_size=4, in_chans=3, embed_dim=96, depths=[2, 2, 6, 2],
            num_heads=[3, 6, 12, 24], window_size=7, mlp_ratio=4.0, qkv_bias=True,
            norm_eps=1e-6)


def bench(name, encoder, batch, decoder, steps, device, dtype):
    cfg = dict(encoder, decoder_embed_dim=decoder[0], decoder_depth=1,
               decoder_num_heads=decoder[1], decoder_mlp_ratio=4.0)
    torch.manual_seed(0)
    runners = [("SimMIM-style", SimMIMStyle(cfg).to(device)), ("GreenMIM", GreenMIM(cfg).to(device))]
    opts = [torch.optim.AdamW(m.parameters(), lr=1e-4, betas=(0.9, 0.95), weight_decay=0.05)
            for _, m in runners]
    g = torch.Generator().manual_seed(1)
    side = cfg["img_size"]
    x = torch.randn(batch, cfg["in_chans"], side, side, generator=g).to(device)
    unit = runners[1][1].encoder.mask_unit()
    units = (side // unit) ** 2
    print(f"{name}: batch {batch}, {side // unit}x{side // unit} mask units, "
          f"{int(units * 0.25)} visible (PyTorch {torch.__version__})")
    amp = lambda: torch.autocast(device.type, dtype=torch.bfloat16, enabled=dtype == "bf16")
    times, peaks = [[], []], [0, 0]
    for i in range(steps + 1):
        visible, ids_restore, mask = random_units(units, 0.75, g)
        for k, ((label, model), opt) in enumerate(zip(runners, opts)):
            if device.type == "cuda":
                torch.cuda.synchronize()
                before = torch.cuda.memory_allocated()
                torch.cuda.reset_peak_memory_stats()
            t = time.perf_counter()
            m = mask.to(device)
            with amp():
                if label == "GreenMIM":
                    # The layout is part of the step, as in the official forward and Ember's.
                    pred = model(x, ids_restore.to(device).expand(batch, -1),
                                 model.plan(visible.tolist(), device))
                else:
                    pred = model(x, m)
            loss = masked_loss(pred, x, m, unit)
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
            if device.type == "cuda":
                torch.cuda.synchronize()
                peaks[k] = max(peaks[k], torch.cuda.max_memory_allocated() - before)
            if i > 0:
                times[k].append(time.perf_counter() - t)
    medians = [statistics.median(t) for t in times]
    for k, (label, _) in enumerate(runners):
        memory = f", peak {peaks[k] / 1e6:.0f} MB" if device.type == "cuda" else ""
        print(f"  {label} step: {medians[k] * 1e3:.0f} ms{memory}")
    line = f"  GreenMIM vs SimMIM: {medians[0] / medians[1]:.2f}x faster"
    if device.type == "cuda":
        line += f", {peaks[1] / peaks[0]:.2f}x the memory ({100 * (1 - peaks[1] / peaks[0]):.0f}% less)"
    print(line, flush=True)


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    quick = "--quick" in sys.argv
    device = torch.device(args[0] if args else ("cuda" if torch.cuda.is_available() else "cpu"))
    dtype = args[1] if len(args) > 1 else "f32"
    torch.backends.cudnn.benchmark = False
    batch = int(os.environ.get("EMBER_BENCH_BATCH", "8"))
    bench("swin_nano_32 (Fashion-MNIST)", NANO, 16 if quick else 128, (64, 4), 1 if quick else 5,
          device, dtype)
    bench("Swin-T encoder, 224 px", TINY, 1 if quick else batch, (512, 16), 1 if quick else 3,
          device, dtype)


if __name__ == "__main__":
    main()
