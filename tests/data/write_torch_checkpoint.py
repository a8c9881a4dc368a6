#!/usr/bin/env python3
"""Test helper: write the tensors of a .safetensors file as `torch.save` would, in PyTorch's
zip format (data.pkl with persistent storage ids, one raw file per storage), without torch.

    write_torch_checkpoint.py IN.safetensors OUT.pth [--wrap model] [--prefix module.]

Stand-in modules named `torch` and `torch._utils` let the standard pickler emit the same
GLOBAL opcodes torch does (`torch._utils._rebuild_tensor_v2`, `torch.FloatStorage`), so the
converter is tested against the layout a real file has.
"""

import argparse
import json
import pickle
import struct
import sys
import types
import zipfile
from collections import OrderedDict

torch = types.ModuleType("torch")
utils = types.ModuleType("torch._utils")
sys.modules["torch"], sys.modules["torch._utils"] = torch, utils
torch._utils = utils

STORAGE = {"F32": "FloatStorage", "I64": "LongStorage", "F16": "HalfStorage"}
WIDTH = {"F32": 4, "I64": 8, "F16": 2}
for name in STORAGE.values():
    cls = type(name, (), {"__module__": "torch"})
    setattr(torch, name, cls)


def _rebuild_tensor_v2(*args):
    raise AssertionError("only pickled, never called")


_rebuild_tensor_v2.__module__ = "torch._utils"
utils._rebuild_tensor_v2 = _rebuild_tensor_v2


class Storage:
    def __init__(self, key, dtype, data):
        self.key, self.dtype, self.data = key, dtype, data


class Tensor:
    def __init__(self, storage, shape):
        self.storage, self.shape = storage, shape

    def __reduce__(self):
        stride, acc = [], 1
        for s in reversed(self.shape):
            stride.insert(0, acc)
            acc *= s
        return (_rebuild_tensor_v2, (self.storage, 0, tuple(self.shape), tuple(stride), False, OrderedDict()))


class Pickler(pickle.Pickler):
    def persistent_id(self, obj):
        if isinstance(obj, Storage):
            numel = len(obj.data) // WIDTH[obj.dtype]
            return ("storage", getattr(torch, STORAGE[obj.dtype]), obj.key, "cpu", numel)
        return None


def main():
    src, dst = sys.argv[1], sys.argv[2]
    wrap = sys.argv[sys.argv.index("--wrap") + 1] if "--wrap" in sys.argv else None
    prefix = sys.argv[sys.argv.index("--prefix") + 1] if "--prefix" in sys.argv else ""
    raw = open(src, "rb").read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    body = raw[8 + n:]
    state, storages = OrderedDict(), []
    for i, (name, meta) in enumerate((k, v) for k, v in header.items() if k != "__metadata__"):
        a, b = meta["data_offsets"]
        storage = Storage(str(i), meta["dtype"], body[a:b])
        storages.append(storage)
        state[prefix + name] = Tensor(storage, meta["shape"])
    # Training code saves more than the weights; an argparse.Namespace is an object the
    # converter must skip without running anything.
    extras = {"epoch": 300, "optimizer": {"lr": 1e-3}, "args": argparse.Namespace(lr=1e-3)}
    obj = {wrap: state, **extras} if wrap else state
    with zipfile.ZipFile(dst, "w") as z:
        with z.open("archive/data.pkl", "w") as f:
            Pickler(f, protocol=2).dump(obj)
        z.writestr("archive/byteorder", "little")
        for s in storages:
            z.writestr(f"archive/data/{s.key}", s.data)
        z.writestr("archive/version", "3\n")


if __name__ == "__main__":
    main()
