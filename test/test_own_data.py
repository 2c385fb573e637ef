"""Your own images without friction (the issue a new user filed, item by item): a CSV with
train/test rows only, sizes that apply or say why not, run.json and the manifest telling the
real sizes, a run that fails saying so, `compare` describing the data it used, suspicious
labels named by row, empty splits refused before training, make-bag refusing empty output."""
from __future__ import annotations

import json
import logging
from pathlib import Path

import cv2
import numpy as np
import pytest

from mtl_split_training.config import config_from_dict
from mtl_split_training.datasets import DataOptions, open_data
from mtl_split_training.errors import TrainingError
from mtl_split_training.run import train_run
from mtl_split_tools.cli import main

CLASSES = ("circle", "square", "triangle", "cross")
FAST = {"train": {"epochs": 1, "batch_size": 8, "max_batches": 2, "eval_batch_size": 32, "threads": 1}}


def own_csv(root: Path, train: int = 48, test: int = 16, split: bool = True, extra: list[str] | None = None,
            image_name=lambda i: f"img/{i}.png") -> Path:
    """A user's folder: small PNGs, a label column of names and one of integers, train/test only."""
    (root / "img").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    lines = ["image,shape,size" + (",split" if split else "")]
    for i in range(train + test):
        cv2.imwrite(str(root / "img" / f"{i}.png"), rng.integers(0, 256, (18, 22, 3), dtype=np.uint8))
        lines.append(f"{image_name(i)},{CLASSES[i % 4]},{i % 3}" + ("," + ("train" if i < train else "test")
                                                                      if split else ""))
    (root / "labels.csv").write_text("\n".join(lines + (extra or [])) + "\n")
    return root / "labels.csv"


def _run(spec: str, out: Path, **data) -> dict:
    raw = {"name": "own", "data": {"spec": spec, "size": 32, **data}, **FAST}
    return train_run(config_from_dict(raw), raw, out)


def test_no_val_rows_a_seeded_fraction_of_train_becomes_val_and_the_log_says_so(tmp_path, caplog):
    spec = f"csv:{own_csv(tmp_path)}"
    with caplog.at_level(logging.INFO, logger="mtl_split"):
        source = open_data(spec, DataOptions(size=32, seed=3))
    assert source.sizes == {"train": 43, "val": 5, "test": 16} and source.carved == ("val",)
    assert "no val rows: 5 of the 48 train rows" in caplog.text and "seed 3" in caplog.text
    again, other = open_data(spec, DataOptions(size=32, seed=3)), open_data(spec, DataOptions(size=32, seed=4))
    assert list(again.split("val").rows) == list(source.split("val").rows) != list(other.split("val").rows)
    assert not set(source.split("val").rows) & set(source.split("train").rows)
    run = tmp_path / "run"
    _run(spec, run)  # trains (it failed after a full epoch before)
    meta = json.loads((run / "run.json").read_text())
    assert meta["status"] == "finished"
    assert meta["data"]["sizes"] == {"train": 43, "val": 5, "test": 16} and meta["data"]["carved"] == ["val"]
    model = json.loads((run / "model.json").read_text())
    assert model["extra"]["data"]["sizes"] == {"train": 43, "val": 5, "test": 16}
    # make-bag of that val split would be frames no file names as val: refused, as an empty split is.
    assert main(["make-bag", "--data", spec, "--split", "val", "--size", "32", "--out", str(tmp_path / "b")]) == 2
    assert not (tmp_path / "b").exists()


