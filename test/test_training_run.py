"""Training runs end to end through the CLI: MTL and STL, resume, export, clear errors."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

pytest.importorskip("torch")

from mtl_split_core.bundle import load_manifest  # noqa: E402
from mtl_split_tools.cli import main  # noqa: E402

pytestmark = pytest.mark.training
TINY = str(Path(__file__).resolve().parents[1] / "training" / "configs" / "tiny.yaml")


def _train(out: Path, *sets: str, extra: tuple[str, ...] = ()) -> int:
    args = ["train", "--config", TINY, "--out", str(out), *extra]
    for s in sets:
        args += ["--set", s]
    return main(args)


def test_mtl_run_resume_and_export(tmp_path, capsys):
    run = tmp_path / "run"
    assert _train(run) == 0
    metrics = json.loads((run / "metrics.json").read_text())
    epochs = metrics["members"]["mtl"]["epochs"]
    assert len(epochs) == 1 and set(epochs[0]["val_score"]) == {"shape", "scale"}
    assert set(metrics["members"]["mtl"]["test"]) == {"shape", "scale"}
    assert json.loads((run / "run.json").read_text())["status"] == "finished"

    assert _train(run, "train.epochs=2", extra=("--resume",)) == 0
    epochs = json.loads((run / "metrics.json").read_text())["members"]["mtl"]["epochs"]
    assert [e["epoch"] for e in epochs] == [1, 2]

    assert main(["export", str(run), "--out", str(tmp_path / "bundle")]) == 0
    manifest = load_manifest(tmp_path / "bundle")
    assert manifest.task_names == ["shape", "scale"]
    assert manifest.extra["training"]["model"]["backbone"] == "mobilenetv3_small_100"
    assert set(manifest.extra["metrics"]["test_score"]) == {"shape", "scale"}
    assert (manifest.input.width, manifest.features.dtype) == (32, "float32")


def test_stl_run_exports_one_bundle_per_task(tmp_path):
    run = tmp_path / "stl"
    assert _train(run, "mode=stl", "train.max_batches=2", "model.bottleneck=8") == 0
    metrics = json.loads((run / "metrics.json").read_text())
    assert set(metrics["members"]) == {"shape", "scale"}
    assert main(["export", str(run), "--out", str(tmp_path / "bundles")]) == 0
    for task in ("shape", "scale"):
        manifest = load_manifest(tmp_path / "bundles" / task)
        assert manifest.task_names == [task]
        assert (manifest.features.dtype, manifest.features.codec, manifest.bottleneck_channels) == ("int8", "zstd", 8)


def test_user_errors_are_one_line(tmp_path, capsys):
    assert _train(tmp_path / "a", "train.weighting=nope") == 2
    assert "unknown weighting 'nope'" in capsys.readouterr().err
    assert _train(tmp_path / "b", "data.colour=1") == 2
    assert "unknown key(s) data.colour" in capsys.readouterr().err
    assert main(["train", "--config", str(tmp_path / "none.yaml"), "--out", str(tmp_path / "c")]) == 2
    assert "does not exist" in capsys.readouterr().err
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "x").write_text("")
    assert _train(tmp_path / "d") == 2
    assert "--overwrite" in capsys.readouterr().err
    assert main(["export", str(tmp_path / "nothing"), "--out", str(tmp_path / "e")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "run.json" in err
    assert _train(tmp_path / "f", "train.lr=fast") == 2
    assert "train.lr must be a number, got 'fast'" in capsys.readouterr().err
    assert _train(tmp_path / "g", "train.epochs=1.5") == 2
    assert "train.epochs must be an integer" in capsys.readouterr().err


def test_numbers_read_as_people_write_them():
    """YAML 1.1 reads 5e-4 (no dot) as text; configs and --set read it as the number."""
    from mtl_split_training.config import load_config

    config, raw = load_config(TINY, ["train.lr=5e-4", "train.rate_lambda=1E-3", "name=1e5x"])
    assert (config.train.lr, config.train.rate_lambda, config.name) == (5e-4, 1e-3, "1e5x")
    assert raw["train"]["lr"] == 5e-4


def test_compare_writes_the_mtl_vs_stl_table(tmp_path, capsys):
    out = tmp_path / "report"
    assert main(["compare", "--config", TINY, "--runs", str(tmp_path / "runs"), "--out", str(out),
                 "--set", "train.max_batches=1", "--equal-compute"]) == 0
    result = json.loads((out / "results.json").read_text())
    assert [r["task"] for r in result["tasks"]] == ["shape", "scale"]
    assert result["epochs"] == {"mtl": 1, "stl": 1, "mtl_equal": 2}
    assert {"mtl_test_accuracy", "mtl_equal_test_accuracy", "stl_val_accuracy"} <= set(result["tasks"][0])
    assert result["edge_params"]["stl_sum"] == 2 * result["edge_params"]["mtl"]
    assert result["split_bytes_per_frame"]["stl_sum"] == 2 * result["split_bytes_per_frame"]["mtl"]
    table = (out / "results.md").read_text()
    assert "| shape |" in table and "mtl-split compare --config" in table
    assert "| edge parameters |" in capsys.readouterr().out


def test_compare_over_seeds_reports_spread_and_delta_m(tmp_path):
    from mtl_split_training.compare import delta_m

    # Delta_m: +10% on a higher-is-better task, AbsRel 0.10 -> 0.11 (10% worse) on a lower-is-better one.
    assert delta_m({"a": 0.55, "d": 0.11}, {"a": 0.5, "d": 0.10}, {"a": True, "d": False}) == pytest.approx(0.0)
    out = tmp_path / "report"
    assert main(["compare", "--config", TINY, "--runs", str(tmp_path / "runs"), "--out", str(out),
                 "--set", "train.max_batches=1", "--seeds", "2"]) == 0
    result = json.loads((out / "results.json").read_text())
    agg = result["aggregate"]
    assert agg["seeds"] == [0, 1] and len(result["per_seed"]) == 2 and len(agg["delta_m_per_seed"]) == 2
    assert (tmp_path / "runs" / "seed1" / "stl" / "scale" / "model.safetensors").is_file()
    row = agg["tasks"][0]
    scores = [r["tasks"][0]["mtl_test_accuracy"] for r in result["per_seed"]]
    assert row["mtl"]["mean"] == pytest.approx(sum(scores) / 2)
    assert "± " in (out / "results.md").read_text() and "Delta_m" in (out / "results.md").read_text()


def test_warm_start_distillation_and_rate_warmup_from_a_trained_run(tmp_path, capsys):
    """train.init_from copies a trained model's matching tensors (heads by task name, a new
    bottleneck fresh), train.distill_from adds the teacher's softened logits as a loss (and,
    with train.distill_features, its shared levels as targets), and
    train.rate_warmup_epochs ramps the rate weight up from 0."""
    import torch

    from mtl_split_training.config import TrainConfig
    from mtl_split_training.models import SplitModel, load_model
    from mtl_split_training.teacher import Distiller, warm_start
    from mtl_split_training.trainer import rate_weight

    teacher_dir = tmp_path / "teacher"
    assert _train(teacher_dir) == 0
    teacher, _, _ = load_model(teacher_dir)
    # The student has its tasks in the other order and a bottleneck the teacher lacks.
    spec = dataclasses.replace(teacher.spec, bottleneck=8)
    tasks = list(reversed(teacher.tasks))
    student = SplitModel(spec, tasks)
    copied, fresh = warm_start(student, teacher_dir)
    assert copied > 0 and fresh > 0  # the bottleneck starts fresh
    for a, b in zip(student.stages.state_dict().values(), teacher.stages.state_dict().values()):
        torch.testing.assert_close(a, b)
    for i, t in enumerate(tasks):
        j = [u.name for u in teacher.tasks].index(t.name)
        for a, b in zip(student.heads[i].state_dict().values(), teacher.heads[j].state_dict().values()):
            if a.shape == b.shape:
                torch.testing.assert_close(a, b)

    distiller = Distiller(teacher_dir, student, weight=1.0, temperature=2.0, feature_weight=1.0)
    images = torch.rand(4, 3, 32, 32)
    with torch.no_grad():
        own = teacher.shared(images)
        soft, hint = distiller.losses(images, own, teacher.raw(own))
        assert all(float(v) < 1e-6 for v in soft.values()) and float(hint) < 1e-6  # itself: no loss
        theirs = student.shared(images)
        extra, hint = distiller.losses(images, theirs, student.raw(theirs))
    assert set(extra) == {"shape", "scale"} and all(float(v) > 0 for v in extra.values()) and float(hint) > 0

    ramp = TrainConfig(rate_lambda=0.01, rate_warmup_epochs=2)
    assert [rate_weight(ramp, e) for e in (0, 1, 2, 5)] == [0.0, 0.005, 0.01, 0.01]
    assert rate_weight(TrainConfig(rate_lambda=0.01), 0) == 0.01

    # The whole path through `mtl-split train`, and its one-line errors.
    assert _train(tmp_path / "student", "model.bottleneck=8", "model.entropy=true", f"train.init_from={teacher_dir}",
                  f"train.distill_from={teacher_dir}", "train.distill_features=1", "train.rate_warmup_epochs=1") == 0
    assert "tensors copied" in capsys.readouterr().out
    assert _train(tmp_path / "z", "model.split=-2", f"train.distill_from={teacher_dir}",
                  "train.distill_features=1") == 2
    assert "features distil only between the same backbone and split point" in capsys.readouterr().err
    assert _train(tmp_path / "x", f"train.init_from={tmp_path / 'nothing'}") == 2
    assert "give a finished training run" in capsys.readouterr().err
    assert _train(tmp_path / "y", "data.tasks=[shape,orientation]", f"train.distill_from={teacher_dir}") == 2
    assert "the teacher has no task orientation" in capsys.readouterr().err


def test_intra_tables_come_from_the_symbols_counted_after_training(tmp_path):
    """The exported intra tables are the symbols' histogram on the val frames with a little
    of the learned prior: on those frames they cost no more bits than the prior alone (Gibbs),
    and a run saved before the counts were kept still loads and exports with the prior."""
    import numpy as np
    from safetensors.torch import load_file, save_file

    from mtl_split_core.entropy import INTRA, TOTAL, load_tables
    from mtl_split_training.entropy_model import intra_tables
    from mtl_split_training.export import export_run
    from mtl_split_training.models import MODEL_WEIGHTS, SYMBOL_COUNTS, load_model

    run = tmp_path / "run"
    assert _train(run, "model.bottleneck=4", "model.entropy=true", "train.rate_lambda=0.01") == 0
    model, _, _ = load_model(run)
    counts = model.symbol_counts.numpy()
    per_frame = int(np.prod(model.feature_shape[1:]))
    assert (counts.sum(axis=1) == 32 * per_frame).all()  # tiny.yaml's 32 val frames, every symbol once
    (manifest,) = export_run(run, tmp_path / "bundle")
    shipped = load_tables(tmp_path / "bundle" / manifest.features.entropy)[INTRA]
    np.testing.assert_array_equal(shipped.weights, intra_tables(model.prior, counts).weights)
    prior_only = intra_tables(model.prior, np.zeros_like(counts))

    def bits(tables) -> float:
        return float(-(counts * np.log2((tables.weights + 1) / TOTAL)).sum())

    assert bits(shipped) <= bits(prior_only)

    state = load_file(str(run / MODEL_WEIGHTS))
    del state[SYMBOL_COUNTS]
    save_file(state, str(run / MODEL_WEIGHTS))
    old, _, _ = load_model(run)
    assert not old.symbol_counts.any()
    (manifest,) = export_run(run, tmp_path / "old_bundle")
    np.testing.assert_array_equal(load_tables(tmp_path / "old_bundle" / manifest.features.entropy)[INTRA].weights,
                                  prior_only.weights)
