"""Every node parameter, described once: name, default, type, description, and its rules
(range, choices, when a change takes effect).

The nodes declare their parameters from these tables and check every value against them,
at start-up and whenever someone sets one (`NodeSpec.check_set`); launch files and the
`mtl-split launch` runner read the same tables, so a default, a limit or a description
lives in one place. Plain data on purpose: no rclpy import, so a launch file or a CLI can
read it anywhere, and the rules are tested without ROS.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from mtl_split_core.image_header import DEFAULT_MAX_PIXELS
from mtl_split_core.options import BACKENDS, DEFAULT_MAX_BYTES, PRECISIONS
from mtl_split_core.shards import DEFAULT_SHARD, parse_shard
from mtl_split_core.topics import DEFAULT_IMAGE_TOPIC

# ROS parameter types used here (rcl_interfaces/ParameterType names, lower case).
PARAM_TYPES = ("bool", "integer", "double", "string", "string_array")
RELIABILITY = ("reliable", "best_effort")

# When a new value takes effect, which decides when it may be set (lifecycle state names).
LIVE = "live"  # at once, in any state
ACTIVATE = "activate"  # at the next activate: refused while the node is active
CONFIGURE = "configure"  # at the next configure: refused while the node is configured (inactive or active)
STARTUP = "startup"  # read once when the process starts: read-only
APPLIES = (LIVE, ACTIVATE, CONFIGURE, STARTUP)
# The lifecycle states in which a parameter that applies at ... may be set.
_SETTABLE_IN = {LIVE: None, ACTIVATE: ("unconfigured", "inactive", "finalized"),
                CONFIGURE: ("unconfigured", "finalized"), STARTUP: ()}
# What to do to apply such a parameter on a running node (docs/nodes.md, "Changing parameters").
_HOW = {
    ACTIVATE: "deactivate the node, set it, activate again "
              "(ros2 lifecycle set {node} deactivate; ros2 param set {node} {name} ...; "
              "ros2 lifecycle set {node} activate)",
    CONFIGURE: "deactivate and clean up the node, set it, configure and activate again "
               "(ros2 lifecycle set {node} deactivate; ... cleanup; ros2 param set {node} {name} ...; "
               "... configure; ... activate), or restart the node with -p {name}:=...",
    STARTUP: "restart the node with -p {name}:=...",
}

Check = Callable[[Any], "str | None"]  # a value -> what is wrong with it (None: fine)
Rule = Callable[[Mapping[str, Any]], "str | None"]  # all values of a node -> what is wrong


@dataclass(frozen=True)
class Param:
    name: str
    default: Any
    type: str  # one of PARAM_TYPES
    description: str
    choices: tuple[str, ...] = ()  # allowed values of a string parameter (empty: any)
    applies: str = CONFIGURE  # one of APPLIES
    low: float | None = None  # inclusive bounds of a number (None: unbounded)
    high: float | None = None
    check: Check | None = None  # anything else the value must satisfy

    def __post_init__(self) -> None:
        if self.type not in PARAM_TYPES:
            raise ValueError(f"parameter {self.name}: unknown type {self.type!r}")
        if self.applies not in APPLIES:
            raise ValueError(f"parameter {self.name}: applies must be one of {APPLIES}, got {self.applies!r}")
        if self.problem(self.default) is not None:
            raise ValueError(f"parameter {self.name}: default {self.default!r}: {self.problem(self.default)}")

    def convert(self, value: Any) -> Any:
        """The value as the node uses it: a double given as an integer becomes a float, a
        string array a list. Call after problem() found nothing."""
        if self.type == "double":
            return float(value)
        if self.type == "string_array":
            return list(value)
        return value

    def problem(self, value: Any) -> str | None:
        """What is wrong with `value` for this parameter, or None."""
        if not _has_type(value, self.type):
            return f"must be {_TYPE_WORDS[self.type]}, got {value!r}"
        if self.type in ("integer", "double"):
            if not math.isfinite(value):
                return f"must be a finite number, got {value!r}"
            if self.low is not None and value < self.low:
                return f"must be >= {_num(self.low)}, got {_num(value)}" + self._range()
            if self.high is not None and value > self.high:
                return f"must be <= {_num(self.high)}, got {_num(value)}" + self._range()
        if self.choices and value not in self.choices:
            return f"must be one of {', '.join(map(repr, self.choices))}, got {value!r}"
        return self.check(value) if self.check is not None else None

    def _range(self) -> str:
        lo = "-inf" if self.low is None else _num(self.low)
        hi = "inf" if self.high is None else _num(self.high)
        return f" (range {lo} .. {hi})"

    def settable_in(self, state: str) -> bool:
        allowed = _SETTABLE_IN[self.applies]
        return allowed is None or state in allowed


_TYPE_WORDS = {"bool": "true or false", "integer": "an integer", "double": "a number",
               "string": "a string", "string_array": "a list of strings"}


def _has_type(value: Any, type_: str) -> bool:
    if type_ == "bool":
        return isinstance(value, bool)
    if type_ == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if type_ == "double":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if type_ == "string":
        return isinstance(value, str)
    return isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value)


def _num(x: float) -> str:
    return f"{x:g}" if isinstance(x, float) else str(x)


@dataclass(frozen=True)
class NodeSpec:
    """One node: how to start it, what it accepts, and which combinations it refuses."""

    name: str  # default node name
    executable: str  # ros2 run mtl_split <executable>
    module: str  # python -m <module>
    description: str
    params: tuple[Param, ...]
    rules: tuple[Rule, ...] = ()  # checks across parameters

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

    def problems(self, values: Mapping[str, Any]) -> list[str]:
        """Everything wrong with a full set of values (each parameter, then the rules)."""
        out = [f"parameter {n}: {e}" for n, v in values.items() if (e := self.param(n).problem(v))]
        return out or [e for rule in self.rules if (e := rule(values))]

    def check_set(self, current: Mapping[str, Any], changes: Mapping[str, Any], state: str,
                  node: str = "<node>") -> str | None:
        """Why `changes` may not be applied to a node in lifecycle `state` whose parameters
        are `current`, or None when they may. Nothing is applied either way."""
        for name, value in changes.items():
            if name not in self.names:
                continue  # not ours (use_sim_time, qos overrides): rclpy's business
            p = self.param(name)
            if (error := p.problem(value)) is not None:
                return f"{name}: {error}"
            if not p.settable_in(state) and p.convert(value) != current.get(name):
                return (f"{name} takes effect at {p.applies if p.applies != STARTUP else 'start-up'}, and the node "
                        f"is {state}: " + _HOW[p.applies].format(node=node, name=name))
        merged = {**current, **{n: self.param(n).convert(v) for n, v in changes.items() if n in self.names}}
        for rule in self.rules:
            if (error := rule(merged)) is not None:
                return error
        return None


def qos_params(group: str, what: str, reliability: str, depth: int, applies: str) -> tuple[Param, ...]:
    """The QoS parameters of one topic group: <group>_qos_reliability and <group>_qos_depth."""
    return (
        Param(f"{group}_qos_reliability", reliability, "string",
              f"QoS reliability of {what}. A best_effort subscriber or a reliable publisher "
              "matches every peer; a reliable subscriber never hears a best_effort publisher.",
              RELIABILITY, applies=applies),
        Param(f"{group}_qos_depth", depth, "integer",
              f"QoS history depth (keep last N) of {what}; 1 = always the newest message.",
              applies=applies, low=1, high=10_000),
    )


def _not_empty(what: str) -> Check:
    return lambda value: None if value else f"is empty; give at least one {what}"


def _shard(value: str) -> str | None:
    try:
        parse_shard(value)
    except ValueError as e:
        return str(e).removeprefix("shard ")
    return None


COMMON = (
    Param("bundle", "", "string",
          "Model bundle directory (manifest.json + ONNX files from `mtl-split export`). Required."),
    Param("autostart", True, "bool",
          "Configure and activate on start-up (a plain node). false: wait for a lifecycle "
          "manager to call configure/activate.", applies=STARTUP),
    Param("backend", "auto", "string",
          "Inference backend. auto: native TensorRT when `tensorrt` imports and an engine built "
          "for this GPU/TensorRT/precision is in the bundle, else ONNX Runtime (TensorRT, CUDA, "
          "then CPU execution provider, whichever is available).",
          BACKENDS),
    Param("tensorrt_precision", "auto", "string",
          "Precision of the TensorRT engine to load (auto: fp16, else fp32, else int8).",
          ("auto", *PRECISIONS)),
    Param("threads", 0, "integer",
          "ONNX Runtime intra-op threads (0: ONNX Runtime's default, one per core).", low=0, high=256),
    Param("diagnostics_period_s", 1.0, "double",
          "Period of the DiagnosticArray on /diagnostics (rates, latency, drops, errors).",
          applies=LIVE, low=0.05, high=3600.0),
)


def _edge_batching(values: Mapping[str, Any]) -> str | None:
    if values["batch_cameras"] and len(values["image_topics"]) > 1 and values["max_wait_ms"] <= 0:
        return "max_wait_ms must be > 0 to batch cameras (batch_cameras:=false never waits)"
    return None


def camera_params(depth: int) -> tuple[Param, ...]:
    """The camera inputs of a node: topics, transport, QoS (history `depth`), size limit."""
    return (
        Param("image_topics", [DEFAULT_IMAGE_TOPIC], "string_array",
              "Camera topics (remappable). A topic ending in /compressed is read as "
              "sensor_msgs/CompressedImage when image_transport is auto.", check=_not_empty("camera topic")),
        Param("image_transport", "auto", "string",
              "raw: sensor_msgs/Image; compressed: sensor_msgs/CompressedImage on <topic>/compressed; "
              "auto: compressed only for topics ending in /compressed.",
              ("auto", "raw", "compressed")),
        *qos_params("image", "the camera subscriptions", "best_effort", depth, ACTIVATE),
        Param("max_pixels", DEFAULT_MAX_PIXELS, "integer",
              "Largest camera frame (width x height) accepted. Checked before anything is decoded: "
              "a raw Image's width and height, a JPEG/PNG's header; larger frames are dropped and "
              "counted as errors.too_large (a small PNG claiming 20000x20000 costs microseconds).",
              applies=LIVE, low=1, high=1 << 40),
    )


EDGE = NodeSpec(
    name="mtl_split_edge",
    executable="edge_node",
    module="mtl_split_edge",
    description="Camera images -> shared backbone -> SharedFeatures on mtl_split/features.",
    params=COMMON + camera_params(1) + (
        Param("jpeg_reduced_decode", True, "bool",
              "Decode JPEG frames at 1/2, 1/4 or 1/8 scale (libjpeg's DCT scaling) when the model "
              "input is at least that much smaller, instead of decoding full size and shrinking.", applies=LIVE),
        # Depth 5: a reliable writer can only resend what its history still holds; with depth 1
        # a sample lost in transit under load is overwritten by the next one before the
        # retransmission (measured: 5-25% server-side gaps on a loaded 2-core machine).
        *qos_params("features", "the SharedFeatures publisher", "reliable", 5, CONFIGURE),
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
              "next keyframe, so on a lossy (best_effort) link keep it short.", low=1, high=100_000),
        Param("dead_zone", 0, "integer",
              "codec entropy, temporal coding: residual symbols of magnitude <= dead_zone are sent as 0 "
              "(lossy: the server's features stay within dead_zone symbols of the edge's, and never "
              "drift). A frame left with no change is a skip frame: no payload, and the server "
              "publishes the previous frame's results again, marked repeated. 0 = lossless.", low=0, high=127),
        Param("level", 3, "integer", "Compression level of zstd (1-22) or lz4 (0-16).", low=0, high=22),
        Param("per_channel", False, "bool",
              "int8/uint8: one scale per channel instead of per tensor (ignored when the "
              "bundle's bottleneck fixes the scale)."),
        Param("batch_cameras", True, "bool",
              "With several cameras, run one inference on the newest frame of each camera."),
        Param("max_wait_ms", 10.0, "double",
              "batch_cameras: longest wait for the other cameras' frames before running.", low=0.0, high=10_000.0),
    ),
    rules=(_edge_batching,),
)


def _something_to_serve(values: Mapping[str, Any]) -> str | None:
    if not values["features_topics"] and not values["discover"]:
        return "nothing to serve: set features_topics or discover:=true"
    return None


SERVER = NodeSpec(
    name="mtl_split_server",
    executable="server_node",
    module="mtl_split_server",
    description="SharedFeatures from one or many robots -> task heads -> results beside each features topic.",
    params=COMMON + (
        Param("features_topics", [], "string_array",
              "SharedFeatures topics to serve (relative names resolve in the node's namespace).",
              applies=ACTIVATE),
        Param("discover", True, "bool",
              "Also serve every topic ending in mtl_split/features of type "
              "mtl_split/msg/SharedFeatures found in the ROS graph. Set false at runtime: no new "
              "robots are taken on; the ones served stay until they leave.", applies=LIVE),
        Param("discovery_period_s", 1.0, "double",
              "How often the server looks at the ROS graph: discovery, and robots that left.",
              applies=LIVE, low=0.1, high=3600.0),
        Param("source_timeout_s", 30.0, "double",
              "A discovered robot whose features publishers left the graph, or that sent nothing "
              "this server could use for this long, is released (its subscriptions, result "
              "publishers, per-camera state and log keys); it is served again when it reappears, "
              "and a silent one is looked at again every source_timeout_s. A robot listed in "
              "features_topics keeps its subscription; only its per-camera state is released.",
              applies=LIVE, low=0.5, high=86_400.0),
        Param("max_robots", 1024, "integer",
              "Most robots (features topics) served at once: beyond it new ones are not taken on "
              "(warned, rate-limited), so a flood of invented topics costs a bounded number of "
              "subscriptions.", applies=ACTIVATE, low=1, high=100_000),
        Param("shard", DEFAULT_SHARD, "string",
              "index/count: serve only the robots whose namespace hashes to shard `index` of "
              "`count` (a stable hash: N servers with 0/N .. N-1/N split a fleet, each robot served "
              "by exactly one). 0/1 serves every robot.", applies=ACTIVATE, check=_shard),
        # Depth 5, not 1: features are small and already paid for by the robot; a short queue
        # absorbs bursts (several robots, a late server tick) instead of dropping them. The
        # newest-frame policy lives at the edge's camera input.
        *qos_params("features", "the SharedFeatures subscriptions", "reliable", 5, ACTIVATE),
        *qos_params("results", "the result publishers", "reliable", 10, ACTIVATE),
        Param("max_batch", 8, "integer", "Most frames (across robots) in one run of the heads.", low=1, high=1024),
        Param("max_wait_ms", 5.0, "double",
              "Longest a frame waits for frames of other active robots to batch with.", low=0.1, high=10_000.0),
        Param("max_feature_bytes", DEFAULT_MAX_BYTES, "integer",
              "Refuse SharedFeatures whose decoded tensor would exceed this many bytes.", low=1, high=1 << 40),
        Param("max_streams", 256, "integer",
              "Temporal coding: most camera streams whose last frame the server keeps (least "
              "recently seen forgotten first; a forgotten stream resumes at its next keyframe).", low=1, high=1 << 20),
        Param("stream_max_age_s", 10.0, "double",
              "Temporal coding: forget a camera stream silent for longer than this.", low=0.1, high=86_400.0),
        Param("dense_grid", "camera", "string",
              "Pixel grid of the dense results (masks, depth images, box pixels): `camera` = the "
              "source camera frame's (the bundle's resize_mode undone; scaled by dense_scale); "
              "`model` = the model input's, as the heads made them (BackboneInfo.input_width x "
              "input_height, no resampling: cheapest; mtl_split_core.dense.to_frame maps them onto "
              "the frame). The images' width/height and Detection2DArray.image_width/height name the "
              "grid.", choices=("camera", "model"), applies=LIVE),
        Param("dense_scale", 1.0, "double",
              "With dense_grid camera: the camera frame's grid scaled by this: 1 = the camera's own "
              "resolution, pixel for pixel; 0.5 = half its width and height (a quarter of the bytes).",
              applies=LIVE, low=0.01, high=1.0),
        Param("max_pixels", DEFAULT_MAX_PIXELS, "integer",
              "Largest camera frame (width x height, as SharedFeatures states it) whose features are "
              "served: dense results are that large. Larger ones are dropped and counted as "
              "errors.bad_payload; keep it at least the edge's max_pixels.", applies=LIVE, low=1, high=1 << 40),
    ),
    rules=(_something_to_serve,),
)

VIZ = NodeSpec(
    name="mtl_split_viz",
    executable="viz_node",
    module="mtl_split_viz",
    description="Camera images + results -> mtl_split/annotated (sensor_msgs/Image rgb8): each task's "
                "prediction and score, masks, boxes and depth drawn on the frame, for RViz or Foxglove.",
    params=tuple(p for p in COMMON if p.name in ("bundle", "autostart", "diagnostics_period_s")) + camera_params(5) + (
        *qos_params("results", "the result subscriptions", "reliable", 10, ACTIVATE),
        *qos_params("annotated", "the annotated image publisher", "reliable", 5, CONFIGURE),
        Param("max_pending", 30, "integer",
              "Most frames waiting for their results (the oldest is dropped first): bounds memory "
              "when results are late or lost.", low=1, high=100_000),
        Param("pair_timeout_s", 1.0, "double",
              "A frame whose results have not all arrived by then is drawn with those that have "
              "(or dropped if none has).", low=0.01, high=3600.0),
        Param("max_width", 1280, "integer",
              "Annotated images wider than this are shrunk to it (0: camera size), so an HD camera "
              "does not cost a full-size image per frame.", applies=LIVE, low=0, high=100_000),
    ),
)

NODES: dict[str, NodeSpec] = {"edge": EDGE, "server": SERVER, "viz": VIZ}
