"""Visualization lifecycle node: each camera frame joined with its results by (stamp,
frame_id) in a bounded buffer (mtl_split_core.pairing), drawn (mtl_split_core.annotate) and
published as a plain sensor_msgs/Image rgb8 on mtl_split/annotated, so RViz and Foxglove show
it with no plugin. Off by default: the launch files start it with viz:=true.

It subscribes to what it draws, so the server computes the results it shows (a dense task's
images only when someone listens). Camera frames are kept serialized and decoded only when
their results arrive.
"""
from __future__ import annotations

import array
import time
from typing import Any

import numpy as np
from mtl_split.msg import Detection2DArray, MultiTaskResult
from rclpy.lifecycle import LifecycleState, TransitionCallbackReturn
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Header

from mtl_split_core import camera_messages, topics
from mtl_split_core.annotate import Annotations, annotate, classification_line
from mtl_split_core.bundle import Manifest, load_manifest
from mtl_split_core.dense import to_frame
from mtl_split_core.errors import ImageError
from mtl_split_core.imaging import to_array
from mtl_split_core.pairing import Pending, StampPairing
from mtl_split_core.stamps import set_ns, to_ns
from mtl_split_ros import qos
from mtl_split_ros.cameras import image_inputs
from mtl_split_ros.dense_results import received
from mtl_split_ros.diagnostics import FRAMES_IN, FRAMES_OUT
from mtl_split_ros.node import ManagedNode, contained, guarded
from mtl_split_ros.params import VIZ

IMAGE, RESULTS = "image", "results"  # parts of a frame besides its dense results (by task name)
# Why a frame was not drawn, counted on /diagnostics as dropped.<reason>.
UNANSWERED = "unanswered"  # its results never came within pair_timeout_s
EVICTED = "evicted"  # max_pending newer frames were waiting
NO_IMAGE = "no_image"  # results of a frame this node never received
BAD_IMAGE = "bad_image"


def rgb_message(rgb: np.ndarray, header: Header) -> Image:
    h, w, _ = rgb.shape
    msg = Image(header=header, height=h, width=w, encoding="rgb8", is_bigendian=0, step=w * 3)
    data = array.array("B")
    data.frombytes(np.ascontiguousarray(rgb).tobytes())
    msg.data = data
    return msg


