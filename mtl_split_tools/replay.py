"""Replay a bag's camera frames into a running pipeline and collect what comes back.

The replay node publishes the recorded messages byte for byte (original header, so results
match ground truth by stamp), listens to the pipeline's results and features, and records
when each frame went out and when its results came back (one clock: same machine).
"""
from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from mtl_split_core import topics
from mtl_split_core.bundle import TaskSpec
from mtl_split_core.stamps import NS_PER_S, set_ns, to_ns

from .bags import COMPRESSED, Frame, image_message
from .driver import DriverNode

# Longest wait for a frame's result (then it counts as dropped) or for the edge to take it.
RESULT_TIMEOUT_S = 5.0
# Stamps of warm-up frames: 1 s after the epoch onwards, far from any recorded stamp.
WARMUP_NS = NS_PER_S
# --rate max: frames published but not yet answered, at most (below the server's queue depth).
MAX_IN_FLIGHT = 3
COUNTERS = ("frames_in", "frames_out", "dropped", "unheard")


@dataclass
class ReplayLog:
    sent_at: dict[int, float] = field(default_factory=dict)  # stamp_ns -> perf_counter
    results: dict[int, object] = field(default_factory=dict)  # stamp_ns -> MultiTaskResult
    received_at: dict[int, float] = field(default_factory=dict)
    # Results of frames this replay did not send: another publisher on the camera topic, or
    # another run in the same DDS domain.
    foreign_results: int = 0
    features_seen: set[int] = field(default_factory=set)  # stamps the edge has published features of
    feature_bytes: list[int] = field(default_factory=list)  # serialized SharedFeatures sizes
    payload_bytes: list[int] = field(default_factory=list)  # their data fields
    # Newest /diagnostics counters of each mtl_split node: where frames were dropped.
    node_counters: dict[str, dict[str, str]] = field(default_factory=dict)
    # stamp_ns -> {task: (array / Boxes, the (width, height) grid it is on)}
    dense: dict[int, dict[str, Any]] = field(default_factory=dict)


def is_warmup(stamp_ns: int) -> bool:
    return WARMUP_NS <= stamp_ns < 2 * WARMUP_NS


