"""`mtl-split bench memory` at its tiniest: real exports, real ONNX Runtime child processes."""
from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.training


def test_memory_bench_is_consistent(tmp_path):
    pytest.importorskip("mtl_split_training.testing", reason="building bundles needs torch/timm")
    from mtl_split_tools.cli import main

    out = tmp_path / "memory.json"
    assert main(["bench", "memory", "--backbones", "mobilenetv3_small_100", "--tasks", "2", "--size", "32",
                 "--out", str(out), "--work", str(tmp_path / "work")]) == 0
    rows = {r["deployment"]: r for r in json.loads(out.read_text())["rows"]}
    assert set(rows) == {"mtl_split", "mtl_full", "stl_split", "stl_full"}
    # One shared backbone vs one per task: exactly half the parameters for two tasks.
    assert rows["stl_split"]["param_bytes"] == 2 * rows["mtl_split"]["param_bytes"]
    assert rows["mtl_split"]["param_bytes"] < rows["mtl_full"]["param_bytes"] < rows["stl_full"]["param_bytes"]
    assert all(r["file_bytes"] >= r["param_bytes"] > 0 for r in rows.values())
    assert 0 < rows["mtl_split"]["peak_rss_mb"] < rows["stl_full"]["peak_rss_mb"]
    assert 0 < rows["mtl_split"]["saved_vs_stl_full_peak_rss_mb"] < 1
    assert out.with_suffix(".png").stat().st_size > 0
