"""Camera bags with ground truth written from any dataset (bag_reading reads any bag back).

A bag holds the camera images (sensor_msgs/Image rgb8, or sensor_msgs/CompressedImage JPEG
on `<camera>/compressed`) and, on topics.GROUND_TRUTH, one std_msgs/String per frame whose
JSON carries the frame's stamp and its labels (class indices and names; boxes of detection tasks),
and for segmentation / depth tasks a sensor_msgs/Image (mono8 class ids / 32FC1 metres) on
<GROUND_TRUTH>/<task> with the frame's stamp. Plain standard types keep the bag readable
by any ROS tool without our message definitions. rosbags writes real rosbag2 (mcap or
sqlite3) that `ros2 bag info/play` reads.
"""
from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from rosbags.rosbag2 import Writer
from rosbags.rosbag2 import StoragePlugin

from mtl_split_core import topics
from mtl_split_core.camera_messages import COMPRESSED, IMAGE, TYPESTORE, parse
from mtl_split_core.dense import Boxes
from mtl_split_core.errors import MtlSplitError
from mtl_split_core.stamps import set_ns

STRING = "std_msgs/msg/String"
JPEG_QUALITY = 90


class BagError(MtlSplitError):
    """A bag that cannot be written or read as a camera + ground-truth bag."""


@dataclass(frozen=True)
class Frame:
    """One camera message of a bag: raw CDR bytes to republish as is, plus its labels."""

    stamp_ns: int
    frame_id: str
    topic: str
    msgtype: str
    rawdata: bytes
    # Classification: the class name (a class index in bags without names); dense tasks: a
    # mask / depth array or Boxes (see write_bag).
    labels: dict[str, Any]
    index: int = 0  # position in the bag's camera stream (what a sidecar label file keys on)


def _stamp(ns: int):
    stamp = TYPESTORE.types["builtin_interfaces/msg/Time"](sec=0, nanosec=0)
    set_ns(stamp, ns)
    return stamp


def _header(ns: int, frame_id: str):
    return TYPESTORE.types["std_msgs/msg/Header"](stamp=_stamp(ns), frame_id=frame_id)


def image_message(rgb: np.ndarray, ns: int, frame_id: str, compressed: bool):
    """A rosbags sensor_msgs Image (rgb8) or CompressedImage (JPEG) of an RGB frame."""
    header = _header(ns, frame_id)
    if compressed:
        ok, jpg = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
        if not ok:
            raise BagError("JPEG encoding failed")
        return TYPESTORE.types[COMPRESSED](header=header, format="rgb8; jpeg compressed bgr8", data=jpg.reshape(-1))
    h, w, _ = rgb.shape
    return TYPESTORE.types[IMAGE](header=header, height=h, width=w, encoding="rgb8", is_bigendian=0,
                                  step=w * 3, data=np.ascontiguousarray(rgb).reshape(-1))


def parse_size(text: str) -> tuple[int, int]:
    """--size: "224" (square) or "1920x1080" (width x height) -> (width, height)."""
    w, sep, h = text.lower().partition("x")
    try:
        size = (int(w), int(h) if sep else int(w))
    except ValueError:
        size = (0, 0)
    if min(size) < 16:
        raise BagError(f"--size {text!r}: use N (a square N x N) or WIDTHxHEIGHT, e.g. 1920x1080, at least 16")
    return size


def widen(rgb: np.ndarray, labels: dict[str, Any], width: int, height: int) -> tuple[np.ndarray, dict[str, Any]]:
    """A square dataset frame (rendered at min(width, height)) -> a width x height camera frame:
    the sides are the frame's own edge pixels carried on (floor and wall go on, nothing is
    duplicated), so every label stays true; dense labels are carried on the same way and
    boxes shifted."""
    h, w = rgb.shape[:2]
    if (w, h) == (width, height):
        return rgb, labels
    if w != h or min(width, height) != w:
        raise BagError(f"cannot widen a {w}x{h} frame to {width}x{height}")
    left, top = (width - w) // 2, (height - h) // 2
    pads = (top, height - h - top, left, width - w - left)
    out = {}
    for task, label in labels.items():
        if isinstance(label, Boxes):
            label = Boxes(label.xyxy + np.array([left, top, left, top], np.float32), label.classes, label.scores)
        elif isinstance(label, np.ndarray):
            label = cv2.copyMakeBorder(label, *pads, cv2.BORDER_REPLICATE)
        out[task] = label
    return cv2.copyMakeBorder(rgb, *pads, cv2.BORDER_REPLICATE), out


