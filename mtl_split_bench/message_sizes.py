"""Message sizes on the wire: the serialized (CDR) bytes DDS sends for features and images."""
from __future__ import annotations

from typing import Any

import numpy as np


def feature_message_bytes(enc: Any, model_id: str) -> int:
    """Serialized (CDR) size of the SharedFeatures message carrying enc: what DDS sends."""
    from mtl_split.msg import SharedFeatures
    from rclpy.serialization import serialize_message

    from mtl_split_core import codec

    msg = SharedFeatures()
    msg.header.frame_id = "camera"
    msg.model_fingerprint = np.frombuffer(codec.fingerprint(model_id), np.uint8)
    return len(serialize_message(codec.to_message(enc, msg)))


def image_message_bytes(data: bytes, fmt: str, shape: tuple[int, ...] | None = None) -> int:
    """Serialized size of a sensor_msgs CompressedImage (fmt jpeg/png) or, with shape, an
    rgb8 Image carrying data."""
    from rclpy.serialization import serialize_message
    from sensor_msgs.msg import CompressedImage, Image

    if shape is not None:
        msg = Image(height=shape[0], width=shape[1], encoding="rgb8", step=shape[1] * 3)
    else:
        msg = CompressedImage(format=fmt)
    msg.header.frame_id = "camera"
    msg.data = data
    return len(serialize_message(msg))
