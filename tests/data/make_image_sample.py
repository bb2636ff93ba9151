"""Write the bundled image sample, ftrecipes/samples/shapes/: 32x32 pictures of six kinds of shape, drawn here.

One sub-folder per class (the `imagefolder` layout), 30 images each. Each image has a random background colour
with pixel noise, and one shape of random colour, size, position and rotation; every seventh image is saved in
greyscale, so the recipe's conversion to RGB is always exercised. Deterministic: running it again writes the
same files. Run from the repository root: python tests/data/make_image_sample.py"""
import math
import random
import shutil
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

SIZE, PER_CLASS, SEED = 32, 30, 0
CLASSES = ("circle", "ring", "square", "triangle", "cross", "stripes")
OUT = Path(__file__).resolve().parents[2]/"ftrecipes"/"samples"/"shapes"


def _polygon(cx, cy, r, sides, angle):
    return [(cx + r * math.cos(angle + 2 * math.pi * k / sides), cy + r * math.sin(angle + 2 * math.pi * k / sides))
            for k in range(sides)]


def draw(kind: str, rng: random.Random) -> Image.Image:
    bg = tuple(rng.randrange(0, 256) for _ in range(3))
    fg = tuple((c + rng.randrange(96, 160)) % 256 for c in bg)  # far enough from the background to be seen
    noise = np.random.default_rng(rng.randrange(2**32)).normal(0, 12, (SIZE, SIZE, 3))
    im = Image.fromarray(np.clip(np.array(bg, dtype=float) + noise, 0, 255).astype(np.uint8))
    d = ImageDraw.Draw(im)
    r = rng.uniform(7, 12)
    cx, cy = rng.uniform(r + 1, SIZE - r - 1), rng.uniform(r + 1, SIZE - r - 1)
    angle = rng.uniform(0, 2 * math.pi)
    if kind == "circle": d.ellipse([cx - r, cy - r, cx + r, cy + r], fill=fg)
    elif kind == "ring": d.ellipse([cx - r, cy - r, cx + r, cy + r], outline=fg, width=3)
    elif kind == "square": d.polygon(_polygon(cx, cy, r * 1.2, 4, angle), fill=fg)
    elif kind == "triangle": d.polygon(_polygon(cx, cy, r * 1.2, 3, angle), fill=fg)
    elif kind == "cross":
        for a in (angle, angle + math.pi / 2):
            dx, dy = r * math.cos(a), r * math.sin(a)
            d.line([cx - dx, cy - dy, cx + dx, cy + dy], fill=fg, width=4)
    elif kind == "stripes":
        for off in range(-SIZE, SIZE, 8):
            d.line([off, 0, off + SIZE * math.cos(angle) * 0.5, SIZE], fill=fg, width=3)
    return im


def main():
    rng = random.Random(SEED)
    if OUT.exists(): shutil.rmtree(OUT)
    n = 0
    for kind in CLASSES:
        (OUT/kind).mkdir(parents=True)
        for i in range(PER_CLASS):
            im = draw(kind, rng)
            if n % 7 == 0: im = im.convert("L")
            im.save(OUT/kind/f"{kind}_{i:03d}.png", optimize=True)
            n += 1
    print(f"wrote {n} images in {len(CLASSES)} classes to {OUT}")


if __name__ == "__main__":
    main()
