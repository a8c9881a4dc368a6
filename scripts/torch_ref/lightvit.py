"""LightViT in PyTorch, for measuring Ember against PyTorch on the same machine
(scripts/gpu_check.sh). Our own code, written to Ember's model (crates/ember-models/src/
lightvit), which follows the official hunto/image_classification_sota lib/models/lightvit.py:
the same state_dict names, so the parity fixture's official weights load and
`check_lightvit.py` compares the outputs with the official ones."""

import torch
import torch.nn as nn
import torch.nn.functional as F

CONFIGS = {
    # embed_dims, num_layers, num_heads, num_tokens (ImageNet, 224 px, patch 8, window 7)
    "lightvit_tiny": ([64, 128, 256], [2, 6, 6], [2, 4, 8], 8),
    "lightvit_small": ([96, 192, 384], [2, 6, 6], [3, 6, 12], 16),
    "lightvit_base": ([128, 256, 512], [3, 8, 6], [4, 8, 16], 24),
}


def stem_strides(patch_size):
    return {2: [1, 1, 1, 1, 2], 4: [2, 1, 1, 1, 2]}.get(patch_size, [2, 1, 1, 2, 2])


class ConvStem(nn.Module):
    def __init__(self, in_chans, dim, patch_size):
        super().__init__()
        sd = dim // 2
        s = stem_strides(patch_size)
        layers = []
        for i in range(4):
            cin, groups = (in_chans, 1) if i == 0 else (sd, sd)
            layers += [nn.Conv2d(cin, sd, 3, s[i], 1, groups=groups, bias=False),
                       nn.BatchNorm2d(sd), nn.GELU()]
        self.stem = nn.Sequential(*layers)
        self.proj = nn.Conv2d(sd, dim, 3, s[4], 1)
        self.norm = nn.LayerNorm(dim, eps=1e-5)

    def forward(self, x):
        x = self.proj(self.stem(x))
        h, w = x.shape[2:]
        return self.norm(x.flatten(2).transpose(1, 2)), (h, w)


class BiAttn(nn.Module):
    def __init__(self, c):
        super().__init__()
        r = c // 4
        self.norm = nn.LayerNorm(c, eps=1e-5)
        self.global_reduce = nn.Linear(c, r)
        self.local_reduce = nn.Linear(c, r)
        self.channel_select = nn.Linear(r, c)
        self.spatial_select = nn.Linear(2 * r, 1)

    def forward(self, x):
        z = self.norm(x)
        g = F.gelu(self.global_reduce(z.mean(1, keepdim=True)))
        local = F.gelu(self.local_reduce(z))
        c_attn = torch.sigmoid(self.channel_select(g))
        both = torch.cat([local, g.expand(-1, local.shape[1], -1)], dim=-1)
        s_attn = torch.sigmoid(self.spatial_select(both))
        return x * c_attn * s_attn


class BiAttnMlp(nn.Module):
    def __init__(self, c, hidden):
        super().__init__()
        self.fc1 = nn.Linear(c, hidden)
        self.fc2 = nn.Linear(hidden, c)
        self.attn = BiAttn(c)

    def forward(self, x):
        return self.attn(self.fc2(F.gelu(self.fc1(x))))


def relative_position_index(ws):
    coords = torch.stack(torch.meshgrid(torch.arange(ws), torch.arange(ws), indexing="ij")).flatten(1)
    rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0) + (ws - 1)
    return (rel[..., 0] * (2 * ws - 1) + rel[..., 1]).flatten()