class Replayer(DriverNode):
    """The driver node as a camera: publish frames, gather their results.

    watch_features=False leaves out the features subscription (a measurement that must not
    pay for deserializing every SharedFeatures here); replay(rate=None) needs it.
    """

    def __init__(self, namespace: str, image_topic: str, image_type: str, watch_features: bool = True,
                 dense: Sequence[TaskSpec] = ()):
        from diagnostic_msgs.msg import DiagnosticArray
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        from rclpy.serialization import deserialize_message
        from sensor_msgs.msg import CompressedImage, Image

        from mtl_split.msg import BackboneInfo, MultiTaskResult, SharedFeatures
        from mtl_split_ros import qos

        super().__init__("mtl_split_replay")
        ns = namespace.rstrip("/")
        self.log = ReplayLog()
        self.info = None
        self.image_topic = image_topic
        self._last_stamp = 0
        self.recording: Any = None  # a recording.PipelineRecording: every frame published goes into it too
        msg_type = CompressedImage if image_type == COMPRESSED else Image
        # Reliable depth 1 matches both best-effort and reliable camera subscriptions.
        self.pub = self.node.create_publisher(msg_type, image_topic,
                                              QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE))
        reliable = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)
        self.node.create_subscription(MultiTaskResult, f"{ns}/{topics.RESULTS}", self._on_result, reliable)

        def on_features(raw: bytes) -> None:
            msg = deserialize_message(raw, SharedFeatures)
            self.log.features_seen.add(to_ns(msg.header.stamp))
            self.log.feature_bytes.append(len(raw))
            self.log.payload_bytes.append(len(msg.data))

        if watch_features:  # best effort: a passive observer must not slow the edge's reliable publisher
            self.node.create_subscription(SharedFeatures, f"{ns}/{topics.FEATURES}", on_features,
                                          QoSProfile(depth=100, reliability=ReliabilityPolicy.BEST_EFFORT), raw=True)
        self.node.create_subscription(BackboneInfo, f"{ns}/{topics.BACKBONE_INFO}",
                                      lambda m: setattr(self, "info", m), qos.LATCHED)
        self.node.create_subscription(DiagnosticArray, topics.DIAGNOSTICS, self._on_diagnostics, 10)
        for task in dense:  # dense results come on their own topics (and only when listened to)
            self._listen_dense(task, f"{ns}/{topics.RESULTS}/{task.name}", reliable)

    def _listen_dense(self, task: TaskSpec, topic: str, qos: Any) -> None:
        from sensor_msgs.msg import Image

        from mtl_split.msg import Detection2DArray
        from mtl_split_ros.dense_results import received

        detection = task.kind == "detection"

        def on_result(msg: Any) -> None:
            ns = to_ns(msg.header.stamp)
            if ns in self.log.sent_at:
                self.log.dense.setdefault(ns, {})[task.name] = received(msg)

        self.node.create_subscription(Detection2DArray if detection else Image, topic, on_result, qos)

    def _on_result(self, msg) -> None:
        ns = to_ns(msg.header.stamp)
        if ns not in self.log.sent_at:
            if not is_warmup(ns):  # a late warm-up result is ours
                self.log.foreign_results += 1
        elif ns not in self.log.results:
            self.log.received_at[ns] = time.perf_counter()
            self.log.results[ns] = msg

    def _on_diagnostics(self, msg) -> None:
        from mtl_split_ros.diagnostics import status_node

        for status in msg.status:
            if (node := status_node(status.name)) is not None:
                self.log.node_counters[node] = {
                    kv.key: kv.value for kv in status.values
                    if kv.key in COUNTERS or kv.key.startswith(("errors", "dropped."))}

    def ours(self, stamp_ns: int) -> bool:
        """A frame this replay sent (not a warm-up frame, not another publisher's)."""
        return stamp_ns in self.log.sent_at and not is_warmup(stamp_ns)

    def publish(self, frame: Frame) -> None:
        """One recorded frame, byte for byte (its stamp is what its results are matched by)."""
        self.log.sent_at[frame.stamp_ns] = time.perf_counter()
        unix_ns = time.time_ns()
        self.pub.publish(frame.rawdata)
        if self.recording is not None:
            self.recording.frame_sent(frame, unix_ns)

    def publish_now(self, msg) -> int:
        """A camera message stamped now (unique per replayer); the stamp in nanoseconds."""
        stamp = max(time.time_ns(), self._last_stamp + 1)
        self._last_stamp = stamp
        set_ns(msg.header.stamp, stamp)
        self.log.sent_at[stamp] = time.perf_counter()
        self.pub.publish(msg)
        return stamp

    def wait_ready(self, warmup: Any, timeout: float = 60.0, also: Callable[[], bool] | None = None) -> None:
        """Until the edge listens, the server answers, and one warm-up frame (a Frame or a
        camera message, re-stamped) went through (and `also()` holds, e.g. a recording heard
        from every node): loads, first inferences and DDS discovery are not part of the
        measurement."""
        from rclpy.serialization import deserialize_message

        msg = deserialize_message(warmup.rawdata, self.pub.msg_type) if isinstance(warmup, Frame) else warmup
        k = 0

        def warm_up() -> None:
            nonlocal k
            if self.pub.get_subscription_count() > 0:
                k += 1
                set_ns(msg.header.stamp, WARMUP_NS + k)  # never a bag stamp
                self.log.sent_at[WARMUP_NS + k] = time.perf_counter()
                self.pub.publish(msg)

        def ready() -> bool:
            return any(ns < 2 * WARMUP_NS for ns in self.log.results) and (also is None or also())

        if self.spin_until(ready, timeout, warm_up) is None:
            raise TimeoutError(
                f"no results within {timeout:.0f} s of publishing on {self.image_topic}: is the pipeline "
                "running with the same ROS_DOMAIN_ID, and does the edge subscribe to this topic?")
        self.log = ReplayLog()  # forget the warm-up

    def replay(self, frames: list[Frame], rate: float | None, progress=None) -> None:
        """rate: real-time factor (1.0 = recorded timing); None = as fast as the pipeline
        takes it: the next frame goes out once the edge has published the previous one's
        features (its camera queue keeps only the newest frame, so it must never find two
        waiting) and fewer than MAX_IN_FLIGHT frames await results (the server's queue is
        short too). Edge and server still work on consecutive frames at the same time."""
        start_wall = time.perf_counter()
        t0 = frames[0].stamp_ns
        previous: int | None = None
        for f in frames:
            if rate is not None:
                self.spin_for(start_wall + (f.stamp_ns - t0) / 1e9 / rate - time.perf_counter())
            elif previous is not None:
                self.spin_until(lambda p=previous: (p in self.log.features_seen or p in self.log.results)
                                and len(self.log.sent_at) - len(self.log.results) < MAX_IN_FLIGHT, RESULT_TIMEOUT_S)
            previous = f.stamp_ns
            self.publish(f)
            self.spin_once()
            if progress is not None:
                progress.update(1)
        # A frame with no result after RESULT_TIMEOUT_S counts as dropped.
        self.spin_until(lambda: len(self.log.results) >= len(frames), RESULT_TIMEOUT_S)
        self.spin_for(1.5)  # one more /diagnostics period: the nodes' final counters


def replay(namespace: str, frames: list[Frame], rate: float | None, desc: str = "replay",
           ready_timeout: float = 60.0, leave: bool = True, dense: Sequence[TaskSpec] = (),
           recording: Any = None) -> ReplayLog:
    """Warm up the running pipeline whose results appear in `namespace`, replay frames into
    it with a progress bar, and return what came back (with the results of `dense` tasks).
    recording: a recording.PipelineRecording that also writes everything said into a bag."""
    from tqdm import tqdm

    with Replayer(namespace, frames[0].topic, frames[0].msgtype, dense=dense) as replayer:
        also = recording.attach(replayer, namespace) if recording is not None else None
        replayer.wait_ready(frames[0], timeout=ready_timeout, also=also)
        with tqdm(total=len(frames), desc=desc, unit="frame", leave=leave) as bar:
            replayer.replay(frames, rate, progress=bar)
        if recording is not None:  # what trails the results (drawings) goes into the bag too
            replayer.spin_until(lambda: recording.complete(len(replayer.log.results)), RESULT_TIMEOUT_S)
        return replayer.log


def recompress(frame: Frame) -> Frame:
    """A raw bag frame as a JPEG CompressedImage frame (for --compressed on a raw bag)."""
    from mtl_split_core.imaging import to_array

    from .bags import TYPESTORE, decode_frame

    rgb = to_array(decode_frame(frame), "rgb8")
    msg = image_message(rgb, frame.stamp_ns, frame.frame_id, compressed=True)
    return Frame(frame.stamp_ns, frame.frame_id, frame.topic + "/compressed", COMPRESSED,
                 bytes(TYPESTORE.serialize_cdr(msg, COMPRESSED)), frame.labels)
