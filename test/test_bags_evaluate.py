"""Bags are real rosbag2 files with ground truth; offline evaluation reports what the
bundle really predicts; the CLI fails with one clear line."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from rosbags.rosbag2 import Reader

from mtl_split_core.imaging import to_array
from mtl_split_core.runtime import EdgeModel, ServerModel, run_offline
from mtl_split_tools.bag_reading import read_frames
from mtl_split_tools.bags import BagError, decode_frame, write_bag
from mtl_split_tools.evaluate import EvalOptions, evaluate
from mtl_split_tools.metrics import accuracy, confusion, macro_f1

from helpers import shapes_classes

TASKS = ("shape", "scale")


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    from mtl_split_training.testing import make_tiny_bundle

    out = tmp_path_factory.mktemp("bundle")
    make_tiny_bundle(out, tasks=TASKS, size=32)
    return out


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mtl_split_tools.cli", *args], capture_output=True, text=True,
                          timeout=300)


@pytest.mark.parametrize("storage, compressed", [("mcap", False), ("sqlite3", True)])
def test_make_bag_writes_readable_rosbag2_with_ground_truth(tmp_path, storage, compressed):
    from mtl_split_training.datasets import iter_labelled_images

    bag = tmp_path / "bag"
    args = ["make-bag", "--frames", "12", "--size", "32", "--rate", "10", "--tasks", ",".join(TASKS),
            "--storage", storage, "--out", str(bag)]
    r = _cli(*args, *(["--compressed"] if compressed else []))
    assert r.returncode == 0, r.stderr
    with Reader(bag) as reader:  # an independent reader of the rosbag2 format
        counts = {c.topic: c.msgcount for c in reader.connections}
    info = yaml.safe_load((bag / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    assert info["storage_identifier"] == storage and info["message_count"] == 24
    image_topic = "/camera/image_raw/compressed" if compressed else "/camera/image_raw"
    assert counts == {image_topic: 12, "/mtl_split/ground_truth": 12}
    frames = read_frames(bag).frames
    expected = list(iter_labelled_images("shapes", 32, tasks=TASKS, limit=12))
    classes = shapes_classes()
    assert [f.labels for f in frames] == [{t: classes[t][c] for t, c in labels.items()} for _, labels in expected]
    assert np.all(np.diff([f.stamp_ns for f in frames]) == 100_000_000)
    rgb = to_array(decode_frame(frames[3]), "rgb8")
    if compressed:
        assert np.abs(rgb.astype(int) - expected[3][0]).mean() < 8  # JPEG-90
    else:
        assert np.array_equal(rgb, expected[3][0])
    # A second write to the same place refuses instead of mixing bags.
    r = _cli(*args)
    assert r.returncode == 2 and "exists" in r.stderr and "Traceback" not in r.stderr


def test_offline_evaluation_reports_the_bundles_own_predictions(tmp_path, bundle):
    bag = tmp_path / "bag"
    from mtl_split_training.datasets import iter_labelled_images

    samples = list(iter_labelled_images("shapes", 32, tasks=TASKS, limit=40))
    write_bag(bag, iter(samples), shapes_classes(), rate_hz=30)
    report = evaluate(EvalOptions(bundle=bundle, bag=bag, out=tmp_path / "rep", offline=True))
    preds = run_offline(EdgeModel(bundle), ServerModel(bundle), [im for im, _ in samples])
    for task in TASKS:
        truth = [labels[task] for _, labels in samples]
        pred = [p[task].class_id for p in preds]
        m = confusion(truth, pred, len(report["tasks"][task]["classes"]))
        assert report["tasks"][task]["accuracy"] == pytest.approx(accuracy(m), abs=1e-4)
        assert report["tasks"][task]["macro_f1"] == pytest.approx(macro_f1(m), abs=1e-4)
        assert report["tasks"][task]["confusion"] == m.tolist()
    assert report["frames"] == {"sent": 40, "received": 40, "dropped": 0, "foreign": 0}
    assert report["bytes_per_frame"]["raw_image"] == 32 * 32 * 3
    saved = json.loads((tmp_path / "rep" / "report.json").read_text())
    assert saved["model_id"] == report["model_id"]
    for png in ("accuracy.png", "confusion.png", "latency_cdf.png"):
        assert (tmp_path / "rep" / png).stat().st_size > 1000


def test_metrics_on_a_known_confusion():
    m = confusion([0, 0, 1, 1, 2], [0, 1, 1, 1, 0], 3)
    assert m.tolist() == [[1, 1, 0], [0, 2, 0], [1, 0, 0]]
    assert accuracy(m) == pytest.approx(0.6)
    # F1: class0 2*1/(2+2)=0.5, class1 2*2/(2+3)=0.8, class2 0 -> mean 0.4333
    assert macro_f1(m) == pytest.approx((0.5 + 0.8 + 0.0) / 3)


def test_cli_errors_are_one_line(tmp_path):
    r = _cli("evaluate", "--offline", "--bundle", str(tmp_path / "nope"), "--bag", str(tmp_path), "--out",
             str(tmp_path / "r"))
    assert r.returncode == 2
    assert r.stderr.count("\n") == 1 and "manifest.json" in r.stderr
    r = _cli("launch", "pipeline", "--bundle", str(tmp_path))
    assert r.returncode == 2 and "not a model bundle" in r.stderr
    with pytest.raises(BagError, match="no bag"):
        read_frames(tmp_path / "missing")


def test_make_bag_sizes_and_widened_frames_keep_their_labels():
    from mtl_split_core.dense import Boxes
    from mtl_split_tools.bags import parse_size, widen

    assert parse_size("224") == (224, 224) and parse_size("1920x1080") == (1920, 1080)
    assert parse_size("480X640") == (480, 640)
    for bad in ("", "x", "10x10", "wide", "1920x"):
        with pytest.raises(BagError, match="--size"):
            parse_size(bad)
    rgb = np.zeros((40, 40, 3), np.uint8)
    rgb[:, 0], rgb[:, -1] = 10, 200  # left and right edge columns
    mask = np.zeros((40, 40), np.uint8)
    mask[10:20, 10:20] = 3
    boxes = Boxes([[10, 10, 20, 20]], [3])
    wide, labels = widen(rgb, {"shape": 2, "seg": mask, "det": boxes}, 100, 40)
    assert wide.shape == (40, 100, 3) and labels["shape"] == 2
    assert (wide[:, :30] == 10).all() and (wide[:, 70:] == 200).all()  # the edges carried on
    np.testing.assert_array_equal(wide[:, 30:70], rgb)
    assert labels["seg"].shape == (40, 100) and (labels["seg"][10:20, 40:50] == 3).all()
    np.testing.assert_array_equal(labels["det"].xyxy, [[40, 10, 50, 20]])
    tall, _ = widen(rgb, {}, 40, 64)
    assert tall.shape == (64, 40, 3)
