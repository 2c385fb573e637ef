"""Inference backends and the in-process runtime built on them (the offline reference the
nodes are compared with)."""
from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from mtl_split_core import backends, codec
from mtl_split_core.backends import BackendError, OnnxRuntimeBackend, open_backend, tensorrt_engine_name
from mtl_split_core.bundle import FEATURES_NAME, HEADS_FILE, heads_output, load_manifest
from mtl_split_core.errors import BundleError, CodecError
from mtl_split_core.runtime import EdgeModel, ServerModel, run_offline, softmax

pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def models(tiny_bundle):
    return EdgeModel(tiny_bundle, threads=1), ServerModel(tiny_bundle, threads=1)


def rgb_frames(n: int, size: tuple[int, int] = (40, 30)) -> list[np.ndarray]:
    rng = np.random.default_rng(n)
    return [rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8) for _ in range(n)]


def test_providers_are_preferred_and_available():
    import onnxruntime as ort

    chosen = backends.ort_providers()
    assert chosen[-1] == "CPUExecutionProvider"
    assert set(chosen) <= set(ort.get_available_providers())
    assert chosen == [p for p in backends.ORT_PROVIDERS if p in chosen]


def test_per_output_sessions_match_one_session(tiny_bundle):
    manifest = load_manifest(tiny_bundle)
    whole = OnnxRuntimeBackend(tiny_bundle / HEADS_FILE, threads=1)
    split = OnnxRuntimeBackend(tiny_bundle / HEADS_FILE, threads=1, per_output=True)
    assert split.split and not whole.split
    x = np.random.default_rng(0).standard_normal((3, *manifest.features.shape)).astype(np.float32)
    names = [heads_output(t) for t in manifest.task_names]
    for a, b in zip(whole.run({FEATURES_NAME: x}), split.run({FEATURES_NAME: x})):
        np.testing.assert_array_equal(a, b)
    one = split.run({FEATURES_NAME: x}, names[::-1])  # order follows the request
    np.testing.assert_array_equal(one[0], whole.run({FEATURES_NAME: x}, [names[-1]])[0])


def test_backend_choice(tiny_bundle):
    manifest = load_manifest(tiny_bundle)
    backend, why = open_backend(tiny_bundle, manifest, HEADS_FILE, "onnxruntime")
    assert backend.name.startswith("onnxruntime:") and "requested" in why
    with pytest.raises(BackendError, match="not one of"):
        open_backend(tiny_bundle, manifest, HEADS_FILE, "tflite")
    reason = backends.tensorrt_unavailable()
    backend, why = open_backend(tiny_bundle, manifest, HEADS_FILE, "auto")
    if reason is not None:  # auto falls back and says why; an explicit tensorrt request fails
        assert backend.name.startswith("onnxruntime:") and reason in why
        with pytest.raises(BackendError, match="backend tensorrt"):
            open_backend(tiny_bundle, manifest, HEADS_FILE, "tensorrt")


def test_engine_names_pin_everything_an_engine_depends_on():
    base = dict(onnx_file="backbone.onnx", onnx_sha256="ab" * 32, trt_version="10.3.0", gpu="Orin (nvgpu)",
                precision="fp16", max_batch=4)
    name = tensorrt_engine_name(**base)
    assert name.startswith("backbone.abababab") and name.endswith(".fp16.b4.engine") and "orin-nvgpu" in name
    for field, other in [("onnx_sha256", "cd" * 32), ("trt_version", "10.4.0"), ("gpu", "RTX 4090"),
                         ("precision", "fp32"), ("max_batch", 8)]:
        assert tensorrt_engine_name(**{**base, field: other}) != name, field
    with pytest.raises(BackendError):
        tensorrt_engine_name(**{**base, "precision": "fp8"})


def test_native_tensorrt(tiny_bundle):
    reason = backends.tensorrt_unavailable()
    if reason is not None:
        pytest.skip(f"native TensorRT path not testable here: {reason}")
    manifest = load_manifest(tiny_bundle)
    if backends.tensorrt_engine(tiny_bundle, manifest, HEADS_FILE) is None:
        pytest.skip("no TensorRT engine in the test bundle; build one with `mtl-split build-engine`")
    trt, _ = open_backend(tiny_bundle, manifest, HEADS_FILE, "tensorrt")
    ort = OnnxRuntimeBackend(tiny_bundle / HEADS_FILE)
    x = np.random.default_rng(0).standard_normal((2, *manifest.features.shape)).astype(np.float32)
    for a, b in zip(trt.run({FEATURES_NAME: x}), ort.run({FEATURES_NAME: x})):
        np.testing.assert_allclose(a, b, rtol=1e-2, atol=1e-2)


# --- runtime ----------------------------------------------------------------------------------

def test_edge_batches_equal_single_frames(models):
    edge, _ = models
    frames = rgb_frames(3)
    batch = edge.features(frames)
    assert batch.shape == (3, *edge.manifest.features.shape) and batch.dtype == np.float32
    for f, row in zip(frames, batch):
        np.testing.assert_allclose(edge.features([f])[0], row, rtol=1e-5, atol=1e-6)


