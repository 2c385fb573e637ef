"""Your own data, the way `mtl-split train` reads it: a folder of images and a labels CSV.

Builds one from scikit-learn's bundled handwritten digits (1797 real 8x8 scans, no download):
each image shows two digits side by side, and the two tasks are the `left` and the `right`
digit (10 classes each). The split column has train and test rows only, like most people's
data: training carves its val split out of train (data.val_fraction). Test images are made
from digit scans that no train image uses.

    python training/examples/digits_csv.py --out data/digits        # needs scikit-learn
    mtl-split train --config training/configs/custom.yaml --set data.spec=csv:data/digits/labels.csv --out runs/digits
"""
from __future__ import annotations

import argparse
import csv
from pathlib import Path

import cv2
import numpy as np


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--out", type=Path, required=True, help="folder for images/ and labels.csv")
    p.add_argument("--train", type=int, default=2400, help="train images")
    p.add_argument("--test", type=int, default=600, help="test images")
    p.add_argument("--seed", type=int, default=0, help="which digit scans go where")
    args = p.parse_args()
    from sklearn.datasets import load_digits

    digits = load_digits()
    scans = (digits.images / 16.0 * 255).astype(np.uint8)
    rng = np.random.default_rng(args.seed)
    order = rng.permutation(len(scans))
    pools = {"train": order[: int(len(order) * 0.8)], "test": order[int(len(order) * 0.8):]}
    (args.out / "images").mkdir(parents=True, exist_ok=True)
    rows = []
    for split, count in (("train", args.train), ("test", args.test)):
        for i in range(count):
            left, right = rng.choice(pools[split], 2)
            pair = np.concatenate([scans[left], scans[right]], axis=1)  # 8 x 16
            image = cv2.resize(pair, (64, 32), interpolation=cv2.INTER_CUBIC)
            name = f"images/{split}_{i:05d}.png"
            cv2.imwrite(str(args.out / name), cv2.cvtColor(image, cv2.COLOR_GRAY2BGR))
            rows.append({"image": name, "left": int(digits.target[left]), "right": int(digits.target[right]),
                         "split": split})
    with open(args.out / "labels.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    print(f"{len(rows)} images and {args.out / 'labels.csv'} written")


if __name__ == "__main__":
    main()
