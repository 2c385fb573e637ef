"""Edge lifecycle node: configure loads the bundle and the backbone session, activate
subscribes to the cameras, deactivate/cleanup release them. Numerics are EdgeModel's."""
from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
from rclpy.lifecycle import LifecycleState, TransitionCallbackReturn
from sensor_msgs.msg import CompressedImage
from std_msgs.msg import Header

from mtl_split.msg import BackboneInfo, SharedFeatures
from mtl_split_core import camera_messages, codec, topics
from mtl_split_core.batching import BatchPolicy, BatchScheduler
from mtl_split_core.errors import ImageError, ImageTooLarge, MtlSplitError
from mtl_split_core.frame_losses import REPLACED, StreamLosses
from mtl_split_core.imaging import decode
from mtl_split_core.preprocess import Decoded
from mtl_split_core.runtime import EdgeModel
from mtl_split_core.stamps import set_ns, to_ns, wrapped_us
from mtl_split_ros import qos
from mtl_split_ros.batch_timer import BatchTimer
from mtl_split_ros.cameras import image_inputs
from mtl_split_ros.diagnostics import FRAMES_IN, FRAMES_OUT, sequence_id
from mtl_split_ros.node import ManagedNode, contained, guarded, timer
from mtl_split_ros.params import EDGE

# Error kinds counted on /diagnostics as errors.<kind>.
BAD_IMAGE = "bad_image"
TOO_LARGE = "too_large"  # more pixels than max_pixels
INFERENCE = "inference"
UNHEARD = "unheard"  # frames published while no subscriber was matched
DEACTIVATED = "deactivated"  # waiting for the other cameras when the node was deactivated
# After activation, how long discovery has to find the cameras that were already publishing;
# a camera first heard later started after the edge, and its unseen first frames are counted.
DISCOVERY_GRACE_S = 2.0
LOSSES_PERIOD_S = 0.25  # how often sequence gaps are classified (frame_losses.GAP_SETTLE_S)


@dataclass
class CameraFrame:
    """A decoded camera image waiting for the backbone."""

    header: Header
    image: Decoded
    convert_ms: float


@dataclass
class Camera:
    """One camera subscription: its topic, message type and losses."""

    topic: str
    msgtype: str  # camera_messages.IMAGE or COMPRESSED
    losses: StreamLosses


def ros_header(header: Any) -> Header:
    """A parsed (rosbags) header as the std_msgs/Header SharedFeatures carries."""
    out = Header(frame_id=header.frame_id)
    set_ns(out.stamp, to_ns(header.stamp))
    return out


