"""`mtl-split bench tasks` at its tiniest: MTL-Split against single-task models for 1..3 tasks."""
from __future__ import annotations

import json

import pytest

pytestmark = [pytest.mark.training, pytest.mark.ros]


def test_tasks_bench_is_consistent(tmp_path):
    pytest.importorskip("mtl_split_training.testing", reason="building bundles needs torch/timm")
    pytest.importorskip("rclpy", reason="message sizes need the ROS 2 wheels (make setup)")
    from mtl_split_tools.cli import main

    out = tmp_path / "tasks.json"
    assert main(["bench", "tasks", "--size", "32", "--counts", "1,3", "--out", str(out),
                 "--work", str(tmp_path / "work")]) == 0
    rows = {(r["tasks"], r["deployment"]): r for r in json.loads(out.read_text())["rows"]}
    one, mtl, stl = rows[(1, "mtl_split")], rows[(3, "mtl_split")], rows[(3, "stl_split")]
    # MTL sends one tensor whatever the task count; STL sends one per task.
    assert mtl["bytes_float32"] == one["bytes_float32"]
    assert stl["bytes_float32"] == pytest.approx(3 * one["bytes_float32"])
    assert mtl["bytes_float32"] < stl["bytes_float32"]
    assert mtl["bytes_int8+zstd"] < stl["bytes_int8+zstd"]
    assert mtl["edge_param_bytes"] == one["edge_param_bytes"] and stl["edge_param_bytes"] == 3 * one["edge_param_bytes"]
    assert mtl["edge_rss_mb"] < stl["edge_rss_mb"]
    assert mtl["e2e_ms_float32"] < stl["e2e_ms_float32"]
