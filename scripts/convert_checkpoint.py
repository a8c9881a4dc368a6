#!/usr/bin/env python3
"""Convert a released PyTorch checkpoint into an Ember checkpoint.

    scripts/convert_checkpoint.py lightvit_tiny_78.7.ckpt lightvit_tiny.safetensors --arch lightvit_tiny

The input is what `torch.save` writes (the zip format of PyTorch >= 1.6): a bare state_dict,
or a dict holding one under `state_dict`, `model` or `ema_model` (`--key` picks). Tensor names
are kept as they are (a leading `module.` from DataParallel is dropped), so the official
names load into Ember's models unchanged. The output is one .safetensors file with the
`ember.*` metadata every Ember tool reads: the arch family and its full config (taken from
`ember info --arch ARCH`, the single source of presets), the labels, and the preprocessing.

Only the Python standard library is used: the pickle inside the zip is read with a restricted
unpickler that rebuilds tensors from their raw storages and nothing else (no code from the
file runs, and torch need not be installed).
"""

import argparse
import json
import pickle
import struct
import subprocess
import sys
import zipfile
from collections import OrderedDict
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

# torch storage class -> (safetensors dtype, bytes per element, struct code)
STORAGES = {
    "FloatStorage": ("F32", 4),
    "DoubleStorage": ("F64", 8),
    "HalfStorage": ("F16", 2),
    "BFloat16Storage": ("BF16", 2),
    "LongStorage": ("I64", 8),
    "IntStorage": ("I32", 4),
    "ShortStorage": ("I16", 2),
    "CharStorage": ("I8", 1),
    "ByteStorage": ("U8", 1),
    "BoolStorage": ("BOOL", 1),
}


class BadInput(Exception):
    pass


class Tensor:
    """A tensor as stored: dtype, shape, and its elements' bytes in row-major order."""

    def __init__(self, dtype, shape, data):
        self.dtype, self.shape, self.data = dtype, list(shape), data


class Opaque:
    """Stands in for any object in the file that is not a tensor (optimizer state, args)."""

    def __init__(self, *args, **kwargs):
        pass

    def __setstate__(self, state):
        pass


def rebuild_tensor(storage, offset, size, stride, *_):
    dtype, raw, width = storage
    size, stride = list(size), list(stride)
    count = 1
    for s in size:
        count *= s
    contiguous, expect = True, 1
    for s, st in zip(reversed(size), reversed(stride)):
        if s != 1 and st != expect:
            contiguous = False
        expect *= s
    if contiguous:
        data = raw[offset * width:(offset + count) * width]
    else:
        # Gather element by element (rare in a state_dict: views saved without .clone()).
        out = bytearray()
        index = [0] * len(size)
        for _ in range(count):
            at = offset + sum(i * st for i, st in zip(index, stride))
            out += raw[at * width:(at + 1) * width]
            for d in reversed(range(len(size))):
                index[d] += 1
                if index[d] < size[d]:
                    break
                index[d] = 0
        data = bytes(out)
    return Tensor(dtype, size, data)


def numel(t):
    count = 1
    for s in t.shape:
        count *= s
    return count


def rebuild_parameter(tensor, *_):
    return tensor


class Unpickler(pickle.Unpickler):
    def __init__(self, file, archive, prefix):
        super().__init__(file)
        self.archive, self.prefix = archive, prefix

    def find_class(self, module, name):
        if module == "collections" and name == "OrderedDict":
            return OrderedDict
        if module == "torch._utils" and name == "_rebuild_tensor_v2":
            return rebuild_tensor
        if module == "torch._utils" and name == "_rebuild_parameter":
            return rebuild_parameter
        if module == "torch" and name in STORAGES:
            return name
        return Opaque

    def persistent_load(self, pid):
        # ('storage', storage class, key, location, element count)
        kind, storage_type, key, _location, _numel = pid
        if kind != "storage" or storage_type not in STORAGES:
            raise BadInput(f"unsupported storage {storage_type!r}")
        dtype, width = STORAGES[storage_type]
        raw = self.archive.read(f"{self.prefix}/data/{key}")
        return (dtype, raw, width)


def read_torch(path):
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as e:
        raise BadInput(f"{path}: not a PyTorch zip checkpoint ({e}); re-save it with torch >= 1.6")
    pkl = [n for n in archive.namelist() if n.endswith("/data.pkl")]
    if not pkl:
        raise BadInput(f"{path}: no data.pkl inside; not a torch.save file")
    prefix = pkl[0][: -len("/data.pkl")]
    byteorder = f"{prefix}/byteorder"
    if byteorder in archive.namelist() and archive.read(byteorder).strip() != b"little":
        raise BadInput(f"{path}: big-endian tensors are not supported")
    with archive.open(pkl[0]) as f:
        return Unpickler(f, archive, prefix).load()


