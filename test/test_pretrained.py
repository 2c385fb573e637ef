"""Pretrained backbones through timm's own mechanism: `model.pretrained` (ImageNet from the hub,
unreachable here: a one-line error naming the offline way) and `model.pretrained_file` (a local
timm checkpoint through the same code path, e.g. one `save-backbone` wrote from a trained run)."""
from __future__ import annotations

import json

import pytest
import torch

from mtl_split_core.bundle import TaskSpec
from mtl_split_training.config import config_from_dict
from mtl_split_training.errors import TrainingError
from mtl_split_training.models import ModelSpec, SplitModel, load_model
from mtl_split_training.run import train_run
from mtl_split_tools.cli import main

TASKS = (TaskSpec("a", ("x", "y")),)
TINY = {"data": {"spec": "shapes", "size": 32, "tasks": ["shape"], "train_size": 32, "val_size": 8, "test_size": 8},
        "train": {"epochs": 1, "batch_size": 8, "max_batches": 2, "eval_batch_size": 16, "threads": 1}}


def test_a_trained_backbone_starts_another_run_through_timm(tmp_path):
    raw = {"name": "src", **TINY}
    train_run(config_from_dict(raw), raw, tmp_path / "src")
    file = tmp_path / "backbone.safetensors"
    assert main(["save-backbone", str(tmp_path / "src"), "--out", str(file)]) == 0
    trained, _, _ = load_model(tmp_path / "src")
    started = SplitModel(ModelSpec(input_size=32, pretrained_file=str(file)), TASKS)
    for (name, a), (_, b) in zip(trained.stages.state_dict().items(), started.stages.state_dict().items()):
        assert torch.equal(a, b), name  # every backbone tensor, BatchNorm statistics included
    fresh = SplitModel(ModelSpec(input_size=32), TASKS)
    assert not all(torch.equal(a, b) for a, b in zip(trained.stages.state_dict().values(),
                                                     fresh.stages.state_dict().values()))
    # A run started from it records where its weights came from, and trains.
    raw = {"name": "fine", **TINY, "model": {"pretrained_file": str(file)}}
    train_run(config_from_dict(raw), raw, tmp_path / "fine")
    assert json.loads((tmp_path / "fine" / "run.json").read_text())["config"]["model"]["pretrained_file"] == str(file)
    # The checkpoint of another backbone is refused, not half-loaded.
    with pytest.raises(TrainingError, match="cannot load the file|another backbone"):
        SplitModel(ModelSpec(backbone="resnet18", input_size=32, pretrained_file=str(file)), TASKS)
    assert main(["save-backbone", str(tmp_path / "src"), "--out", str(tmp_path / "b.pth")]) == 2


def test_imagenet_weights_without_internet_fail_in_one_line_naming_the_offline_way(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # as here, without waiting for DNS retries
    with pytest.raises(TrainingError) as e:
        SplitModel(ModelSpec(input_size=32, pretrained=True), TASKS)
    text = str(e.value)
    assert "\n" not in text and "timm's ImageNet weights" in text and "model.pretrained_file" in text
    with pytest.raises(TrainingError, match="does not exist"):
        SplitModel(ModelSpec(input_size=32, pretrained_file=str(tmp_path / "none.safetensors")), TASKS)
