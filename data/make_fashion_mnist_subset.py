"""Write the Fashion-MNIST subset in data/fashion_mnist from the official files: the first 1,010 images of each class
of the training file (10,100: 9,600 to train, 500 to validate) and the first 200 of each class of the test file (2,000),
in their original order and IDX format, gzipped without a timestamp so that the output is the same every time.
Run from the repository root: python data/make_fashion_mnist_subset.py FOLDER_WITH_THE_OFFICIAL_FILES"""
import gzip
import struct
import sys
from pathlib import Path

import numpy as np

PER_CLASS = {"train": 1010, "t10k": 200}
OUT = Path(__file__).resolve().parent/"fashion_mnist"


def read_idx(path: Path) -> np.ndarray:
    with gzip.open(path) as f:
        zero, dtype, ndim = struct.unpack(">HBB", f.read(4))
        assert zero == 0 and dtype == 0x08, f"{path}: not an IDX file of unsigned bytes"
        dims = struct.unpack(">" + "I" * ndim, f.read(4 * ndim))
        return np.frombuffer(f.read(), dtype=np.uint8).reshape(dims)


def write_idx(path: Path, a: np.ndarray):
    head = struct.pack(">HBB", 0, 0x08, a.ndim) + struct.pack(">" + "I" * a.ndim, *a.shape)
    path.write_bytes(gzip.compress(head + a.tobytes(), compresslevel=9, mtime=0))


def main(src: Path):
    OUT.mkdir(exist_ok=True)
    for part, k in PER_CLASS.items():
        images, labels = read_idx(src/f"{part}-images-idx3-ubyte.gz"), read_idx(src/f"{part}-labels-idx1-ubyte.gz")
        keep = np.sort(np.concatenate([np.flatnonzero(labels == c)[:k] for c in range(10)]))
        write_idx(OUT/f"{part}-images-idx3-ubyte.gz", images[keep])
        write_idx(OUT/f"{part}-labels-idx1-ubyte.gz", labels[keep])
        print(part, len(keep), np.bincount(labels[keep]).tolist())


if __name__ == "__main__":
    main(Path(sys.argv[1]))