class VizNode(ManagedNode):
    spec = VIZ

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._manifest: Manifest | None = None
        self._pairing: StampPairing | None = None
        self._inputs: list[tuple[str, type]] = []
        self._subs: list[Any] = []
        self._pub: Any = None
        self._timer: Any = None

    # --- lifecycle ------------------------------------------------------------------------

    @guarded
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        p = self.configure_params()
        self._manifest = load_manifest(p["bundle"])
        dense = [t.name for t in self._manifest.tasks if t.dense]
        self._pairing = StampPairing({IMAGE, RESULTS, *dense}, p["max_pending"], p["pair_timeout_s"])
        self._inputs = [(self.resolve_topic_name(t), msg_type)
                        for t, msg_type in image_inputs(p["image_topics"], p["image_transport"])]
        topic = self.resolve_topic_name(topics.ANNOTATED)
        self._pub = self.create_publisher(Image, topics.ANNOTATED, qos.profile(p, "annotated"),
                                          event_callbacks=qos.publisher_events(self.diag.error, topic, "annotated"))
        self.diag.info("model_id", self._manifest.model_id)
        self.get_logger().info(f"configured: model {self._manifest.model_id}, drawing on {topic}")
        return TransitionCallbackReturn.SUCCESS

    @guarded
    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        p = self.values
        images, results = qos.profile(p, "image"), qos.profile(p, "results")
        for topic, msg_type in self._inputs:
            msgtype = camera_messages.COMPRESSED if msg_type is CompressedImage else camera_messages.IMAGE
            self._subs.append(self.create_subscription(
                msg_type, topic, lambda raw, t=topic, m=msgtype: self._on_image(raw, t, m), images, raw=True,
                event_callbacks=qos.subscription_events(self.diag.error, topic, "image")))
        self._subs.append(self.create_subscription(
            MultiTaskResult, topics.RESULTS, lambda msg: self._add(msg.header, RESULTS, msg), results,
            event_callbacks=qos.subscription_events(self.diag.error, topics.RESULTS, "results")))
        for task in (t for t in self._manifest.tasks if t.dense):
            detection = task.kind == "detection"
            self._subs.append(self.create_subscription(
                Detection2DArray if detection else Image, f"{topics.RESULTS}/{task.name}",
                lambda msg, t=task.name: self._add(msg.header, t, msg), results))
        self._timer = self.create_timer(max(0.05, self.values["pair_timeout_s"] / 4), self._expire)
        return super().on_activate(state)

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        for sub in self._subs:
            self.destroy_subscription(sub)
        self._subs.clear()
        if self._timer is not None:
            self.destroy_timer(self._timer)
            self._timer = None
        if self._pairing is not None:
            self.diag.drop(UNANSWERED, len(self._pairing.clear()))
        return super().on_deactivate(state)

    def _release(self) -> None:
        if self._pub is not None:
            self.destroy_publisher(self._pub)
        self._pub = self._pairing = self._manifest = None

    # --- frames ---------------------------------------------------------------------------

    @contained
    def _on_image(self, raw: bytes, topic: str, msgtype: str) -> None:
        self.diag.count(FRAMES_IN)
        try:
            header = camera_messages.parse(raw, msgtype).header
        except ImageError as e:
            self.diag.error(topic, BAD_IMAGE, f"frame not drawn: {e}")
            self.diag.drop(BAD_IMAGE)
            return
        self._add(header, IMAGE, (topic, msgtype, raw))

    @contained
    def _add(self, header: Any, part: str, value: Any) -> None:
        complete, evicted = self._pairing.add((to_ns(header.stamp), header.frame_id), part, value, time.monotonic())
        for entry in evicted:
            self._give_up(entry, EVICTED)
        if complete is not None:
            self._draw(complete)

    def _expire(self) -> None:
        for entry in self._pairing.expire(time.monotonic()):
            self._give_up(entry, UNANSWERED)

    def _give_up(self, entry: Pending, reason: str) -> None:
        """A frame still missing parts: drawn with what came, if its image and a result did."""
        if IMAGE in entry.parts and len(entry.parts) > 1:
            self._draw(entry)
        elif IMAGE in entry.parts:
            self.diag.drop(reason)
        else:
            self.diag.drop(NO_IMAGE)  # results of a frame this node's camera subscription missed

    def _draw(self, entry: Pending) -> None:
        start = time.perf_counter()
        topic, msgtype, raw = entry.parts[IMAGE]
        try:
            rgb = to_array(camera_messages.parse(raw, msgtype), "rgb8", self.values["max_pixels"])
        except ImageError as e:
            self.diag.error(topic, BAD_IMAGE, f"frame not drawn: {e}")
            self.diag.drop(BAD_IMAGE)
            return
        height, width = rgb.shape[:2]
        notes = Annotations()
        results = entry.parts.get(RESULTS)
        if results is not None:
            notes.lines = [classification_line(p.task, p.class_name, p.score) for p in results.predictions]
        for task in (t for t in self._manifest.tasks if t.dense and t.name in entry.parts):
            value = to_frame(*received(entry.parts[task.name]), (width, height), self._manifest.input)
            if task.kind == "segmentation":
                notes.masks.append(value)
            elif task.kind == "depth":
                notes.depth = value
            else:
                notes.boxes.append((value, task.classes))
        header = Header(frame_id=entry.key[1])
        set_ns(header.stamp, entry.key[0])
        self._pub.publish(rgb_message(annotate(rgb, notes, self.values["max_width"]), header))
        self.diag.count(FRAMES_OUT)
        self.diag.observe("draw_ms", (time.perf_counter() - start) * 1e3)
