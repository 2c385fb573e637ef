"""Export: ONNX Runtime computes what torch computes, bundles load without pickle, manifests are right."""
from __future__ import annotations

import pickle

import numpy as np
import pytest

torch = pytest.importorskip("torch")
ort = pytest.importorskip("onnxruntime")

from mtl_split_core.bundle import (  # noqa: E402
    BACKBONE_FILE,
    FEATURES_NAME,
    HEADS_FILE,
    IMAGE_INPUT,
    InputSpec,
    heads_output,
    load_manifest,
)
from mtl_split_training.datasets.shapes_factors import FACTORS  # noqa: E402
from mtl_split_training.errors import TrainingError  # noqa: E402
from mtl_split_training.export import export_bundle  # noqa: E402
from mtl_split_training.models import ModelSpec, SplitModel, load_model, save_model  # noqa: E402
from mtl_split_training.testing import calibrate_batchnorm, make_tiny_bundle  # noqa: E402

pytestmark = pytest.mark.training
TASKS = tuple(f.task() for f in FACTORS if f.name in ("shape", "scale"))


def _session(path):
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def _model(tmp_path, **spec):
    torch.manual_seed(0)
    model = SplitModel(ModelSpec(input_size=32, **spec), TASKS)
    calibrate_batchnorm(model, InputSpec(width=32, height=32))
    return model


@pytest.mark.parametrize("spec", [
    {},
    {"bottleneck": 12},
    {"backbone": "resnet18", "split": "layer3", "head": "pooled"},
])
def test_onnx_runtime_matches_torch(tmp_path, spec):
    model = _model(tmp_path, **spec)
    manifest = export_bundle(model, tmp_path / "bundle")
    images = torch.randn(3, 3, 32, 32)  # batch 3: the export probed with 2, the batch axis is dynamic
    with torch.no_grad():
        features = model.edge(images)
        logits = model(images)
    onnx_features = _session(tmp_path / "bundle" / BACKBONE_FILE).run([FEATURES_NAME], {IMAGE_INPUT: images.numpy()})[0]
    np.testing.assert_allclose(onnx_features, features.numpy(), atol=1e-4, rtol=1e-3)
    assert onnx_features.shape[1:] == manifest.features.shape
    heads = _session(tmp_path / "bundle" / HEADS_FILE)
    assert [o.name for o in heads.get_outputs()] == [heads_output(t.name) for t in TASKS]
    outputs = heads.run(None, {FEATURES_NAME: onnx_features})
    for task, out in zip(TASKS, outputs):
        assert out.shape == (3, task.num_classes)
        np.testing.assert_allclose(out, logits[task.name].numpy(), atol=1e-3, rtol=1e-3)
    assert manifest.split_point == model.split_point
    assert manifest.extra["edge_params"] > 0


def test_bottleneck_features_sit_on_the_fixed_int8_grid(tmp_path):
    manifest = make_tiny_bundle(tmp_path / "b", bottleneck=8)
    assert (manifest.features.dtype, manifest.features.codec) == ("int8", "zstd")
    assert manifest.features.zero_point == 0 and manifest.bottleneck_channels == 8
    x = np.random.default_rng(0).normal(size=(4, 3, 32, 32)).astype(np.float32)
    features = _session(tmp_path / "b" / BACKBONE_FILE).run(None, {IMAGE_INPUT: x})[0]
    q = features / manifest.features.scale
    np.testing.assert_allclose(q, np.round(q), atol=1e-3)
    assert np.abs(q).max() <= 127.001


def test_bottleneck_export_check_allows_a_rounding_flip_and_nothing_more():
    from mtl_split_training.bottleneck import INT8_SCALE
    from mtl_split_training.errors import TrainingError
    from mtl_split_training.export import _check_grid

    ours = np.round(np.random.default_rng(0).uniform(-127, 127, size=(2, 8, 8, 8))) * INT8_SCALE
    one_flip = ours.copy()
    one_flip.flat[5] += INT8_SCALE  # a value on a rounding boundary, rounded the other way
    _check_grid(ours, one_flip)
    two_steps = ours.copy()
    two_steps.flat[5] += 2 * INT8_SCALE
    with pytest.raises(TrainingError, match="2 int8 steps"):
        _check_grid(ours, two_steps)
    with pytest.raises(TrainingError, match="not exportable"):
        _check_grid(ours, ours + INT8_SCALE)  # every value one step off: a broken export


def test_tiny_bundle_manifest_and_task_mapping(tmp_path):
    manifest = make_tiny_bundle(tmp_path / "t", tasks={"colour": ["red", "green"], "size": ["s", "m", "l"]}, size=40)
    loaded = load_manifest(tmp_path / "t")  # verifies model_id and every file hash
    assert loaded == manifest
    assert loaded.task("size").classes == ("s", "m", "l")
    assert (loaded.input.width, loaded.input.height) == (40, 40)
    assert (loaded.features.dtype, loaded.features.codec, loaded.features.scale) == ("float32", "none", None)


def test_loading_needs_no_pickle(tmp_path, monkeypatch):
    model = _model(tmp_path)
    save_model(model, tmp_path / "run", InputSpec(width=32, height=32), extra={"note": "x"})

    def refuse(*args, **kwargs):
        raise AssertionError("pickle used while loading")

    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)
    monkeypatch.setattr(pickle, "Unpickler", refuse)
    monkeypatch.setattr(torch, "load", refuse)
    loaded, input_spec, extra = load_model(tmp_path / "run")
    assert extra == {"note": "x"} and input_spec.width == 32
    images = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        for task in TASKS:
            torch.testing.assert_close(loaded(images)[task.name], model.eval()(images)[task.name])
    manifest = export_bundle(tmp_path / "run", tmp_path / "bundle")
    assert load_manifest(tmp_path / "bundle").model_id == manifest.model_id
    assert manifest.extra["note"] == "x"


def test_export_of_a_missing_run_is_one_clear_error(tmp_path):
    with pytest.raises(TrainingError, match="model.json"):
        export_bundle(tmp_path / "nothing", tmp_path / "out")
