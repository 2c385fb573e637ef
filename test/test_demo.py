"""`mtl-split demo` end to end on the tiny config (real training, export, bag and live nodes):
--set reaches training, an unchanged demo reuses its model (renamed too), a changed --set
retrains."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("mtl_split_training.testing", reason="the demo trains: needs torch/timm")
pytest.importorskip("rclpy", reason="the demo runs live nodes: needs the ROS 2 wheels (make setup)")

CONFIG = Path(__file__).resolve().parents[1] / "training" / "configs" / "tiny.yaml"


def _demo(cwd: Path, *overrides: str) -> str:
    argv = [sys.executable, "-m", "mtl_split_tools.cli", "demo", "--config", str(CONFIG), "--name", "t",
            "--frames", "12", *(f"--set={o}" for o in overrides)]
    done = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return done.stdout


def _trained_with(cwd: Path) -> dict:
    return json.loads((cwd / "runs" / "t" / "run.json").read_text())["raw_config"]


def test_demo_set_reaches_training_and_reuse_follows_it(tmp_path):
    first = _demo(tmp_path, "data.tasks=[shape]")
    assert _trained_with(tmp_path)["data"]["tasks"] == ["shape"]
    report = json.loads((tmp_path / "reports" / "t" / "report.json").read_text())
    assert set(report["tasks"]) == {"shape"} and report["frames"]["received"] > 0
    assert "--set=data.tasks=[shape]" in first and "=== MTL-Split demo" in first

    assert "reusing the finished run" in _demo(tmp_path, "data.tasks=[shape]", "name=renamed")  # a label only

    again = _demo(tmp_path, "data.tasks=[shape,scale]")
    assert "--overwrite" in again and _trained_with(tmp_path)["data"]["tasks"] == ["shape", "scale"]
    report = json.loads((tmp_path / "reports" / "t" / "report.json").read_text())
    assert set(report["tasks"]) == {"shape", "scale"}


def test_demo_bad_set_is_one_line(tmp_path):
    done = subprocess.run([sys.executable, "-m", "mtl_split_tools.cli", "demo", "--config", str(CONFIG),
                           "--name", "t", "--set", "train.epochs"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=300)
    err = done.stderr.strip()
    assert done.returncode == 2 and "train.epochs" in err and "Traceback" not in err, err