class Attention(nn.Module):
    def __init__(self, dim, heads, tokens, ws):
        super().__init__()
        self.heads, self.tokens, self.ws = heads, tokens, ws
        self.scale = (dim // heads) ** -0.5
        self.qkv = nn.Linear(dim, 3 * dim)
        self.kv_global = nn.Linear(dim, 2 * dim)
        self.proj = nn.Linear(dim, dim)
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * ws - 1) ** 2, heads))
        self.register_buffer("relative_position_index", relative_position_index(ws))

    def attend(self, q, k, v, bias=None):
        logits = (q @ k.transpose(-2, -1)) * self.scale
        if bias is not None:
            logits = logits + bias
        return logits.softmax(-1) @ v

    def forward(self, x, hw):
        (b, n, c), (h, w) = x.shape, hw
        nh, nt, ws = self.heads, self.tokens, self.ws
        d, a, gh, gw = c // nh, ws * ws, h // ws, w // ws
        qkv = self.qkv(x)
        q_g = qkv[:, :nt, :c].reshape(b, nt, nh, d).permute(2, 0, 1, 3)

        def windowed(part):
            t = qkv[:, nt:, part * c:(part + 1) * c]
            t = t.reshape(b, gh, ws, gw, ws, nh, d).permute(5, 0, 1, 3, 2, 4, 6)
            return t.reshape(nh, b * gh * gw, a, d)

        q, k, v = windowed(0), windowed(1), windowed(2)
        bias = self.relative_position_bias_table[self.relative_position_index]
        bias = bias.reshape(a, a, nh).permute(2, 0, 1).unsqueeze(1)
        image = lambda t: t.reshape(nh, b, h * w, d)
        local = image(self.attend(q, k, v, bias))
        agg = self.attend(q_g, image(k), image(v)).permute(1, 2, 0, 3).reshape(b, nt, c)
        kv = self.kv_global(agg).reshape(b, nt, 2, nh, d).permute(2, 3, 0, 1, 4)
        bcast = self.attend(image(q), kv[0], kv[1])

        def to_grid(t):
            t = t.reshape(nh, b, gh, gw, ws, ws, d).permute(1, 2, 4, 3, 5, 0, 6)
            return t.reshape(b, h * w, c)

        return self.proj(torch.cat([agg, to_grid(local + bcast)], dim=1))


class Block(nn.Module):
    def __init__(self, dim, heads, tokens, ws, mlp_ratio):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, heads, tokens, ws)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = BiAttnMlp(dim, int(dim * mlp_ratio))

    def forward(self, x, hw):
        x = x + self.attn(self.norm1(x), hw)
        return x + self.mlp(self.norm2(x))


class ResidualMergePatch(nn.Module):
    def __init__(self, dim, out, tokens):
        super().__init__()
        self.tokens = tokens
        self.norm = nn.LayerNorm(4 * dim, eps=1e-5)
        self.reduction = nn.Linear(4 * dim, out, bias=False)
        self.norm2 = nn.LayerNorm(dim, eps=1e-5)
        self.proj = nn.Linear(dim, out, bias=False)
        self.res_proj = nn.Linear(dim, out, bias=False)

    def forward(self, x, hw):
        (b, n, c), (h, w), nt = x.shape, hw, self.tokens
        grid = x[:, nt:].reshape(b, h // 2, 2, w // 2, 2, c)
        parts = [grid[:, :, r, :, s].reshape(b, -1, c) for r, s in ((0, 0), (1, 0), (0, 1), (1, 1))]
        pooled = torch.stack(parts).amax(0)
        image = self.reduction(self.norm(torch.cat(parts, -1))) + self.res_proj(pooled)
        return torch.cat([self.proj(self.norm2(x[:, :nt])), image], dim=1), (h // 2, w // 2)


class LightViT(nn.Module):
    def __init__(self, embed_dims, num_layers, num_heads, num_tokens, patch_size=8, in_chans=3,
                 num_classes=1000, mlp_ratios=(8, 4, 4), window_size=7, neck_dim=1280, **_):
        super().__init__()
        self.patch_embed = ConvStem(in_chans, embed_dims[0], patch_size)
        self.global_token = nn.Parameter(torch.zeros(1, num_tokens, embed_dims[0]))
        self.stages = nn.ModuleList()
        for s, dim in enumerate(embed_dims):
            blocks = [] if s == 0 else [ResidualMergePatch(embed_dims[s - 1], dim, num_tokens)]
            blocks += [Block(dim, num_heads[s], num_tokens, window_size, mlp_ratios[s])
                       for _ in range(num_layers[s])]
            self.stages.append(nn.ModuleList(blocks))
        self.norm = nn.LayerNorm(embed_dims[-1], eps=1e-6)
        self.neck = nn.Sequential(nn.Linear(embed_dims[-1], neck_dim), nn.LayerNorm(neck_dim), nn.GELU())
        self.head = nn.Linear(neck_dim, num_classes)

    def forward(self, x):
        x, hw = self.patch_embed(x)
        x = torch.cat([self.global_token.expand(x.shape[0], -1, -1), x], dim=1)
        for stage in self.stages:
            for layer in stage:
                if isinstance(layer, ResidualMergePatch):
                    x, hw = layer(x, hw)
                else:
                    x = layer(x, hw)
        return self.head(self.neck(self.norm(x)).mean(1))


def build(arch="lightvit_tiny", **overrides):
    dims, layers, heads, tokens = CONFIGS[arch]
    return LightViT(dims, layers, heads, tokens, **overrides)
