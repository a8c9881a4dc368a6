"""GreenMIM and the SimMIM-style dense baseline in PyTorch, for measuring Ember against
PyTorch on the same machine (scripts/gpu_check.sh). Our own code, written to Ember's models
(crates/ember-models/src/swin, src/mim), which follow the official LayneH/GreenMIM
(modeling/green_swin_models.py, group_window_attention.py, base_green_models.py): the same
state_dict names, so the parity fixture's official weights load and `check_greenmim.py`
compares the outputs with the official ones.

The encoder sees the visible tokens only. Per stage and shift, the windows of those tokens
(a token at (y, x) sits in window ((y + o) // ws, (x + o) // ws), o = (ws - shift) % ws) are
packed into groups of whole windows by the official knapsack DP, and each group runs as one
attention with the relative position bias and -100 between windows; below 2 ws^2 tokens one
masked attention over all of them is cheaper (the official switch). That host-side layout is
computed once per batch (one mask per batch, as the official code draws it)."""

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

MASKED = -100.0


def knapsack(capacity, weights):
    """Best total <= capacity and the items reaching it (ascending; earlier items win ties,
    as the official backtrack does)."""
    n, width = len(weights), capacity + 1
    best = torch.zeros((n + 1, width), dtype=torch.int64)
    for i, wt in enumerate(weights):
        best[i + 1] = best[i]
        if wt <= capacity:
            best[i + 1, wt:] = torch.maximum(best[i, wt:], wt + best[i, : width - wt])
    best = best.tolist()
    total = best[n][capacity]
    left, w, picked = total, capacity, []
    for i in range(n, 0, -1):
        if left == 0:
            break
        if left != best[i - 1][w]:
            picked.append(i - 1)
            left -= weights[i - 1]
            w -= weights[i - 1]
    return total, picked[::-1]


def group_windows(capacity, sizes):
    remaining = list(range(len(sizes)))
    groups = []
    while remaining:
        _, picked = knapsack(capacity, [sizes[w] for w in remaining])
        groups.append([remaining[p] for p in picked])
        for p in reversed(picked):
            remaining.pop(p)
    return groups


