"""`mtl-split build-engine`: TensorRT engines where TensorRT exists, one clear line where not."""
from __future__ import annotations

import importlib.util

import pytest

from mtl_split_tools.cli import main

pytestmark = pytest.mark.training
HAVE_TENSORRT = importlib.util.find_spec("tensorrt") is not None


@pytest.mark.skipif(HAVE_TENSORRT, reason="tensorrt is installed: the missing-TensorRT message cannot be shown")
def test_without_tensorrt_build_engine_says_so_in_one_line(tmp_path, capsys):
    from mtl_split_training.testing import make_tiny_bundle

    make_tiny_bundle(tmp_path / "b")
    assert main(["build-engine", str(tmp_path / "b"), "--precision", "fp16"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot build TensorRT engines" in err and "tensorrt" in err


@pytest.mark.parametrize("precision", ["fp16", "int8"])
def test_engines_are_built_and_named_for_this_machine(tmp_path, precision):
    pytest.importorskip("tensorrt", reason="TensorRT is not installed (needs an NVIDIA GPU): engines cannot be built")
    from mtl_split_core import backends
    from mtl_split_core.bundle import load_manifest
    from mtl_split_training.engine import build_engines
    from mtl_split_training.testing import make_tiny_bundle

    if backends.tensorrt_unavailable():
        pytest.skip(backends.tensorrt_unavailable())
    make_tiny_bundle(tmp_path / "b")
    paths = build_engines(tmp_path / "b", precision=precision, calib_images=32, batch=4)
    manifest = load_manifest(tmp_path / "b")
    for onnx_file, path in zip(("backbone.onnx", "heads.onnx"), paths):
        assert path.is_file() and path.stat().st_size > 0
        assert backends.tensorrt_engine(tmp_path / "b", manifest, onnx_file, precision, min_batch=4) == path
