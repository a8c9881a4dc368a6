#!/usr/bin/env python3
"""Regenerates assets/fashion-mnist-subset: the first 400 train and 100 test images of each
class of Fashion-MNIST (file order, so the subset is stratified and reproducible), as gzip
IDX files. Reads Debian's dataset-fashion-mnist (or the folder given as the first argument)."""
import gzip, os, struct, sys

src = sys.argv[1] if len(sys.argv) > 1 else "/usr/share/datasets/fashion-mnist"
dst = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "assets", "fashion-mnist-subset")
os.makedirs(dst, exist_ok=True)

def read(name):
    with gzip.open(os.path.join(src, name + ".gz")) as f:
        data = f.read()
    rank = data[3]
    dims = struct.unpack(">" + "I" * rank, data[4:4 + 4 * rank])
    return dims, data[4 + 4 * rank:]

def write(name, dims, body):
    header = bytes([0, 0, 8, len(dims)]) + struct.pack(">" + "I" * len(dims), *dims)
    # mtime=0 keeps the bytes identical from run to run
    with open(os.path.join(dst, name + ".gz"), "wb") as raw:
        with gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=9, mtime=0) as f:
            f.write(header + body)

for prefix, per_class in (("train", 400), ("t10k", 100)):
    _, labels = read(f"{prefix}-labels-idx1-ubyte")
    _, images = read(f"{prefix}-images-idx3-ubyte")
    taken, keep = [0] * 10, []
    for i, label in enumerate(labels):
        if taken[label] < per_class:
            taken[label] += 1
            keep.append(i)
    write(f"{prefix}-labels-idx1-ubyte", (len(keep),), bytes(labels[i] for i in keep))
    write(f"{prefix}-images-idx3-ubyte", (len(keep), 28, 28), b"".join(images[i * 784:(i + 1) * 784] for i in keep))
    print(f"{prefix}: {len(keep)} images")