def write_bag(
    out: Path,
    frames: Iterator[tuple[np.ndarray, dict[str, int]]],
    classes: dict[str, list[str]],
    rate_hz: float,
    compressed: bool = False,
    storage: str = "mcap",
    camera_topic: str = topics.DEFAULT_IMAGE_TOPIC,
    frame_id: str = "camera",
    start_ns: int | None = None,
) -> int:
    """Write frames at rate_hz into a new rosbag2 at `out`; returns the frame count."""
    out = Path(out)
    if out.exists():
        raise BagError(f"{out} exists; remove it or choose another --out")
    if rate_hz <= 0:
        raise BagError(f"rate must be > 0 Hz, got {rate_hz}")
    plugins = {"mcap": StoragePlugin.MCAP, "sqlite3": StoragePlugin.SQLITE3}
    if storage not in plugins:
        raise BagError(f"unknown storage {storage!r}: use mcap or sqlite3")
    out.parent.mkdir(parents=True, exist_ok=True)
    start_ns = start_ns if start_ns is not None else time.time_ns()
    period_ns = int(1e9 / rate_hz)
    image_topic = camera_topic + "/compressed" if compressed else camera_topic
    image_type = COMPRESSED if compressed else IMAGE
    count = 0
    with Writer(out, version=9, storage_plugin=plugins[storage]) as writer:
        cam = writer.add_connection(image_topic, image_type, typestore=TYPESTORE)
        gt = writer.add_connection(topics.GROUND_TRUTH, STRING, typestore=TYPESTORE)
        dense: dict[str, Any] = {}  # task -> connection of its label images
        for i, (rgb, labels) in enumerate(frames):
            ns = start_ns + i * period_ns
            msg = image_message(rgb, ns, frame_id, compressed)
            writer.write(cam, ns, TYPESTORE.serialize_cdr(msg, image_type))
            ints = {t: int(c) for t, c in labels.items() if isinstance(c, (int, np.integer))}
            truth = {"stamp_ns": ns, "frame_id": frame_id, "labels": ints,
                     "names": {t: classes[t][c] for t, c in ints.items()},
                     "boxes": {t: {"xyxy": b.xyxy.tolist(), "classes": b.classes.tolist()}
                               for t, b in labels.items() if isinstance(b, Boxes)}}
            for task, label in labels.items():
                if isinstance(label, np.ndarray):
                    if task not in dense:
                        dense[task] = writer.add_connection(truth_topic(task), IMAGE, typestore=TYPESTORE)
                    image = label_image(label, ns, frame_id)
                    writer.write(dense[task], ns, TYPESTORE.serialize_cdr(image, IMAGE))
            gt_msg = TYPESTORE.types[STRING](data=json.dumps(truth))
            writer.write(gt, ns, TYPESTORE.serialize_cdr(gt_msg, STRING))
            count += 1
    return count


def truth_topic(task: str) -> str:
    """Where a bag keeps a dense task's label images (mask mono8 / depth 32FC1)."""
    return f"{topics.GROUND_TRUTH}/{task}"


def label_image(label: np.ndarray, ns: int, frame_id: str):
    """A mask (uint8 -> mono8) or depth (float32 metres -> 32FC1) as a rosbags Image."""
    h, w = label.shape
    encoding = "32FC1" if label.dtype.kind == "f" else "mono8"
    data = np.ascontiguousarray(label.astype("<f4" if encoding == "32FC1" else np.uint8))
    return TYPESTORE.types[IMAGE](header=_header(ns, frame_id), height=h, width=w, encoding=encoding,
                                  is_bigendian=0, step=w * data.itemsize, data=data.view(np.uint8).reshape(-1))


def label_array(msg) -> np.ndarray:
    """The inverse of label_image."""
    if msg.encoding not in ("mono8", "32FC1"):
        raise BagError(f"a ground-truth image must be mono8 or 32FC1, got {msg.encoding!r}")
    dtype = np.uint8 if msg.encoding == "mono8" else np.dtype("<f4")
    rows = np.frombuffer(bytes(msg.data), np.uint8).reshape(msg.height, msg.step)
    return rows[:, :msg.width * np.dtype(dtype).itemsize].copy().view(dtype).reshape(msg.height, msg.width)


def decode_frame(frame: Frame):
    """The rosbags message of a frame (for offline evaluation)."""
    return parse(frame.rawdata, frame.msgtype)