def state_dict(obj, key):
    if isinstance(obj, dict) and any(isinstance(v, Tensor) for v in obj.values()) and key is None:
        return obj
    keys = [key] if key else ["state_dict", "model", "ema_model"]
    for k in keys:
        if isinstance(obj, dict) and isinstance(obj.get(k), dict):
            return obj[k]
    found = list(obj.keys()) if isinstance(obj, dict) else type(obj).__name__
    raise BadInput(f"no state_dict found (looked for {keys}; the file holds {found})")


def write_safetensors(path, tensors, metadata):
    header = {"__metadata__": metadata}
    offset, blobs = 0, []
    for name in sorted(tensors):
        t = tensors[name]
        header[name] = {"dtype": t.dtype, "shape": t.shape, "data_offsets": [offset, offset + len(t.data)]}
        offset += len(t.data)
        blobs.append(t.data)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    tmp = Path(str(path) + ".tmp")
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for b in blobs:
            f.write(b)
    tmp.replace(path)


def arch_info(ember, arch, model_config, image_size):
    cmd = [str(ember), "info", "--arch", arch, "--input-size", str(image_size)]
    if model_config:
        cmd += ["--model-config", model_config]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True)
    except OSError as e:
        raise BadInput(f"cannot run {ember} ({e}); build it with `cargo build --release` or pass --ember")
    if out.returncode != 0:
        message = out.stderr.strip() or f"{' '.join(cmd)} failed"
        raise BadInput(message.removeprefix("error: "))
    return json.loads(out.stdout)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("input", help="the .pth/.ckpt/.pt file torch.save wrote")
    p.add_argument("output", help="the .safetensors file to write")
    p.add_argument("--arch", required=True, help="Ember arch name, e.g. lightvit_tiny (see `ember info --arch`)")
    p.add_argument("--model-config", help="JSON overriding fields of the arch's config")
    p.add_argument("--key", help="where the state_dict is in a dict checkpoint (default: state_dict, model, ema_model)")
    p.add_argument("--labels", help="a text file with one class name per line (default: 0, 1, ...)")
    p.add_argument("--image-size", type=int, default=224, help="input side for ember predict (default 224)")
    p.add_argument("--ember", default=REPO / "target" / "release" / "ember", help="the ember binary")
    args = p.parse_args()
    try:
        info = arch_info(args.ember, args.arch, args.model_config, args.image_size)
        tensors = {}
        for name, t in state_dict(read_torch(args.input), args.key).items():
            if isinstance(t, Tensor):
                tensors[name[len("module."):] if name.startswith("module.") else name] = t
        floats = sum(numel(t) for n, t in tensors.items()
                     if t.dtype in ("F32", "F64", "F16", "BF16")
                     and not n.endswith(("running_mean", "running_var")))
        if floats != info["parameters"]:
            raise BadInput(f"{args.input} holds {floats} float parameters, {args.arch} has {info['parameters']}: another model or config")
        config = info["config"]
        classes = config.get("num_classes", 0)
        if args.labels:
            labels = [l.strip() for l in Path(args.labels).read_text().splitlines() if l.strip()]
        else:
            labels = [str(i) for i in range(classes)]
        if len(labels) != classes:
            raise BadInput(f"{len(labels)} labels for {classes} classes")
        imagenet = ([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])
        channels = config.get("in_chans", 3)
        mean, std = imagenet if channels == 3 else ([0.5] * channels, [0.5] * channels)
        metadata = {
            "ember.arch": info["family"],
            "ember.config": json.dumps(config),
            "ember.task": "classification",
            "ember.labels": json.dumps(labels),
            "ember.version": "converted",
            "ember.metrics": "{}",
            "ember.preprocess": json.dumps({"channels": channels, "height": args.image_size,
                                            "width": args.image_size, "mean": mean, "std": std}),
            "ember.source": Path(args.input).name,
        }
        write_safetensors(args.output, tensors, metadata)
    except (BadInput, OSError, KeyError) as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    print(json.dumps({"output": str(args.output), "arch": args.arch, "tensors": len(tensors), "parameters": floats}))


if __name__ == "__main__":
    main()