class EdgeNode(ManagedNode):
    spec = EDGE

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._model: EdgeModel | None = None
        self._inputs: list[tuple[str, type]] = []
        self._subs: list[Any] = []
        self._batcher: BatchScheduler[CameraFrame] | None = None  # streams: camera topics
        self._batch_timer: BatchTimer[CameraFrame] | None = None
        self._features_pub: Any = None
        self._info_pub: Any = None
        self._cameras: list[Camera] = []
        self._losses_timer: Any = None
        self._settle_at: float | None = None  # when discovery has had its time (after activation)

    # --- lifecycle ------------------------------------------------------------------------

    @guarded
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        p = self.configure_params()
        self._inputs = [(self.resolve_topic_name(t), msg_type)
                        for t, msg_type in image_inputs(p["image_topics"], p["image_transport"])]
        batching = p["batch_cameras"] and len(self._inputs) > 1
        self._model = EdgeModel(p["bundle"], backend=p["backend"], precision=p["tensorrt_precision"],
                                threads=p["threads"], max_batch=len(self._inputs) if batching else 1, dtype=p["dtype"] or None,
                                codec_name=p["codec"] or None, level=p["level"], per_channel=p["per_channel"],
                                keyframe_interval=p["keyframe_interval"], dead_zone=p["dead_zone"])
        self._fingerprint = np.frombuffer(codec.fingerprint(self._model.manifest.model_id), np.uint8)
        # The newest frame of each camera; a newer one replaces it while it waits (a drop).
        policy = BatchPolicy(max_batch=len(self._inputs) if batching else 1,
                             max_wait_s=p["max_wait_ms"] / 1000.0 if batching else 0.0, newest_only=True)
        self._batcher = BatchScheduler(policy, expected=[topic for topic, _ in self._inputs])
        self._batch_timer = BatchTimer(self, self._batcher, self._infer)
        features_topic = self.resolve_topic_name(topics.FEATURES)
        self._features_pub = self.create_publisher(
            SharedFeatures, topics.FEATURES, qos.profile(p, "features"),
            event_callbacks=qos.publisher_events(self.diag.error, features_topic, "features"))
        self._info_pub = self.create_publisher(BackboneInfo, topics.BACKBONE_INFO, qos.LATCHED)
        m = self._model
        for key, value in [("model_id", m.manifest.model_id), ("backbone", m.manifest.backbone),
                           ("backend", m.backend.name), ("dtype", m.dtype), ("codec", m.codec)]:
            self.diag.info(key, value)
        profile = os.environ.get("FASTDDS_DEFAULT_PROFILES_FILE") or os.environ.get("FASTRTPS_DEFAULT_PROFILES_FILE")
        self.diag.info("dds_profile", profile or "default")
        if not profile and os.environ.get("RMW_IMPLEMENTATION", "rmw_fastrtps_cpp").startswith("rmw_fastrtps"):
            self.get_logger().warning(
                "no Fast DDS profile: camera frames over ~1 MB from another process may be lost in transport "
                "(counted as dropped.transport); start with `mtl-split launch` / the launch files, or export "
                "FASTDDS_DEFAULT_PROFILES_FILE=<mtl_split>/config/fastdds/nodes.xml (docs/nodes.md)")
        self.get_logger().info(
            f"configured: model {m.manifest.model_id} ({m.manifest.backbone}, split {m.manifest.split_point}), "
            f"backend {m.backend_reason}; features {m.dtype}/{m.codec} on "
            f"{self._features_pub.topic_name}")
        return TransitionCallbackReturn.SUCCESS

    @guarded
    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        profile = qos.profile(self.values, "image")
        for topic, msg_type in self._inputs:
            cam = Camera(topic, camera_messages.COMPRESSED if msg_type is CompressedImage else camera_messages.IMAGE,
                         StreamLosses())
            self._cameras.append(cam)
            # Taken serialized and parsed in place: no copy of a multi-megabyte frame into Python objects.
            self._subs.append(self.create_subscription(
                msg_type, topic, lambda raw, info, c=cam: self._on_image(raw, info, c), profile, raw=True,
                event_callbacks=qos.subscription_events(
                    self.diag.error, topic, "image",
                    lost=lambda status, c=cam: self.diag.drops(c.losses.on_lost(status.total_count,
                                                                                 time.monotonic())))))
        self._settle_at = time.monotonic() + DISCOVERY_GRACE_S
        self._losses_timer = self.create_timer(LOSSES_PERIOD_S, self._check_losses)
        self._info_pub.publish(self._backbone_info())
        self.get_logger().info("active: cameras " + ", ".join(
            f"{s.topic_name} ({t.__name__})" for s, (_, t) in zip(self._subs, self._inputs)))
        return super().on_activate(state)

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        for sub in self._subs:
            self.destroy_subscription(sub)
        self._subs.clear()
        self._cameras.clear()
        if self._losses_timer is not None:
            self.destroy_timer(self._losses_timer)
            self._losses_timer = None
        if self._batcher is not None:
            self.diag.drop(DEACTIVATED, len(self._batcher.clear()))
            self._batch_timer.tick()  # nothing waits: stops the timer
        if self._model is not None:
            self._model.reset_streams()  # on re-activation every camera starts with a keyframe
        return super().on_deactivate(state)

    @contained(frames=timer)
    def _check_losses(self) -> None:
        now = time.monotonic()
        settle = self._settle_at is not None and now >= self._settle_at
        if settle:
            self._settle_at = None
        for cam in self._cameras:
            if settle:  # discovery has had its time: the cameras publishing now were there before us
                cam.losses.settle(bytes(i.endpoint_gid) for i in self.get_publishers_info_by_topic(cam.topic))
            self.diag.drops(cam.losses.flush(now))

    def _release(self) -> None:
        for pub in (self._features_pub, self._info_pub):
            if pub is not None:
                self.destroy_publisher(pub)
        if self._batch_timer is not None:
            self._batch_timer.destroy()
        self._features_pub = self._info_pub = self._batch_timer = self._batcher = self._model = None

    # --- frames ---------------------------------------------------------------------------

    @contained
    def _on_image(self, raw: bytes, info: dict[str, Any], cam: Camera) -> None:
        start = time.perf_counter()
        self.diag.count(FRAMES_IN)
        self.diag.drops(cam.losses.on_message(*sequence_id(info), time.monotonic()))
        try:
            msg = camera_messages.parse(raw, cam.msgtype)
            image = decode(msg, self.values["max_pixels"],
                           self._model.manifest.input if self.values["jpeg_reduced_decode"] else None)
        except ImageError as e:
            kind = TOO_LARGE if isinstance(e, ImageTooLarge) else BAD_IMAGE
            self.diag.error(cam.topic, kind, f"frame dropped: {e}")
            self.diag.drop(kind)
            return
        frame = CameraFrame(ros_header(msg.header), image, (time.perf_counter() - start) * 1e3)
        # A newer frame of this camera replaces the one waiting for the other cameras.
        self.diag.drop(REPLACED, len(self._batcher.add(frame, cam.topic)))
        self._batch_timer.tick()

    @contained(frames=len)
    def _infer(self, frames: list[CameraFrame]) -> None:
        start = time.perf_counter()
        try:
            # One temporal stream per camera frame_id (what the server keys its streams by too).
            encoded = self._model([f.image for f in frames], [f.header.frame_id for f in frames])
        except MtlSplitError as e:
            self.diag.error(self.get_name(), INFERENCE, f"{len(frames)} frame(s) dropped: {e}")
            self.diag.drop(INFERENCE, len(frames))
            return
        batch_ms = (time.perf_counter() - start) * 1e3
        # Features nobody receives (no server matched: stopped, or dead past its DDS lease)
        # are still published, and counted, so an outage is not silent on the robot's side.
        unheard = not self._features_pub.get_subscription_count()
        for frame, enc in zip(frames, encoded):
            msg = codec.to_message(enc, SharedFeatures())
            msg.header = frame.header
            msg.model_fingerprint = self._fingerprint
            msg.edge_compute_ms = frame.convert_ms + batch_ms
            msg.sent_us = wrapped_us(self.get_clock().now().nanoseconds)
            self._features_pub.publish(msg)
            self.diag.count(FRAMES_OUT)
            self.diag.count(UNHEARD, unheard)
            self.diag.count("bytes_out", enc.wire_bytes)
            self.diag.count(f"frames_{enc.frame}")
            self.diag.observe("bytes_per_frame", enc.wire_bytes)
            self.diag.observe("compute_ms", msg.edge_compute_ms)

    def _backbone_info(self) -> BackboneInfo:
        m = self._model
        info = BackboneInfo(
            schema_version=SharedFeatures.SCHEMA_VERSION, model_id=m.manifest.model_id,
            backbone=m.manifest.backbone, split_point=m.manifest.split_point, backend=m.backend.name,
            input_width=m.manifest.input.width, input_height=m.manifest.input.height,
            tasks=m.manifest.task_names, feature_shape=list(m.manifest.features.shape),
            dtype=codec.wire_code(SharedFeatures, "DTYPE_", m.dtype),
            codec=codec.wire_code(SharedFeatures, "CODEC_", m.codec), image_topics=[s.topic_name for s in self._subs])
        info.header.stamp = self.get_clock().now().to_msg()
        return info
