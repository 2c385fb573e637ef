"""`mtl-split build-engine`: TensorRT 10 engines for a bundle's backbone.onnx and heads.onnx.

Engines are named by mtl_split_core.backends.tensorrt_engine_name (ONNX sha256, TensorRT
version, GPU, precision, max batch), the names the nodes look for, so a stale or foreign
engine is never loaded. int8 uses entropy calibration (IInt8EntropyCalibrator2) on training
images (heads: on the features the backbone computes from them), with a calibration cache
next to the engine. tensorrt is imported here, lazily, and nowhere else in training.
"""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from mtl_split_core.bundle import BACKBONE_FILE, FEATURES_NAME, HEADS_FILE, IMAGE_INPUT, Manifest, load_manifest

from .errors import TrainingError

WORKSPACE_BYTES = 1 << 30


def calibration_batches(bundle_dir: Path, manifest: Manifest, part: str, count: int, batch: int,
                        data: str | None) -> Iterator[np.ndarray]:
    """Normalized training images (backbone) or their backbone features (heads), `batch` at a time."""
    import onnxruntime as ort

    from .datasets import DataOptions, open_data
    from .datasets.torch_dataset import normalize

    spec = data or manifest.extra.get("training", {}).get("data", {}).get("spec", "shapes")
    size = manifest.input.width
    images = open_data(spec, DataOptions(size=size, train_size=max(count, 1))).split("train")
    edge = ort.InferenceSession(str(bundle_dir / BACKBONE_FILE), providers=["CPUExecutionProvider"])
    for start in range(0, min(count, len(images)) - batch + 1, batch):
        x = np.stack([normalize(images.image(i), manifest.input).numpy() for i in range(start, start + batch)])
        yield x if part == BACKBONE_FILE else edge.run([FEATURES_NAME], {IMAGE_INPUT: x})[0]


def _make_calibrator(trt: Any, batches: Iterator[np.ndarray], batch: int, cache: Path) -> Any:
    import torch

    class EntropyCalibrator(trt.IInt8EntropyCalibrator2):
        def __init__(self) -> None:
            super().__init__()
            self.device_batch: torch.Tensor | None = None

        def get_batch_size(self) -> int:
            return batch

        def get_batch(self, names: list[str]) -> list[int] | None:
            x = next(batches, None)
            if x is None:
                return None
            self.device_batch = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).cuda()
            return [int(self.device_batch.data_ptr())]

        def read_calibration_cache(self) -> bytes | None:
            return cache.read_bytes() if cache.is_file() else None

        def write_calibration_cache(self, data: Any) -> None:
            cache.write_bytes(bytes(data))

    return EntropyCalibrator()


def build_engines(bundle: str | Path, precision: str = "fp16", calib_images: int = 256, batch: int = 1,
                  data: str | None = None) -> list[Path]:
    """Build backbone and heads engines for this machine's GPU; returns their paths."""
    from mtl_split_core import backends

    reason = backends.tensorrt_unavailable()
    if reason is not None:
        raise TrainingError(f"cannot build TensorRT engines: {reason} (the bundle still runs on ONNX Runtime)")
    import tensorrt as trt

    bundle_dir = Path(bundle)
    manifest = load_manifest(bundle_dir)
    if batch < 1 or (precision == "int8" and calib_images < batch):
        raise TrainingError("--batch must be >= 1 and --calib-images at least one batch")
    logger = trt.Logger(trt.Logger.WARNING)
    gpu = backends.gpu_name()  # the name the nodes look engines up by
    shapes = {BACKBONE_FILE: (IMAGE_INPUT, (3, manifest.input.height, manifest.input.width)),
              HEADS_FILE: (FEATURES_NAME, tuple(manifest.features.shape))}
    written = []
    for onnx_file, (input_name, shape) in shapes.items():
        builder = trt.Builder(logger)
        network = builder.create_network(0)  # TensorRT 10: explicit batch is the only mode
        parser = trt.OnnxParser(network, logger)
        if not parser.parse_from_file(str(bundle_dir / onnx_file)):
            errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
            raise TrainingError(f"TensorRT cannot parse {onnx_file}: {errors}")
        config = builder.create_builder_config()
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, WORKSPACE_BYTES)
        profile = builder.create_optimization_profile()
        profile.set_shape(input_name, (1, *shape), (batch, *shape), (batch, *shape))
        config.add_optimization_profile(profile)
        if precision == "fp16":
            config.set_flag(trt.BuilderFlag.FP16)
        elif precision == "int8":
            config.set_flag(trt.BuilderFlag.INT8)
            config.set_calibration_profile(profile)
            cache = bundle_dir / f"{Path(onnx_file).stem}.{manifest.files[onnx_file][:16]}.int8.calib"
            batches = calibration_batches(bundle_dir, manifest, onnx_file, calib_images, batch, data)
            config.int8_calibrator = _make_calibrator(trt, batches, batch, cache)
        serialized = builder.build_serialized_network(network, config)
        if serialized is None:
            raise TrainingError(f"TensorRT failed to build {onnx_file} at {precision} (see its log above)")
        name = backends.tensorrt_engine_name(onnx_file, manifest.files[onnx_file], trt.__version__, gpu,
                                             precision, batch)
        path = bundle_dir / name
        path.write_bytes(bytes(serialized))
        written.append(path)
    return written
