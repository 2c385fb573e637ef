"""Data-parallel training: two CPU processes under torchrun (gloo), one epoch of a tiny run."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")

from mtl_split_core.bundle import load_manifest  # noqa: E402
from mtl_split_training.export import export_run  # noqa: E402

pytestmark = pytest.mark.training
ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("weighting", ["upgrad"])  # the path where DDP wrappers fail: torchjd fills .grad itself
def test_two_process_torchrun(tmp_path, weighting):
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "mtl_split_training.train_main", "--config", str(ROOT / "training/configs/tiny.yaml"),
           "--out", str(out), "--set", f"train.weighting={weighting}", "--set", "train.max_batches=2"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    run = json.loads((out / "run.json").read_text())
    assert (run["status"], run["world_size"]) == ("finished", 2)
    epochs = json.loads((out / "metrics.json").read_text())["members"]["mtl"]["epochs"]
    assert len(epochs) == 1 and epochs[0]["batches"] == 2
    (manifest,) = export_run(out, tmp_path / "bundle")
    assert load_manifest(tmp_path / "bundle").model_id == manifest.model_id
