"""Every node parameter, described once: name, default, type, description.

The nodes declare their parameters from these tables; launch files and the `mtl-split
launch` runner read the same tables, so a default or a description lives in one place.
Plain data on purpose: no rclpy import, so a launch file or a CLI can read it anywhere.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mtl_split_core.image_header import DEFAULT_MAX_PIXELS
from mtl_split_core.options import BACKENDS, DEFAULT_MAX_BYTES, PRECISIONS
from mtl_split_core.topics import DEFAULT_IMAGE_TOPIC

# ROS parameter types used here (rcl_interfaces/ParameterType names, lower case).
PARAM_TYPES = ("bool", "integer", "double", "string", "string_array")
RELIABILITY = ("reliable", "best_effort")


@dataclass(frozen=True)
class Param:
    name: str
    default: Any
    type: str  # one of PARAM_TYPES
    description: str
    choices: tuple[str, ...] = ()  # allowed values of a string parameter (empty: any)

    def __post_init__(self) -> None:
        if self.type not in PARAM_TYPES:
            raise ValueError(f"parameter {self.name}: unknown type {self.type!r}")


@dataclass(frozen=True)
class NodeSpec:
    """One node: how to start it and what it accepts."""

    name: str  # default node name
    executable: str  # ros2 run mtl_split <executable>
    module: str  # python -m <module>
    description: str
    params: tuple[Param, ...]

    def param(self, name: str) -> Param:
        for p in self.params:
            if p.name == name:
                return p
        raise KeyError(f"{self.name} has no parameter {name!r} (known: {', '.join(self.names)})")

    @property
    def names(self) -> list[str]:
        return [p.name for p in self.params]

    def defaults(self) -> dict[str, Any]:
        return {p.name: p.default for p in self.params}


def qos_params(group: str, what: str, reliability: str, depth: int) -> tuple[Param, ...]:
    """The QoS parameters of one topic group: <group>_qos_reliability and <group>_qos_depth."""
    return (
        Param(f"{group}_qos_reliability", reliability, "string",
              f"QoS reliability of {what}. A best_effort subscriber or a reliable publisher "
              "matches every peer; a reliable subscriber never hears a best_effort publisher.",
              RELIABILITY),
        Param(f"{group}_qos_depth", depth, "integer",
              f"QoS history depth (keep last N) of {what}; 1 = always the newest message."),
    )


COMMON = (
    Param("bundle", "", "string",
          "Model bundle directory (manifest.json + ONNX files from `mtl-split export`). Required."),
    Param("autostart", True, "bool",
          "Configure and activate on start-up (a plain node). false: wait for a lifecycle "
          "manager to call configure/activate."),
    Param("backend", "auto", "string",
          "Inference backend. auto: native TensorRT when `tensorrt` imports and an engine built "
          "for this GPU/TensorRT/precision is in the bundle, else ONNX Runtime (TensorRT, CUDA, "
          "then CPU execution provider, whichever is available).",
          BACKENDS),
    Param("tensorrt_precision", "auto", "string",
          "Precision of the TensorRT engine to load (auto: fp16, else fp32, else int8).",
          ("auto", *PRECISIONS)),
    Param("threads", 0, "integer",
          "ONNX Runtime intra-op threads (0: ONNX Runtime's default, one per core)."),
    Param("diagnostics_period_s", 1.0, "double",
          "Period of the DiagnosticArray on /diagnostics (rates, latency, drops, errors)."),
)

EDGE = NodeSpec(
    name="mtl_split_edge",
    executable="edge_node",
    module="mtl_split_edge",
    description="Camera images -> shared backbone -> SharedFeatures on mtl_split/features.",
    params=COMMON + (
        Param("image_topics", [DEFAULT_IMAGE_TOPIC], "string_array",
              "Camera topics (remappable). A topic ending in /compressed is read as "
              "sensor_msgs/CompressedImage when image_transport is auto."),
        Param("image_transport", "auto", "string",
              "raw: sensor_msgs/Image; compressed: sensor_msgs/CompressedImage on <topic>/compressed; "
              "auto: compressed only for topics ending in /compressed.",
              ("auto", "raw", "compressed")),
        *qos_params("image", "the camera subscriptions", "best_effort", 1),
        Param("max_pixels", DEFAULT_MAX_PIXELS, "integer",
              "Largest camera frame (width x height) accepted. Checked before anything is decoded: "
              "a raw Image's width and height, a JPEG/PNG's header; larger frames are dropped and "
              "counted as errors.too_large (a small PNG claiming 20000x20000 costs microseconds)."),
        Param("jpeg_reduced_decode", True, "bool",
              "Decode JPEG frames at 1/2, 1/4 or 1/8 scale (libjpeg's DCT scaling) when the model "
              "input is at least that much smaller, instead of decoding full size and shrinking."),
        # Depth 5: a reliable writer can only resend what its history still holds; with depth 1
        # a sample lost in transit under load is overwritten by the next one before the
        # retransmission (measured: 5-25% server-side gaps on a loaded 2-core machine).
        *qos_params("features", "the SharedFeatures publisher", "reliable", 5),
        Param("dtype", "", "string",
              "Wire dtype of the features (empty: the bundle's default).",
              ("", "float32", "float16", "int8", "uint8")),
        Param("codec", "", "string",
              "Coding of the features (empty: the bundle's default). entropy: the bundle's learned "
              "tables (bundles trained with train.rate_lambda), with temporal coding per camera.",
              ("", "none", "zstd", "lz4", "entropy")),
        Param("keyframe_interval", 30, "integer",
              "codec entropy: at most this many frames per camera from one keyframe to the next; the "
              "others are coded as residuals against the previous frame (a scene change forces a "
              "keyframe). 1 = every frame coded alone. After a lost frame the server resumes at the "
              "next keyframe, so on a lossy (best_effort) link keep it short."),
        Param("level", 3, "integer", "Compression level of zstd/lz4."),
        Param("per_channel", False, "bool",
              "int8/uint8: one scale per channel instead of per tensor (ignored when the "
              "bundle's bottleneck fixes the scale)."),
        Param("batch_cameras", True, "bool",
              "With several cameras, run one inference on the newest frame of each camera."),
        Param("max_wait_ms", 10.0, "double",
              "batch_cameras: longest wait for the other cameras' frames before running."),
    ),
)

SERVER = NodeSpec(
    name="mtl_split_server",
    executable="server_node",
    module="mtl_split_server",
    description="SharedFeatures from one or many robots -> task heads -> results beside each features topic.",
    params=COMMON + (
        Param("features_topics", [], "string_array",
              "SharedFeatures topics to serve (relative names resolve in the node's namespace)."),
        Param("discover", True, "bool",
              "Also serve every topic ending in mtl_split/features of type "
              "mtl_split/msg/SharedFeatures found in the ROS graph."),
        Param("discovery_period_s", 1.0, "double", "How often discovery scans the ROS graph."),
        # Depth 5, not 1: features are small and already paid for by the robot; a short queue
        # absorbs bursts (several robots, a late server tick) instead of dropping them. The
        # newest-frame policy lives at the edge's camera input.
        *qos_params("features", "the SharedFeatures subscriptions", "reliable", 5),
        *qos_params("results", "the result publishers", "reliable", 10),
        Param("max_batch", 8, "integer", "Most frames (across robots) in one run of the heads."),
        Param("max_wait_ms", 5.0, "double",
              "Longest a frame waits for frames of other active robots to batch with."),
        Param("max_feature_bytes", DEFAULT_MAX_BYTES, "integer",
              "Refuse SharedFeatures whose decoded tensor would exceed this many bytes."),
        Param("max_streams", 256, "integer",
              "Temporal coding: most camera streams whose last frame the server keeps (least "
              "recently seen forgotten first; a forgotten stream resumes at its next keyframe)."),
        Param("stream_max_age_s", 10.0, "double",
              "Temporal coding: forget a camera stream silent for longer than this."),
    ),
)

NODES: dict[str, NodeSpec] = {"edge": EDGE, "server": SERVER}
