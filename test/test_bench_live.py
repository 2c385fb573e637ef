"""`mtl-split bench video` and `bench network` at their tiniest: real node processes, a real
camera stream, the real link relay (ROS_DOMAIN_ID is private per benchmark run)."""
from __future__ import annotations

import json

import pytest

pytestmark = [pytest.mark.ros, pytest.mark.training]


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    pytest.importorskip("mtl_split_training.testing", reason="building bundles needs torch/timm")
    pytest.importorskip("rclpy", reason="needs the ROS 2 wheels (make setup)")
    return tmp_path_factory.mktemp("bench_live")


def _consistent(row: dict) -> None:
    frames = row["frames"]
    assert frames["received"] + frames["dropped"] == frames["sent"] > 0 and frames["foreign"] == 0
    assert 0 < row["delivered_fps"] <= row["camera_fps"] + 1e-6
    lat = row["latency_ms"]["end_to_end"]
    assert 0 < lat["p50"] <= lat["p90"] <= lat["p99"]


def test_video_bench(work, tmp_path):
    from mtl_split_tools.cli import main

    out = tmp_path / "video.json"
    assert main(["bench", "video", "--backbones", "mobilenetv3_small_100", "--depths", "1,10", "--seconds", "2",
                 "--size", "32", "--camera-size", "32", "--out", str(out), "--work", str(work)]) == 0
    rows = json.loads(out.read_text())["rows"]
    assert [r["image_qos_depth"] for r in rows] == [1, 10]
    for r in rows:
        _consistent(r)
        assert r["frames"]["sent"] >= 50 and 20 < r["camera_fps"] < 40  # a 30 Hz camera for 2 s


def test_network_bench(work, tmp_path):
    from mtl_split_tools.cli import main

    out = tmp_path / "network.json"
    assert main(["bench", "network", "--links", "4g", "--losses", "0", "--seconds", "2", "--size", "32",
                 "--out", str(out), "--work", str(work)]) == 0
    rows = {r["deployment"]: r for r in json.loads(out.read_text())["rows"]}
    assert set(rows) == {"mtl_split_float32", "mtl_split_bottleneck", "jpeg_to_server", "edge_only"}
    for r in rows.values():
        _consistent(r)
        assert r["analytic"]["p50_ms"] > 0
    assert "relay" not in rows["edge_only"]
    for name in ("mtl_split_float32", "mtl_split_bottleneck", "jpeg_to_server"):
        relay = rows[name]["relay"]
        assert relay["delivered"] + relay["lost"] + relay["queue_dropped"] == relay["offered"]
        assert rows[name]["latency_ms"]["end_to_end"]["p50"] >= 25.0  # the 4G profile's one-way delay
    assert rows["mtl_split_bottleneck"]["link_bytes_per_message"] < rows["mtl_split_float32"]["link_bytes_per_message"]
