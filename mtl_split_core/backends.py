"""Inference backends for the bundle's ONNX parts: ONNX Runtime (every machine) and native
TensorRT 10 (robots/servers with an engine built for their GPU).

Both expose the same small interface (Backend): named numpy inputs in, requested outputs
out. `open_backend` picks one for a bundle part, following the `backend` node parameter.

TensorRT engines are not portable between GPUs, TensorRT versions, precisions or shape
ranges, so an engine's file name records all of them next to the hash of the ONNX file it
was built from (`tensorrt_engine_name`); a stale or foreign engine is never loaded, it
simply does not match. `mtl-split build-engine` writes engines under these names.
"""
from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from .bundle import Manifest
from .errors import MtlSplitError
from .options import BACKENDS, PRECISIONS

# ONNX Runtime execution providers, best first; only those available are requested.
ORT_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider")


class BackendError(MtlSplitError):
    """No usable inference backend for what the parameters ask."""


class Backend(Protocol):
    name: str  # e.g. "onnxruntime:CPUExecutionProvider", "tensorrt:fp16"
    output_names: list[str]

    def run(self, feeds: Mapping[str, np.ndarray], outputs: Sequence[str] | None = None) -> list[np.ndarray]:
        """Outputs named in `outputs` (default: all), in that order."""
        ...


# --- ONNX Runtime ---------------------------------------------------------------------------

def ort_providers() -> list[str]:
    """The preferred providers this onnxruntime build has, best first."""
    import onnxruntime as ort

    available = set(ort.get_available_providers())
    return [p for p in ORT_PROVIDERS if p in available]


class OnnxRuntimeBackend:
    """One ONNX Runtime session, or with per_output=True one per output: ONNX Runtime runs
    the whole graph whatever outputs are fetched (measured: the same time for one of two
    heads as for both), so skipping a head needs its own session. Splitting needs the
    `onnx` package; without it, one session computes every output."""

    def __init__(self, path: str | Path, providers: Sequence[str] | None = None, threads: int = 0,
                 trt_cache_dir: str | Path | None = None, trt_fp16: bool = True, per_output: bool = False) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3  # errors only; provider fallbacks are reported via `name`
        # Idle pool threads sleep instead of spinning: edge, server and camera drivers share
        # the cores, and spinning pools slowed a 2-core machine 7x (4 -> 30 ms per frame).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        chosen: list[Any] = []
        for p in providers or ort_providers():
            if p == "TensorrtExecutionProvider" and trt_cache_dir is not None:
                Path(trt_cache_dir).mkdir(parents=True, exist_ok=True)
                chosen.append((p, {"trt_engine_cache_enable": True, "trt_engine_cache_path": str(trt_cache_dir),
                                   "trt_fp16_enable": trt_fp16}))
            else:
                chosen.append(p)
        self.path = Path(path)
        try:
            models = _split_outputs(path) if per_output else None
            if models is None:
                session = ort.InferenceSession(str(path), options, providers=chosen)
                self.output_names = [o.name for o in session.get_outputs()]
                self._sessions = {name: session for name in self.output_names}
            else:
                self.output_names = list(models)
                self._sessions = {name: ort.InferenceSession(m, options, providers=chosen)
                                  for name, m in models.items()}
        except _load_errors() as e:
            raise BackendError(f"ONNX Runtime cannot load {path} ({type(e).__name__}: {e}); re-export the "
                               "bundle, or update onnxruntime if the model needs a newer opset") from e
        first = next(iter(self._sessions.values()))
        self.split = models is not None
        self.name = f"onnxruntime:{first.get_providers()[0]}"

    def run(self, feeds: Mapping[str, np.ndarray], outputs: Sequence[str] | None = None) -> list[np.ndarray]:
        wanted = list(outputs) if outputs is not None else self.output_names
        try:
            if not self.split:
                return next(iter(self._sessions.values())).run(wanted, dict(feeds))
            return [self._sessions[name].run([name], dict(feeds))[0] for name in wanted]
        except _ort_errors() as e:
            raise BackendError(f"ONNX Runtime failed to run {self.path.name} ({type(e).__name__}: {e})") from e


def _ort_errors() -> tuple[type[Exception], ...]:
    """ONNX Runtime's exception types: pybind classes with no common base but Exception, so
    the nodes' `except MtlSplitError` would miss them (and rclpy swallows a failing transition
    without a word)."""
    from onnxruntime.capi import onnxruntime_pybind11_state as state

    return tuple(v for v in vars(state).values() if isinstance(v, type) and issubclass(v, Exception))


