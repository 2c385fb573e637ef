"""`evaluate --record OUT`: an MCAP bag of what the pipeline said, readable by anyone.

The bag holds the camera frames as replayed, the edge's SharedFeatures, the server's
MultiTaskResult and per-task results (TaskResult; dense tasks' images and detections), the
visualization node's annotated images, and the source bag's ground truth for the replayed
frames, so a recording can be evaluated again. Messages are written as they came off the wire
(CDR bytes, nothing re-encoded), each with the wall-clock time it was sent or received.

Every connection carries its full message definition (our mtl_split types included, with
their dependencies), so Foxglove, `ros2 bag` and rosbags decode the file without our package.
Writing happens on a thread of its own, so a large camera frame never delays the replay.
"""
from __future__ import annotations

import json
import queue
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys import Stores, get_types_from_msg, get_typestore

from mtl_split_core import topics
from mtl_split_core.bundle import Manifest
from mtl_split_core.errors import MtlSplitError

PACKAGE = "mtl_split"
# Messages waiting for the writer thread, at most (then the replay waits: nothing is dropped).
QUEUE = 256


def msg_dir() -> Path:
    """msg/ of the source tree, else share/mtl_split/msg of an install (colcon or the venv)."""
    source = Path(__file__).resolve().parent.parent / "msg"
    if source.is_dir():
        return source
    from ament_index_python.packages import get_package_share_directory

    return Path(get_package_share_directory(PACKAGE)) / "msg"


def typestore() -> Any:
    """ROS 2 Kilted's standard types plus ours, from our .msg files."""
    store = get_typestore(Stores.ROS2_KILTED)
    types: dict[str, Any] = {}
    for path in sorted(msg_dir().glob("*.msg")):
        types.update(get_types_from_msg(path.read_text(), f"{PACKAGE}/msg/{path.stem}"))
    store.register(types)
    return store


class RecordError(MtlSplitError):
    """A recording that cannot be written."""


class Recorder:
    """An MCAP rosbag2 being written: write(topic, msgtype, cdr, log_ns) from any thread."""

    def __init__(self, out: Path) -> None:
        out = Path(out)
        if out.exists():
            raise RecordError(f"{out} exists; remove it or choose another --record")
        out.parent.mkdir(parents=True, exist_ok=True)
        self.out = out
        self.store = typestore()
        self.counts: dict[str, int] = {}
        self._writer = Writer(out, version=9, storage_plugin=StoragePlugin.MCAP)
        self._writer.open()
        self._connections: dict[str, Any] = {}
        self._queue: queue.Queue = queue.Queue(QUEUE)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._drain, name="mtl_split_recorder", daemon=True)
        self._thread.start()

    def write(self, topic: str, msgtype: str, cdr: bytes, log_ns: int) -> None:
        self._queue.put((topic, msgtype, bytes(cdr), log_ns))

    def _drain(self) -> None:
        while (item := self._queue.get()) is not None:
            topic, msgtype, cdr, log_ns = item
            try:
                if topic not in self._connections:
                    self._connections[topic] = self._writer.add_connection(topic, msgtype, typestore=self.store)
                self._writer.write(self._connections[topic], log_ns, cdr)
                self.counts[topic] = self.counts.get(topic, 0) + 1
            except Exception as e:  # noqa: BLE001 - raised by close(), in the caller's thread
                self._error = self._error or e

    def close(self) -> dict[str, int]:
        """Write what is queued, finish the file; messages written per topic."""
        self._queue.put(None)
        self._thread.join()
        self._writer.close()
        if self._error is not None:
            raise RecordError(f"recording {self.out} failed: {self._error}") from self._error
        return dict(sorted(self.counts.items()))


def header_stamp_ns(cdr: bytes) -> int | None:
    """The header stamp of a serialized message whose first field is a std_msgs/Header (every
    message we record), read in place: the 4-byte CDR encapsulation, then sec and nanosec."""
    if len(cdr) < 12 or cdr[0] != 0 or cdr[1] not in (0, 1):
        return None
    order = "little" if cdr[1] == 1 else "big"
    return int.from_bytes(cdr[4:8], order, signed=True) * 1_000_000_000 + int.from_bytes(cdr[8:12], order)


def _msgtype(msg_class: type) -> str:
    """'mtl_split/msg/SharedFeatures' of an rclpy message class."""
    return f"{msg_class.__module__.split('.')[0]}/msg/{msg_class.__name__}"


