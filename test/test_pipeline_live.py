"""The whole product path on real processes: `mtl-split launch` starts edge + server, a
bag is replayed through them, and live results equal offline results frame for frame."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from mtl_split_tools.bags import write_bag
from mtl_split_tools.evaluate import EvalOptions, evaluate

from helpers import shapes_classes

pytestmark = pytest.mark.ros
TASKS = ("shape", "scale")


@pytest.fixture(scope="module")
def bag(tmp_path_factory) -> Path:
    from mtl_split_training.datasets import iter_labelled_images

    out = tmp_path_factory.mktemp("bag") / "shapes"
    write_bag(out, iter_labelled_images("shapes", 32, tasks=TASKS, limit=60),
              shapes_classes(), rate_hz=30)
    return out


@pytest.mark.parametrize("compressed", [False, True])
def test_live_replay_equals_offline(tmp_path, tiny_bundle, bag, compressed):
    live = evaluate(EvalOptions(bundle=tiny_bundle, bag=bag, out=tmp_path / "live", rate=None,
                                compressed=compressed))
    offline = evaluate(EvalOptions(bundle=tiny_bundle, bag=bag, out=tmp_path / "offline", offline=True,
                                   compressed=compressed))
    assert live["frames"] == {"sent": 60, "received": 60, "dropped": 0, "foreign": 0}
    for baseline in ("raw_image", "jpeg90_image", "jpeg75_image", "baseline_frames"):  # the same frames either way
        assert live["bytes_per_frame"][baseline] == offline["bytes_per_frame"][baseline]
    assert live["bytes_per_frame"]["baseline_frames"] == 60
    assert live["predictions"] == offline["predictions"]  # JPEG too: both decode the same JPEGs the same way
    for task in TASKS:
        assert live["tasks"][task]["confusion"] == offline["tasks"][task]["confusion"]
    lat = live["latency_ms"]
    assert 0 < lat["edge_compute"]["p50"] < lat["end_to_end"]["p50"]
    # float32 576x1x1 at 32 px, after the shape's varints (ndim 3, 576 in two bytes, 1, 1) and
    # the 32x32 camera frame's (one byte each)
    assert live["bytes_per_frame"]["features_payload"] == 576 * 1 * 1 * 4 + 5 + 2
    assert live["fps"] > 5


@pytest.mark.parametrize("size, compressed", [("1920x1080", False), ("1279x721", True)])
def test_an_hd_non_square_bag_is_made_and_evaluated_live_as_offline(tmp_path, tiny_bundle, size, compressed):
    """make-bag --size WxH and evaluate: 6 MB frames through DDS (the shipped profiles),
    reduced JPEG decoding of odd sides at the edge and offline alike, labels scored on both,
    the H.264 comparison of an odd-sized camera."""
    from mtl_split_tools.bag_reading import read_frames
    from mtl_split_tools.bags import parse_size
    from mtl_split_tools.cli import main

    bag = tmp_path / "hd"
    assert main(["make-bag", "--frames", "6", "--size", size, "--tasks", ",".join(TASKS),
                 "--out", str(bag), *(["--compressed"] if compressed else [])]) == 0
    frames = read_frames(bag).frames
    assert len(frames) == 6 and frames[0].msgtype.endswith("CompressedImage" if compressed else "/Image")
    live = evaluate(EvalOptions(bundle=tiny_bundle, bag=bag, out=tmp_path / "live", rate=None))
    offline = evaluate(EvalOptions(bundle=tiny_bundle, bag=bag, out=tmp_path / "offline", offline=True))
    width, height = parse_size(size)
    assert live["image_size"] == offline["image_size"] == [width, height]
    assert live["frames"] == {"sent": 6, "received": 6, "dropped": 0, "foreign": 0}
    assert live["predictions"] == offline["predictions"]
    for task in TASKS:  # the bag's ground truth survived the widening and is scored
        assert sum(map(sum, live["tasks"][task]["confusion"])) == 6
        assert live["tasks"][task]["confusion"] == offline["tasks"][task]["confusion"]
    assert live["bytes_per_frame"]["raw_image"] == width * height * 3
    assert live["bytes_per_frame"]["h264_crf23_message"] > 0  # libx264 refuses odd sides: cropped to even


def test_runner_serves_and_stops_cleanly_on_ctrl_c(tmp_path, tiny_bundle, bag):
    runner = subprocess.Popen([sys.executable, "-m", "mtl_split_tools.cli", "launch", "pipeline", "--bundle",
                               str(tiny_bundle), "--namespace", "/robot_r", "-p", "edge.dtype=int8",
                               "-p", "edge.codec=zstd"],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        report = evaluate(EvalOptions(bundle=tiny_bundle, bag=bag, out=tmp_path / "attached", rate=None,
                                      attach=True, namespace="/robot_r", limit=20))
        assert report["frames"]["received"] == 20
        assert report["bytes_per_frame"]["features_payload"] < 576 * 2  # int8 (+ zstd), not float32
        children = psutil.Process(runner.pid).children(recursive=True)
        assert len(children) == 2
    finally:
        runner.send_signal(signal.SIGINT)
        out, _ = runner.communicate(timeout=30)
    assert runner.returncode == 0, out
    assert "[edge:robot_r]" in out and "[server:robot_r]" in out
    time.sleep(0.5)
    assert not any(c.is_running() and c.status() != psutil.STATUS_ZOMBIE for c in children)


def test_two_evaluations_at_once_see_only_their_own_frames(tmp_path, tiny_bundle):
    """Two `mtl-split evaluate` runs on one host at the same time: each starts its nodes on
    a DDS domain of its own, so each gets exactly its own frames' results back."""
    from mtl_split_training.datasets import iter_labelled_images

    frames = 150  # 5 s at the bag's 30 Hz: the two replays overlap despite uneven start-up
    runs = []
    for i in range(2):
        bag = tmp_path / f"bag{i}"
        write_bag(bag, iter_labelled_images("shapes", 32, tasks=TASKS, limit=frames),
                  shapes_classes(), rate_hz=30, start_ns=(i + 1) * 10**18)
        runs.append(subprocess.Popen([sys.executable, "-m", "mtl_split_tools.cli", "evaluate", "--bundle",
                                      str(tiny_bundle), "--bag", str(bag), "--out", str(tmp_path / f"out{i}")],
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    outputs = [run.communicate(timeout=240)[0] for run in runs]
    assert [run.returncode for run in runs] == [0, 0], outputs
    reports = [json.loads((tmp_path / f"out{i}" / "report.json").read_text()) for i in range(2)]
    domains = {r["ros_domain_id"] for r in reports}
    assert len(domains) == 2 and int(os.environ["ROS_DOMAIN_ID"]) not in domains
    (start0, end0), (start1, end1) = (r["replay_unix_s"] for r in reports)
    assert max(start0, start1) < min(end0, end1), "the two replays did not overlap; the test proves nothing"
    for r in reports:  # no foreign results; a frame the busy edge replaced (depth 1, loaded cores) is counted
        assert r["frames"]["sent"] == frames and r["frames"]["foreign"] == 0
        counted = sum(int(c.get("dropped", 0)) for c in r["node_counters"].values())
        assert r["frames"]["dropped"] <= counted and r["frames"]["received"] >= 0.8 * frames