def _load_errors() -> tuple[type[Exception], ...]:
    """What loading a damaged ONNX file raises: ONNX Runtime's errors, protobuf's, onnx's."""
    errors = _ort_errors()
    try:
        from google.protobuf.message import DecodeError
        from onnx.checker import ValidationError
    except ImportError:
        return errors
    return (*errors, DecodeError, ValidationError)


def _split_outputs(path: str | Path) -> dict[str, bytes] | None:
    """Each output's subgraph as a serialized model; None without the onnx package."""
    try:
        import onnx
        import onnx.utils
    except ImportError:
        return None
    model = onnx.load(str(path))
    extractor = onnx.utils.Extractor(model)
    inputs = [i.name for i in model.graph.input]
    return {o.name: extractor.extract_model(inputs, [o.name]).SerializeToString() for o in model.graph.output}


# --- TensorRT 10 ----------------------------------------------------------------------------

def tensorrt_unavailable() -> str | None:
    """Why native TensorRT cannot be used here, or None if it can."""
    try:
        import tensorrt  # noqa: F401
    except ImportError as e:
        return f"the tensorrt Python package does not import ({e})"
    try:
        _cudart()
    except ImportError as e:
        return f"cuda-python (cuda.bindings) does not import ({e}); pip install cuda-python"
    try:
        gpu_name()
    except BackendError as e:
        return str(e)
    return None


def _cudart() -> Any:
    try:
        from cuda.bindings import runtime as cudart
    except ImportError:
        from cuda import cudart  # cuda-python < 12.6
    return cudart


def _cuda(result: tuple[Any, ...]) -> Any:
    """Unwrap a cuda-python (err, value...) tuple, raising on error."""
    err, *values = result
    if int(err) != 0:
        raise BackendError(f"CUDA call failed: {getattr(err, 'name', err)} (no usable GPU or driver?)")
    return values[0] if len(values) == 1 else tuple(values)


def gpu_name() -> str:
    """The current GPU's name, as engine file names carry it (engines do not port between GPUs)."""
    cudart = _cudart()
    props = _cuda(cudart.cudaGetDeviceProperties(_cuda(cudart.cudaGetDevice())))
    name = props.name.decode() if isinstance(props.name, bytes) else str(props.name)
    return name.rstrip("\x00")


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower()


def tensorrt_engine_name(onnx_file: str, onnx_sha256: str, trt_version: str, gpu: str,
                         precision: str, max_batch: int) -> str:
    """File name of an engine: everything that makes an engine valid for one machine."""
    if precision not in PRECISIONS:
        raise BackendError(f"precision {precision!r} is not one of {PRECISIONS}")
    stem = Path(onnx_file).stem
    return (f"{stem}.{onnx_sha256[:16]}.trt{_slug(trt_version)}.{_slug(gpu)}"
            f".{precision}.b{int(max_batch)}.engine")


def tensorrt_engine(bundle_dir: str | Path, manifest: Manifest, onnx_file: str, precision: str = "auto",
                    min_batch: int = 1) -> Path | None:
    """The engine in the bundle built from `onnx_file` for this machine's GPU and TensorRT,
    at `precision` (auto: fp16, fp32, int8) for at least `min_batch` frames; None if there is none."""
    import tensorrt

    gpu, sha = gpu_name(), manifest.files[onnx_file]
    engines = [(int(m.group(1)), f) for f in Path(bundle_dir).glob("*.engine")
               if (m := re.search(r"\.b(\d+)\.engine$", f.name))]
    for p in PRECISIONS if precision == "auto" else (precision,):
        fits = [(b, f) for b, f in engines if b >= min_batch
                and f.name == tensorrt_engine_name(onnx_file, sha, tensorrt.__version__, gpu, p, b)]
        if fits:
            return min(fits)[1]
    return None