class PipelineRecording:
    """What a pipeline says about the frames a Replayer sends, into a Recorder: features,
    the combined and per-task results, dense results, annotated images (when the
    visualization node runs) and the edge's BackboneInfo."""

    def __init__(self, recorder: Recorder, manifest: Manifest, wait_annotated: bool,
                 truth: dict[int, list[tuple[str, str, bytes]]] | None = None) -> None:
        self.recorder, self.manifest, self.wait_annotated = recorder, manifest, wait_annotated
        self.truth = truth or {}  # the frames' labels (ground_truth), written beside them
        self.heard: set[str] = set()  # topics that answered a warm-up frame
        self.received: dict[str, int] = {}  # topic -> messages of replayed frames

    def frame_sent(self, frame: Any, unix_ns: int) -> None:
        """A camera frame the replayer published, with its labels, at the time it went out."""
        self.recorder.write(frame.topic, frame.msgtype, frame.rawdata, unix_ns)
        for topic, msgtype, raw in self.truth.get(frame.stamp_ns, ()):
            self.recorder.write(topic, msgtype, raw, unix_ns)

    def topics(self, namespace: str) -> list[tuple[str, type]]:
        from mtl_split.msg import Detection2DArray, MultiTaskResult, SharedFeatures, TaskResult
        from sensor_msgs.msg import Image

        ns = namespace.rstrip("/")
        out = [(f"{ns}/{topics.FEATURES}", SharedFeatures), (f"{ns}/{topics.RESULTS}", MultiTaskResult)]
        for task in self.manifest.tasks:
            kind = TaskResult if not task.dense else Detection2DArray if task.kind == "detection" else Image
            out.append((f"{ns}/{topics.RESULTS}/{task.name}", kind))
        return out + [(f"{ns}/{topics.ANNOTATED}", Image)]

    def attach(self, replayer: Any, namespace: str) -> Callable[[], bool]:
        """Subscribe the replayer's node; a predicate that holds once the annotated topic
        answered a warm-up frame (with wait_annotated: the visualization node runs), so that no
        replayed frame misses its drawing."""
        from rclpy.qos import QoSProfile, ReliabilityPolicy

        from mtl_split.msg import BackboneInfo
        from mtl_split_ros import qos

        from .replay import is_warmup

        replayer.recording = self
        reliable = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)
        for topic, msg_class in self.topics(namespace):
            msgtype = _msgtype(msg_class)

            def on_message(raw: bytes, topic: str = topic, msgtype: str = msgtype) -> None:
                stamp = header_stamp_ns(raw)
                if stamp is not None and replayer.ours(stamp):
                    self.recorder.write(topic, msgtype, raw, time.time_ns())
                    self.received[topic] = self.received.get(topic, 0) + 1
                elif stamp is not None and is_warmup(stamp):
                    self.heard.add(topic)

            replayer.node.create_subscription(msg_class, topic, on_message, reliable, raw=True)
        info = f"{namespace.rstrip('/')}/{topics.BACKBONE_INFO}"
        once: list[bool] = []

        def on_info(raw: bytes) -> None:  # latched: what the edge ran, recorded once
            if not once:
                once.append(True)
                self.recorder.write(info, _msgtype(BackboneInfo), raw, time.time_ns())

        replayer.node.create_subscription(BackboneInfo, info, on_info, qos.LATCHED, raw=True)
        annotated = f"{namespace.rstrip('/')}/{topics.ANNOTATED}"
        self._expected = [t for t, _ in self.topics(namespace) if t != annotated or self.wait_annotated]
        return lambda: not self.wait_annotated or annotated in self.heard

    def complete(self, answered: int) -> bool:
        """Every recorded topic has a message for each of the `answered` frames (the
        visualization node's drawings and per-task results may trail the combined result)."""
        return all(self.received.get(t, 0) >= answered for t in self._expected)


def ground_truth(bag: Path, stamps: set[int]) -> dict[int, list[tuple[str, str, bytes]]]:
    """The source bag's label messages (topic, type, CDR) of the frames with these stamps."""
    from rosbags.rosbag2 import Reader

    from .bag_reading import label_connections
    from .bags import STRING, TYPESTORE

    out: dict[int, list[tuple[str, str, bytes]]] = {}
    with Reader(bag) as reader:
        for conn, _, raw in reader.messages(connections=label_connections(reader.connections)):
            if conn.msgtype == STRING:
                stamp = int(json.loads(TYPESTORE.deserialize_cdr(raw, STRING).data)["stamp_ns"])
            else:
                stamp = header_stamp_ns(raw)
            if stamp in stamps:
                out.setdefault(stamp, []).append((conn.topic, conn.msgtype, bytes(raw)))
    return out
