"""Any rosbag2 (mcap or sqlite3) as camera frames to replay: the camera topic chosen or found,
raw or compressed, at any resolution, beside any other topics; ground truth where the bag has
it (topics.GROUND_TRUTH, as `mtl-split make-bag` writes it), none needed.

Only the camera and label connections are deserialized, so a robot's bag full of message
types we do not know reads fine. Frames are matched to their results by header stamp; a bag
whose camera stamps repeat (a driver that never stamps) is re-stamped with the time the bag
recorded each frame, and the report says so.
"""
from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from rosbags.rosbag2 import Reader

from mtl_split_core import topics
from mtl_split_core.dense import Boxes
from mtl_split_core.stamps import set_ns, to_ns

from .bags import COMPRESSED, IMAGE, STRING, TYPESTORE, BagError, Frame, label_array

# Topics under a namespace segment of this name are ours (ground truth, results, annotated
# images, features), never a camera.
OWN_SEGMENT = topics.FEATURES.split("/")[0]


@dataclass
class BagFrames:
    """What a bag gave: its frames in stamp order and how they were found."""

    frames: list[Frame]
    camera_topic: str
    candidates: list[str]  # every camera-like topic of the bag
    other_topics: dict[str, str] = field(default_factory=dict)  # topic -> type, not replayed
    restamped: bool = False  # header stamps repeated: frames carry the bag's record times instead


def image_topics(connections: Iterable[Any]) -> list[str]:
    """Camera candidates: Image / CompressedImage topics that are not ours."""
    return sorted({c.topic for c in connections if c.msgtype in (IMAGE, COMPRESSED)
                   and OWN_SEGMENT not in c.topic.strip("/").split("/")})


def label_connections(connections: Iterable[Any]) -> list[Any]:
    """The ground-truth connections (make-bag's format): the JSON strings, the dense label images."""
    return [c for c in connections if c.topic == topics.GROUND_TRUTH and c.msgtype == STRING
            or c.topic.startswith(topics.GROUND_TRUTH + "/") and c.msgtype == IMAGE]


def choose_camera(candidates: list[str], wanted: str | None, bag: Path) -> str:
    """The camera topic: `wanted` (or its /compressed twin when only that is recorded), else
    the only candidate; a clear error listing the candidates otherwise."""
    listing = ", ".join(candidates) or "none"
    if wanted:
        for topic in (wanted, wanted.rstrip("/") + topics.COMPRESSED_SUFFIX):
            if topic in candidates:
                return topic
        raise BagError(f"{bag} has no camera topic {wanted} (its image topics: {listing})")
    if len(candidates) == 1:
        return candidates[0]
    if not candidates:
        raise BagError(f"{bag} has no sensor_msgs/Image or CompressedImage topic to replay")
    raise BagError(f"{bag} has {len(candidates)} image topics ({listing}); choose one with --camera-topic")


def read_frames(bag: Path, camera_topic: str | None = None, limit: int | None = None) -> BagFrames:
    """The camera frames of any bag (at most `limit`), in stamp order, with their ground truth."""
    bag = Path(bag)
    if not bag.exists():
        raise BagError(f"no bag at {bag}; record one with `ros2 bag record` or make one with `mtl-split make-bag`")
    if limit is not None and limit < 1:
        raise BagError(f"--limit must be at least 1, got {limit}")
    truth: dict[int, dict[str, Any]] = {}
    camera: list[tuple[int, int, str, str, bytes]] = []  # header ns, log ns, frame_id, msgtype, raw
    try:
        reader_cm = Reader(bag)
    except Exception as e:  # rosbags raises its own error types for every malformed bag
        raise BagError(f"{bag} is not a readable rosbag2 ({type(e).__name__}: {e})") from e
    with reader_cm as reader:
        candidates = image_topics(reader.connections)
        chosen = choose_camera(candidates, camera_topic, bag)
        labels = label_connections(reader.connections)
        cams = [c for c in reader.connections if c.topic == chosen]
        others = {c.topic: c.msgtype for c in reader.connections if c not in cams and c not in labels}
        for conn, log_ns, raw in reader.messages(connections=cams + labels):
            if conn.topic == chosen:
                if limit is not None and len(camera) == limit:
                    break
                msg = TYPESTORE.deserialize_cdr(raw, conn.msgtype)
                camera.append((to_ns(msg.header.stamp), log_ns, msg.header.frame_id, conn.msgtype, raw))
            elif conn.msgtype == STRING:
                _read_truth(TYPESTORE.deserialize_cdr(raw, STRING).data, truth)
            else:
                msg = TYPESTORE.deserialize_cdr(raw, IMAGE)
                truth.setdefault(to_ns(msg.header.stamp), {})[conn.topic.rsplit("/", 1)[1]] = label_array(msg)
    if not camera:
        raise BagError(f"{bag}: {chosen} holds no messages")
    stamps = [c[0] for c in camera]
    restamped = len(set(stamps)) < len(stamps)
    if restamped:
        camera = _restamp(camera)
    camera.sort(key=lambda c: c[0])
    frames = [Frame(ns, fid, chosen, mt, raw, truth.get(ns, {}) if not restamped else {}, index=i)
              for i, (ns, _, fid, mt, raw) in enumerate(camera)]
    return BagFrames(frames, chosen, candidates, others, restamped)


def _read_truth(text: str, truth: dict[int, dict[str, Any]]) -> None:
    """One ground-truth JSON (see bags.write_bag): classification labels by class name (by
    index in bags that carry no names), boxes of detection tasks."""
    entry = json.loads(text)
    names = entry.get("names", {})
    labels: dict[str, Any] = {t: str(names[t]) if t in names else int(c) for t, c in entry.get("labels", {}).items()}
    labels.update({t: Boxes(np.array(b["xyxy"], np.float32).reshape(-1, 4), b["classes"])
                   for t, b in entry.get("boxes", {}).items()})
    truth.setdefault(int(entry["stamp_ns"]), {}).update(labels)


def _restamp(camera: list[tuple[int, int, str, str, bytes]]) -> list[tuple[int, int, str, str, bytes]]:
    """Header stamps that repeat cannot tell results apart: use the record time (made unique),
    written into the message itself, so that what is published carries it too."""
    out, last = [], 0
    for _, log_ns, fid, msgtype, raw in sorted(camera, key=lambda c: c[1]):
        ns = max(log_ns, last + 1)
        last = ns
        msg = TYPESTORE.deserialize_cdr(raw, msgtype)
        set_ns(msg.header.stamp, ns)
        out.append((ns, log_ns, fid, msgtype, bytes(TYPESTORE.serialize_cdr(msg, msgtype))))
    return out


def with_labels(frames: list[Frame], labels: dict[int, dict[str, Any]]) -> list[Frame]:
    """Frames with labels added (frame index -> {task: label}), overriding the bag's own."""
    return [replace(f, labels={**f.labels, **labels[f.index]}) if f.index in labels else f for f in frames]
