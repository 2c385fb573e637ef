"""Choices and limits a user sets (node parameters, CLI flags) that the core enforces, spelled
once. No imports on purpose: mtl_split_ros.params, and through it every launch file, reads
them without pulling numpy, zstandard or lz4 into the launch process."""

# Inference backends. auto: native TensorRT when an engine for this machine is in the
# bundle, else ONNX Runtime (mtl_split_core.backends.open_backend).
BACKENDS = ("auto", "tensorrt", "onnxruntime")
# TensorRT engine precisions; a precision of "auto" tries them in this order.
PRECISIONS = ("fp16", "fp32", "int8")
# Default ceiling for one decoded feature tensor: a claimed size above it is refused before
# any allocation, so a hostile or corrupt message cannot make the server allocate gigabytes.
DEFAULT_MAX_BYTES = 64 << 20