class TensorRTBackend:
    """A deserialized TensorRT 10 engine run with execute_async_v3 on its own CUDA stream.
    Device buffers grow to the largest batch seen and are reused."""

    def __init__(self, engine_path: str | Path) -> None:
        import tensorrt as trt

        self._trt, self._cudart = trt, _cudart()
        self._logger = trt.Logger(trt.Logger.WARNING)
        self.engine = trt.Runtime(self._logger).deserialize_cuda_engine(Path(engine_path).read_bytes())
        if self.engine is None:
            raise BackendError(f"{engine_path} does not deserialize; rebuild it with `mtl-split build-engine`")
        self.context = self.engine.create_execution_context()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        is_input = {n: self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT for n in names}
        self.input_names = [n for n in names if is_input[n]]
        self.output_names = [n for n in names if not is_input[n]]
        self.stream = _cuda(self._cudart.cudaStreamCreate())
        self._buffers: dict[str, tuple[int, int]] = {}  # name -> (device pointer, bytes)
        precision = Path(engine_path).name.split(".")[-3]
        self.name = f"tensorrt:{precision}"

    def _device(self, name: str, nbytes: int) -> int:
        ptr, size = self._buffers.get(name, (0, 0))
        if size < nbytes:
            if ptr:
                _cuda(self._cudart.cudaFree(ptr))
            ptr = _cuda(self._cudart.cudaMalloc(nbytes))
            self._buffers[name] = (ptr, nbytes)
        return ptr

    def run(self, feeds: Mapping[str, np.ndarray], outputs: Sequence[str] | None = None) -> list[np.ndarray]:
        cudart = self._cudart
        h2d, d2h = cudart.cudaMemcpyKind.cudaMemcpyHostToDevice, cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost
        for name in self.input_names:
            x = np.ascontiguousarray(feeds[name], dtype=self._trt.nptype(self.engine.get_tensor_dtype(name)))
            self.context.set_input_shape(name, x.shape)
            ptr = self._device(name, x.nbytes)
            _cuda(cudart.cudaMemcpyAsync(ptr, x.ctypes.data, x.nbytes, h2d, self.stream))
            self.context.set_tensor_address(name, ptr)
        host: dict[str, np.ndarray] = {}
        for name in self.output_names:  # TensorRT computes every output of an engine
            shape = tuple(self.context.get_tensor_shape(name))
            host[name] = np.empty(shape, self._trt.nptype(self.engine.get_tensor_dtype(name)))
            self.context.set_tensor_address(name, self._device(name, host[name].nbytes))
        if not self.context.execute_async_v3(int(self.stream)):
            raise BackendError("TensorRT execution failed (see the TensorRT log above)")
        wanted = list(outputs) if outputs is not None else self.output_names
        for name in wanted:
            _cuda(cudart.cudaMemcpyAsync(host[name].ctypes.data, self._buffers[name][0], host[name].nbytes,
                                         d2h, self.stream))
        _cuda(cudart.cudaStreamSynchronize(self.stream))
        return [host[n].astype(np.float32, copy=False) for n in wanted]

    def __del__(self) -> None:
        for ptr, _ in getattr(self, "_buffers", {}).values():
            self._cudart.cudaFree(ptr)


# --- choice ---------------------------------------------------------------------------------

def open_backend(bundle_dir: str | Path, manifest: Manifest, onnx_file: str, kind: str = "auto",
                 precision: str = "auto", max_batch: int = 1, threads: int = 0,
                 per_output: bool = False) -> tuple[Backend, str]:
    """Open one ONNX part of a bundle. Returns the backend and a sentence on why it was chosen
    (for the log: auto silently falling back to the CPU is a classic surprise). per_output:
    let ONNX Runtime compute only the requested outputs (see OnnxRuntimeBackend)."""
    if kind not in BACKENDS:
        raise BackendError(f"backend {kind!r} is not one of {', '.join(BACKENDS)}")
    bundle_dir = Path(bundle_dir)
    if kind in ("auto", "tensorrt"):
        why_not = tensorrt_unavailable()
        engine = None if why_not else tensorrt_engine(bundle_dir, manifest, onnx_file, precision, max_batch)
        if engine is not None:
            return TensorRTBackend(engine), f"TensorRT engine {engine.name}"
        why_not = why_not or (f"no TensorRT engine for {onnx_file} on this GPU/TensorRT at precision "
                              f"{precision}, batch {max_batch}, in {bundle_dir}; build one with "
                              f"`mtl-split build-engine {bundle_dir}`")
        if kind == "tensorrt":
            raise BackendError(f"backend tensorrt: {why_not}; or set backend:=onnxruntime")
    else:
        why_not = "backend onnxruntime requested"
    # The TensorRT execution provider caches its engines outside the (maybe read-only) bundle.
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "mtl_split" / "ort_trt" / manifest.model_id
    backend = OnnxRuntimeBackend(bundle_dir / onnx_file, threads=threads, trt_cache_dir=cache,
                                 trt_fp16=precision != "fp32", per_output=per_output)
    if per_output and not backend.split:
        why_not += "; every head runs for every frame (install `onnx` to run only the subscribed ones)"
    return backend, f"{backend.name} ({why_not})"