def test_sizes_subsample_seeded_or_say_they_cannot(tmp_path, caplog):
    spec = f"csv:{own_csv(tmp_path)}"
    with caplog.at_level(logging.INFO, logger="mtl_split"):
        small = open_data(spec, DataOptions(size=32, train_size=20, test_size=100))
    assert small.sizes == {"train": 20, "val": 5, "test": 16}
    assert "data.train_size 20: a seeded sample of 20 of its 43 train images" in caplog.text
    assert "data.test_size 100 is more than its 16 test images; all 16 are used" in caplog.text
    assert list(open_data(spec, DataOptions(size=32, train_size=20)).split("train").rows) == \
        list(small.split("train").rows)
    run = tmp_path / "run"
    _run(spec, run, train_size=20, test_size=100)
    assert json.loads((run / "run.json").read_text())["data"]["sizes"] == {"train": 20, "val": 5, "test": 16}
    # Procedural data: unset sizes are its defaults, and they are what run.json records.
    assert open_data("shapes", DataOptions(size=16, tasks=("shape",))).sizes == {"train": 6000, "val": 1000,
                                                                                  "test": 1000}


def test_a_failing_run_says_failed_not_running(tmp_path):
    path = own_csv(tmp_path)
    (tmp_path / "img" / "50.png").write_bytes(b"not a png")  # a test image; read only after training
    run = tmp_path / "run"
    with pytest.raises(TrainingError, match="not a readable image"):
        _run(f"csv:{path}", run)
    meta = json.loads((run / "run.json").read_text())
    assert meta["status"] == "failed" and "50.png" in meta["error"]


def test_empty_split_is_refused_before_training(tmp_path):
    path = own_csv(tmp_path, test=0)
    with pytest.raises(TrainingError, match="the test split is empty; give the CSV test rows"):
        _run(f"csv:{path}", tmp_path / "run")
    assert not (tmp_path / "run").exists()  # nothing written, nothing trained
    with pytest.raises(TrainingError, match="the val split is empty; .*raise data.val_fraction"):
        _run(f"csv:{own_csv(tmp_path / 'b')}", tmp_path / "run", val_fraction=0.0)
    with pytest.raises(TrainingError, match="fewer than one batch"):
        _run(f"csv:{own_csv(tmp_path / 'c')}", tmp_path / "run", train_size=4)
    assert main(["make-bag", "--data", f"csv:{path}", "--split", "test", "--out", str(tmp_path / "bag")]) == 2


def test_labels_mixing_integers_and_text_and_rare_classes_are_named_by_row(tmp_path, caplog):
    extra = ["img/0.png,circle,seven,train", "img/1.png,hexagon,1,train", "img/2.png,hexagon,2,test"]
    path = own_csv(tmp_path, extra=extra)
    with caplog.at_level(logging.INFO, logger="mtl_split"):
        source = open_data(f"csv:{path}", DataOptions(size=32))
    size = next(t for t in source.tasks if t.name == "size")
    assert size.classes == ("0", "1", "2", "seven")  # the user sees it became a class, and why:
    assert "column 'size' mixes integers and text; the text on line(s) 66 ('seven')" in caplog.text
    assert "column 'shape' has 1 class(es) with fewer than 5 examples" in caplog.text
    assert "'hexagon' 2 (line(s) 67, 68)" in caplog.text
    assert "'seven' 1 (line(s) 66)" in caplog.text


def test_compare_describes_the_data_it_used_and_the_full_command(tmp_path):
    spec = f"csv:{own_csv(tmp_path, train=24, test=8)}"
    config = tmp_path / "c.yaml"
    config.write_text(json.dumps({"name": "own", "data": {"spec": spec, "size": 32, "train_size": 16}, **FAST}))
    argv = ["compare", "--config", str(config), "--runs", str(tmp_path / "runs"), "--out", str(tmp_path / "rep")]
    assert main(argv) == 0
    assert main([*argv, "--reuse"]) == 0
    text = (tmp_path / "rep" / "results.md").read_text()
    assert f"MTL vs STL on the labelled images of {spec[4:]}" in text
    assert "16 training images" in text and "Test: 8 images" in text and "val: 2 images (carved out of train)" in text
    assert "procedural" not in text and "6000" not in text
    assert f"--out {tmp_path / 'rep'} --reuse`" in text