def test_server_runs_only_the_tasks_asked_for(models):
    edge, server = models
    x = edge.features(rgb_frames(2))
    full = server.predict(x)
    first = server.manifest.task_names[0]
    only = server.predict(x, [first])
    assert [set(p) for p in only] == [{first}, {first}]
    for a, b in zip(full, only):
        assert a[first].class_id == b[first].class_id
        np.testing.assert_array_equal(a[first].scores, b[first].scores)
        p = a[first]
        assert p.class_name == server.manifest.task(first).classes[p.class_id]
        assert p.score == pytest.approx(float(p.scores.max())) and p.scores.sum() == pytest.approx(1.0)
    assert server.predict(x, []) == [{}, {}]


def test_offline_pipeline_and_wire_formats(models, tiny_bundle):
    edge, server = models
    frames = rgb_frames(2)
    reference = server.predict(edge.features(frames))
    for frame, ref in zip(run_offline(edge, server, frames), reference):
        for task, p in frame.items():
            np.testing.assert_allclose(p.scores, ref[task].scores, rtol=1e-5, atol=1e-6)
    quantized = EdgeModel(tiny_bundle, threads=1, dtype="int8", codec_name="zstd")
    enc = quantized(frames[:1])[0]
    assert enc.dtype == "int8" and enc.codec == "zstd" and enc.raw_size == np.prod(server.manifest.features.shape)
    assert server.decode(enc).shape == tuple(server.manifest.features.shape)


def test_fixed_bottleneck_quantization_is_used(tiny_bundle, tmp_path):
    """A manifest with a fixed scale (a learned bottleneck) quantizes every frame with it."""
    import shutil

    from mtl_split_core.bundle import FeatureSpec, write_manifest

    shutil.copytree(tiny_bundle, tmp_path / "b")
    m = load_manifest(tmp_path / "b")
    spec = FeatureSpec(shape=m.features.shape, dtype="int8", codec="lz4", scale=0.05, zero_point=0)
    write_manifest(tmp_path / "b", dataclasses.replace(m, features=spec))
    enc = EdgeModel(tmp_path / "b", threads=1)(rgb_frames(1))[0]
    assert (enc.dtype, enc.codec, enc.quantization) == ("int8", "lz4", "model")
    np.testing.assert_array_equal(enc.scale, [np.float32(0.05)])
    np.testing.assert_array_equal(enc.zero_point, [0])


def test_server_refuses_other_models_and_shapes(models):
    from types import SimpleNamespace

    edge, server = models
    enc = edge(rgb_frames(1))[0]

    class Msg(SimpleNamespace):  # a SharedFeatures stand-in: fields + the .msg constants
        SCHEMA_VERSION, DTYPE_FLOAT32, DTYPE_FLOAT16, DTYPE_INT8, DTYPE_UINT8 = 3, 1, 2, 3, 4
        CODEC_NONE, CODEC_ZSTD, CODEC_LZ4, CODEC_ENTROPY = 0, 1, 2, 3
        QUANT_NONE, QUANT_MODEL, QUANT_TENSOR, QUANT_CHANNEL = 0, 1, 2, 3
        FRAME_KEY, FRAME_DELTA = 0, 1
    msg = codec.to_message(enc, Msg(model_fingerprint=codec.fingerprint("mtl-other")))
    with pytest.raises(BundleError, match=codec.fingerprint("mtl-other").hex()):
        server.decode_message(msg)
    msg.model_fingerprint = codec.fingerprint(server.manifest.model_id)
    features, size = server.decode_message(msg)
    assert features.shape == tuple(server.manifest.features.shape) and size == (40, 30)  # the frame, not the input
    with pytest.raises(CodecError, match="40x30 camera frame, over the server's max_pixels 1000"):
        server.decode_message(msg, max_pixels=1000)  # dense results of that frame would be that large
    half = codec.to_message(dataclasses.replace(enc, source_size=(40, 0)), Msg(model_fingerprint=msg.model_fingerprint))
    with pytest.raises(CodecError, match="40x0: both or neither must be 0"):
        server.decode_message(half)
    msg.schema_version = 1  # a peer of another release: refused with the reason, before the model check
    with pytest.raises(CodecError, match="schema_version 1"):
        server.decode_message(msg)
    wrong = codec.encode(np.ones((7, 2), np.float32))
    with pytest.raises(CodecError, match="different models"):
        server.decode(wrong)


def test_bad_wire_options_fail_at_load(tiny_bundle):
    with pytest.raises(CodecError):
        EdgeModel(tiny_bundle, codec_name="gzip")
    with pytest.raises(BundleError):
        EdgeModel(tiny_bundle / "missing")


def test_softmax_is_stable():
    p = softmax(np.array([[1000.0, 0.0], [0.0, 0.0]], np.float32))
    np.testing.assert_allclose(p, [[1, 0], [0.5, 0.5]], atol=1e-6)
    assert json.dumps(p.tolist())
