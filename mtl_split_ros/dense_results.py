"""Dense results as the ROS messages people use (docs/nodes.md, "Dense results"):

- segmentation: sensor_msgs/Image `mono8`, one class id per pixel (255 = not seen), with the
  class names latched on results/<task>/label_info (mtl_split/LabelInfo, vision_msgs' meaning);
- depth: sensor_msgs/Image `32FC1`, z-depth in metres (REP 118; NaN = no reading);
- detection: mtl_split/Detection2DArray (vision_msgs/Detection2DArray's field meanings), and
  vision_msgs/Detection2DArray itself on results/<task>/vision_msgs when vision_msgs imports.

Every message carries the source image's header. Images and boxes are on the source image's
pixel grid scaled by the server's dense_scale (1: the camera's own resolution), or with
dense_grid "model" on the model input's; the image's width/height and
Detection2DArray.image_width/height name that grid (mtl_split_core.dense.to_frame reads it).
"""
from __future__ import annotations

import array
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sensor_msgs.msg import Image

from mtl_split.msg import Detection2D, Detection2DArray, LabelInfo, VisionClass
from mtl_split_core import topics
from mtl_split_core.bundle import TaskSpec
from mtl_split_core.dense import SCORE_THRESHOLD, Boxes, DensePrediction

from . import qos


def vision_msgs() -> Any | None:
    """vision_msgs.msg where it imports (a ROS install), else None (the PyPI wheels have none)."""
    try:
        import vision_msgs.msg as module
    except ImportError:
        return None
    return module


def image_message(data: np.ndarray, encoding: str, header: Any) -> Image:
    """An HxW mono8 or 32FC1 array as a sensor_msgs/Image (little-endian, packed rows)."""
    h, w = data.shape
    msg = Image(header=header, height=h, width=w, encoding=encoding, is_bigendian=0,
                step=w * data.dtype.itemsize)
    buf = array.array("B")
    buf.frombytes(np.ascontiguousarray(data).tobytes())
    msg.data = buf
    return msg


def detections_message(boxes: Boxes, task: TaskSpec, header: Any, model_id: str,
                       size: tuple[int, int]) -> Detection2DArray:
    centre = (boxes.xyxy[:, :2] + boxes.xyxy[:, 2:]) / 2
    extent = boxes.xyxy[:, 2:] - boxes.xyxy[:, :2]
    return Detection2DArray(header=header, model_id=model_id, image_width=size[0], image_height=size[1], detections=[
        Detection2D(class_id=int(c), class_name=task.classes[int(c)], score=float(s), center_x=float(cx),
                    center_y=float(cy), size_x=float(sx), size_y=float(sy))
        for c, s, (cx, cy), (sx, sy) in zip(boxes.classes, boxes.scores, centre, extent)])


def image_array(msg: Image) -> np.ndarray:
    """A mono8 or 32FC1 sensor_msgs/Image (little-endian) as an HxW array (the receiving side)."""
    dtype = {"mono8": np.dtype(np.uint8), "32FC1": np.dtype("<f4")}.get(msg.encoding)
    if dtype is None or msg.is_bigendian:
        raise ValueError(f"expected a little-endian mono8 or 32FC1 image, got {msg.encoding!r}")
    rows = np.frombuffer(bytes(msg.data), np.uint8).reshape(msg.height, msg.step)
    return rows[:, :msg.width * dtype.itemsize].copy().view(dtype).reshape(msg.height, msg.width)


def detections_boxes(msg: Detection2DArray) -> Boxes:
    """A Detection2DArray as Boxes (the receiving side)."""
    d = msg.detections
    centre = np.array([[x.center_x, x.center_y] for x in d], np.float32).reshape(-1, 2)
    half = np.array([[x.size_x, x.size_y] for x in d], np.float32).reshape(-1, 2) / 2
    return Boxes(np.concatenate([centre - half, centre + half], axis=1), [x.class_id for x in d],
                 [x.score for x in d])


def received(msg: Image | Detection2DArray) -> tuple[DensePrediction, tuple[int, int]]:
    """A dense result message -> (its value, the (width, height) grid it is on); bring it to
    another grid with mtl_split_core.dense.resample."""
    if isinstance(msg, Detection2DArray):
        return detections_boxes(msg), (int(msg.image_width), int(msg.image_height))
    return image_array(msg), (int(msg.width), int(msg.height))


def vision_detections(module: Any, msg: Detection2DArray) -> Any:
    """Our Detection2DArray as vision_msgs/Detection2DArray (class_id there is the name)."""
    out = module.Detection2DArray(header=msg.header)
    for d in msg.detections:
        det = module.Detection2D(header=msg.header)
        det.bbox.center.position.x, det.bbox.center.position.y = d.center_x, d.center_y
        det.bbox.size_x, det.bbox.size_y = d.size_x, d.size_y
        hyp = module.ObjectHypothesisWithPose()
        hyp.hypothesis.class_id, hyp.hypothesis.score = d.class_name, float(d.score)
        det.results.append(hyp)
        out.detections.append(det)
    return out


def label_info(task: TaskSpec, stamp: Any) -> LabelInfo:
    msg = LabelInfo(class_map=[VisionClass(class_id=i, class_name=n) for i, n in enumerate(task.classes)],
                    threshold=SCORE_THRESHOLD if task.kind == "detection" else 0.0)
    msg.header.stamp = stamp
    return msg


@dataclass
class DensePublishers:
    """One robot's publishers of one dense task."""

    task: TaskSpec
    result: Any
    label_info: Any | None = None
    vision: Any | None = None
    vision_module: Any | None = field(default=None, repr=False)

    def wanted(self) -> bool:
        return any(p is not None and p.get_subscription_count() for p in (self.result, self.vision))

    def publishers(self) -> list[Any]:
        return [p for p in (self.result, self.label_info, self.vision) if p is not None]

    def publish(self, value: DensePrediction, header: Any, model_id: str, size: tuple[int, int]) -> None:
        """One frame's result (a mask, a depth image or Boxes) on the (width, height) grid `size`."""
        if self.task.kind == "segmentation":
            self.result.publish(image_message(value, "mono8", header))
        elif self.task.kind == "depth":
            self.result.publish(image_message(value, "32FC1", header))
        else:
            msg = detections_message(value, self.task, header, model_id, size)
            if self.result.get_subscription_count():
                self.result.publish(msg)
            if self.vision is not None and self.vision.get_subscription_count():
                self.vision.publish(vision_detections(self.vision_module, msg))


def dense_publishers(node: Any, features_topic: str, task: TaskSpec, profile: Any,
                     make: Any) -> DensePublishers:
    """The publishers of a dense task beside a features topic; `make(type, topic, qos)` creates
    one (the node's publisher factory, with its QoS event reporting)."""
    topic = topics.task_result_for(features_topic, task.name)
    msg_type = Detection2DArray if task.kind == "detection" else Image
    pubs = DensePublishers(task, make(msg_type, topic, profile))
    if task.kind != "depth":
        pubs.label_info = node.create_publisher(LabelInfo, topics.label_info_for(features_topic, task.name),
                                                qos.LATCHED)
        pubs.label_info.publish(label_info(task, node.get_clock().now().to_msg()))
    module = vision_msgs() if task.kind == "detection" else None
    if module is not None:
        pubs.vision = make(module.Detection2DArray, topics.vision_msgs_for(features_topic, task.name), profile)
        pubs.vision_module = module
    return pubs