class Layout:
    """Which tokens attend together at one stage and shift, as device tensors: the slot of
    every token in its group (`gather`, `scatter`), the additive mask and the bias-table row
    of every pair of slots."""

    def __init__(self, coords, window, shift, device):
        n = len(coords)
        offset = (window - shift % window) % window
        members = {}
        for t, (y, x) in enumerate(coords):
            members.setdefault(((y + offset) // window, (x + offset) // window), []).append(t)
        keys = sorted(members)
        token_window = torch.zeros(n, dtype=torch.int64)
        for w, k in enumerate(keys):
            token_window[members[k]] = w
        if n > 2 * window * window:
            sizes = [len(members[k]) for k in keys]
            size = max(sizes)
            slots = []
            for group in group_windows(size, sizes):
                start = len(slots)
                for w in group:
                    slots += members[keys[w]]
                slots += [-1] * (start + size - len(slots))
        else:
            size, slots = n, list(range(n))
        self.groups, self.group_size = len(slots) // size, size
        slots = torch.tensor(slots, dtype=torch.int64)
        coords = torch.tensor(coords, dtype=torch.int64).reshape(-1, 2)
        g, gs = self.groups, size
        s = slots.reshape(g, gs)
        valid = (s[:, :, None] >= 0) & (s[:, None, :] >= 0)
        si, sj = s.clamp(min=0)[:, :, None], s.clamp(min=0)[:, None, :]
        same = valid & (token_window[si] == token_window[sj])
        dy = coords[si, 0] - coords[sj, 0] + window - 1
        dx = coords[si, 1] - coords[sj, 1] + window - 1
        rows = torch.where(same, dy * (2 * window - 1) + dx, (2 * window - 1) ** 2)
        self.mask = torch.where(same, 0.0, MASKED).reshape(g, 1, gs, gs).to(device)
        self.bias_rows = rows.reshape(-1).to(device)
        if len(slots) == n and bool((slots == torch.arange(n)).all()):
            self.gather = self.scatter = None
        else:
            present = (slots >= 0).nonzero().flatten()
            scatter = torch.zeros(n, dtype=torch.int64)
            scatter[slots[present]] = present
            self.gather = slots.clamp(min=0).to(device)
            self.scatter = scatter.to(device)


def merge_plan(coords, resolution):
    """Merged tokens' coordinates and, four per merged token, its sources in Swin's order
    (x(0,0), x(1,0), x(0,1), x(1,1)); every 2x2 block is whole or absent."""
    at = {tuple(c): t for t, c in enumerate(coords)}
    merged, sources = [], []
    for i in range(resolution // 2):
        for j in range(resolution // 2):
            block = [at.get(c) for c in ((2 * i, 2 * j), (2 * i + 1, 2 * j),
                                         (2 * i, 2 * j + 1), (2 * i + 1, 2 * j + 1))]
            present = sum(b is not None for b in block)
            if present == 4:
                merged.append((i, j))
                sources += block
            elif present:
                raise ValueError("a mask unit smaller than a last-stage token")
    return merged, sources


class Plan:
    """Layouts and merges of every stage for the stage-0 tokens at `coords` (all if None)."""

    def __init__(self, geometry, coords, device):
        side = geometry[0]["resolution"]
        self.kept = None
        if coords is None:
            coords = [(y, x) for y in range(side) for x in range(side)]
        else:
            self.kept = torch.tensor([y * side + x for y, x in coords], device=device)
        self.stages = []
        for s, g in enumerate(geometry):
            layouts = [Layout(coords, g["window"], 0, device)]
            if g["shift"]:
                layouts.append(Layout(coords, g["window"], g["shift"], device))
            merge = None
            if s + 1 < len(geometry):
                coords, sources = merge_plan(coords, g["resolution"])
                merge = torch.tensor(sources, device=device)
            self.stages.append((layouts, merge))


class WindowAttention(nn.Module):
    def __init__(self, dim, heads, window, qkv_bias):
        super().__init__()
        self.heads, self.scale = heads, (dim // heads) ** -0.5
        self.relative_position_bias_table = nn.Parameter(
            torch.randn((2 * window - 1) ** 2, heads) * 0.02)
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x, layout):
        b, n, c = x.shape
        g, gs, h = layout.groups, layout.group_size, self.heads
        qkv = self.qkv(x)
        if layout.gather is not None:
            qkv = qkv[:, layout.gather]
        q, k, v = qkv.reshape(b, g, gs, 3, h, c // h).permute(3, 0, 1, 4, 2, 5)
        attn = (q * self.scale) @ k.transpose(-2, -1)
        table = torch.cat([self.relative_position_bias_table,
                           self.relative_position_bias_table.new_zeros(1, h)])
        bias = table[layout.bias_rows].reshape(g, gs, gs, h).permute(0, 3, 1, 2)
        attn = (attn + bias + layout.mask.to(attn.dtype)).softmax(-1)
        out = (attn @ v).permute(0, 1, 3, 2, 4).reshape(b, g * gs, c)
        if layout.scatter is not None:
            out = out[:, layout.scatter]
        return self.proj(out)


class Mlp(nn.Module):
    def __init__(self, dim, ratio):
        super().__init__()
        self.fc1 = nn.Linear(dim, int(dim * ratio))
        self.fc2 = nn.Linear(int(dim * ratio), dim)

    def forward(self, x):
        return self.fc2(F.gelu(self.fc1(x)))


class SwinBlock(nn.Module):
    def __init__(self, dim, heads, window, mlp_ratio, qkv_bias, eps):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=eps)
        self.attn = WindowAttention(dim, heads, window, qkv_bias)
        self.norm2 = nn.LayerNorm(dim, eps=eps)
        self.mlp = Mlp(dim, mlp_ratio)

    def forward(self, x, layout):
        x = x + self.attn(self.norm1(x), layout)
        return x + self.mlp(self.norm2(x))


class PatchMerging(nn.Module):
    def __init__(self, dim, eps):
        super().__init__()
        self.norm = nn.LayerNorm(4 * dim, eps=eps)
        self.reduction = nn.Linear(4 * dim, 2 * dim, bias=False)

    def forward(self, x, sources):
        b, _, c = x.shape
        return self.reduction(self.norm(x[:, sources].reshape(b, -1, 4 * c)))


class Stage(nn.Module):
    def __init__(self, blocks, downsample):
        super().__init__()
        self.blocks = nn.ModuleList(blocks)
        self.downsample = downsample


class PatchEmbed(nn.Module):
    def __init__(self, in_chans, dim, patch, eps):
        super().__init__()
        self.proj = nn.Conv2d(in_chans, dim, patch, patch)
        self.norm = nn.LayerNorm(dim, eps=eps)

    def forward(self, x):
        return self.norm(self.proj(x).flatten(2).transpose(1, 2))


class SwinEncoder(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        eps = cfg["norm_eps"]
        self.patch_embed = PatchEmbed(cfg["in_chans"], cfg["embed_dim"], cfg["patch_size"], eps)
        self.geometry = []
        first = cfg["img_size"] // cfg["patch_size"]
        stages = []
        for s, depth in enumerate(cfg["depths"]):
            res, dim = first >> s, cfg["embed_dim"] << s
            window, shift = (res, 0) if res <= cfg["window_size"] else (
                cfg["window_size"], cfg["window_size"] // 2)
            self.geometry.append({"resolution": res, "window": window, "shift": shift})
            blocks = [SwinBlock(dim, cfg["num_heads"][s], window, cfg["mlp_ratio"],
                                cfg["qkv_bias"], eps) for _ in range(depth)]
            last = s + 1 == len(cfg["depths"])
            stages.append(Stage(blocks, None if last else PatchMerging(dim, eps)))
        self.layers = nn.ModuleList(stages)
        self.out_dim = cfg["embed_dim"] << (len(cfg["depths"]) - 1)
        self.norm = nn.LayerNorm(self.out_dim, eps=eps)

    def mask_unit(self):
        return self.cfg["patch_size"] << (len(self.cfg["depths"]) - 1)

    def forward_plan(self, tokens, plan):
        x = tokens if plan.kept is None else tokens[:, plan.kept]
        for stage, (layouts, merge) in zip(self.layers, plan.stages):
            for b, block in enumerate(stage.blocks):
                x = block(x, layouts[b % 2 % len(layouts)])
            if stage.downsample is not None:
                x = stage.downsample(x, merge)
        return self.norm(x)


def sincos_2d(dim, side):
    """MAE's fixed 2-D table: the column index in the first half, the row in the second."""
    omega = 1.0 / 10000 ** (torch.arange(dim // 4, dtype=torch.float64) / (dim / 4))
    r, c = torch.meshgrid(torch.arange(side), torch.arange(side), indexing="ij")
    parts = [f(p.reshape(-1, 1) * omega) for p in (c, r) for f in (torch.sin, torch.cos)]
    return torch.cat(parts, 1).float().unsqueeze(0)


class ViTBlock(nn.Module):
    """timm's ViT block (the MAE decoder's), exact GELU."""

    def __init__(self, dim, heads, mlp_ratio, eps):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=eps)
        self.attn = nn.Module()
        self.attn.qkv = nn.Linear(dim, 3 * dim)
        self.attn.proj = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim, eps=eps)
        self.mlp = Mlp(dim, mlp_ratio)
        self.heads = heads

    def forward(self, x):
        b, n, c = x.shape
        q, k, v = self.attn.qkv(self.norm1(x)).reshape(b, n, 3, self.heads, -1).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, n, c)
        x = x + self.attn.proj(y)
        return x + self.mlp(self.norm2(x))


class GreenMIM(nn.Module):
    """The encoder on the visible tokens, then MAE's decoder over every mask unit (official
    placement: row ids_restore[j] of cat(latent, mask tokens) goes to unit j)."""

    def __init__(self, cfg):
        super().__init__()
        self.encoder = SwinEncoder(cfg)
        d, side = cfg["decoder_embed_dim"], cfg["img_size"] // self.encoder.mask_unit()
        self.decoder_embed = nn.Linear(self.encoder.out_dim, d)
        self.mask_token = nn.Parameter(torch.randn(1, 1, d) * 0.02)
        self.decoder_pos_embed = nn.Parameter(sincos_2d(d, side), requires_grad=False)
        self.decoder_blocks = nn.ModuleList(
            ViTBlock(d, cfg["decoder_num_heads"], cfg["decoder_mlp_ratio"], cfg["norm_eps"])
            for _ in range(cfg["decoder_depth"]))
        self.decoder_norm = nn.LayerNorm(d, eps=cfg["norm_eps"])
        self.decoder_pred = nn.Linear(d, self.encoder.mask_unit() ** 2 * cfg["in_chans"])

    def plan(self, visible_units, device):
        """The stage plans for the visible units (raster indices) of the batch's mask."""
        unit_side = self.encoder.cfg["img_size"] // self.encoder.mask_unit()
        per = self.encoder.mask_unit() // self.encoder.cfg["patch_size"]
        side = unit_side * per
        vis = set(int(u) for u in visible_units)
        coords = [(y, x) for y in range(side) for x in range(side)
                  if (y // per) * unit_side + x // per in vis]
        return Plan(self.encoder.geometry, coords, device)

    def forward(self, images, ids_restore, plan):
        latent = self.encoder.forward_plan(self.encoder.patch_embed(images), plan)
        x = self.decoder_embed(latent)
        b, keep, d = x.shape
        tokens = self.mask_token.expand(b, ids_restore.shape[1] - keep, d).to(x.dtype)
        x = torch.cat([x, tokens], 1)
        x = torch.gather(x, 1, ids_restore.unsqueeze(-1).expand(-1, -1, d))
        x = x + self.decoder_pos_embed.to(x.dtype)
        for block in self.decoder_blocks:
            x = block(x)
        return self.decoder_pred(self.decoder_norm(x))


class SimMIMStyle(nn.Module):
    """The dense baseline Ember compares with (src/mim/simmim.rs): every token through the
    encoder, masked ones replaced by a learnt mask token, one Linear from each last-stage
    token (one per mask unit) to its pixels."""

    def __init__(self, cfg):
        super().__init__()
        self.encoder = SwinEncoder(cfg)
        self.mask_token = nn.Parameter(torch.randn(1, 1, cfg["embed_dim"]) * 0.02)
        self.decoder_pred = nn.Linear(self.encoder.out_dim,
                                      self.encoder.mask_unit() ** 2 * cfg["in_chans"])
        self.dense = Plan(self.encoder.geometry, None, "cpu")

    def to(self, *args, **kwargs):
        out = super().to(*args, **kwargs)
        device = next(self.parameters()).device
        self.dense = Plan(self.encoder.geometry, None, device)
        return out

    def forward(self, images, unit_mask):
        """`unit_mask` [units] float, 1 on masked units."""
        x = self.encoder.patch_embed(images)
        side = int(math.isqrt(x.shape[1]))
        unit_side = int(math.isqrt(unit_mask.shape[0]))
        per = side // unit_side
        w = unit_mask.reshape(unit_side, 1, unit_side, 1).expand(-1, per, -1, per)
        w = w.reshape(1, side * side, 1).to(x.dtype)
        x = x * (1 - w) + self.mask_token.to(x.dtype) * w
        return self.decoder_pred(self.encoder.forward_plan(x, self.dense))


def patchify(images, p):
    """[b, c, h, w] -> [b, units, p * p * c], each unit's pixels (row, col, channel)."""
    b, c, h, w = images.shape
    x = images.reshape(b, c, h // p, p, w // p, p)
    return torch.einsum("nchpwq->nhwpqc", x).reshape(b, (h // p) * (w // p), p * p * c)


def masked_loss(pred, images, unit_mask, p):
    """The official forward_loss with norm_pix_loss: per-unit normalised target (unbiased
    variance), mean squared error averaged over the masked units."""
    target = patchify(images, p)
    mean, var = target.mean(-1, keepdim=True), target.var(-1, keepdim=True)
    target = (target - mean) / (var + 1e-6) ** 0.5
    loss = ((pred.float() - target) ** 2).mean(-1)
    m = unit_mask.expand_as(loss)
    return (loss * m).sum() / m.sum()


def random_units(units, ratio, generator):
    """MAE's draw for one mask: (visible raster indices, ids_restore, mask [units])."""
    noise = torch.rand(units, generator=generator)
    order = noise.argsort()
    keep = int(units * (1 - ratio))
    ids_restore = order.argsort()
    mask = torch.ones(units)
    mask[order[:keep]] = 0
    return order[:keep].sort().values, ids_restore, mask
