"""Camera topics as the nodes subscribe to them (the edge, the visualization node)."""
from __future__ import annotations

from sensor_msgs.msg import CompressedImage, Image

from mtl_split_core.topics import COMPRESSED_SUFFIX


def image_inputs(image_topics: list[str], transport: str) -> list[tuple[str, type]]:
    """(topic, message type) per camera, following image_transport's naming convention."""
    inputs = []
    for topic in image_topics:
        compressed = topic.endswith(COMPRESSED_SUFFIX)
        if transport == "compressed" and not compressed:
            topic, compressed = topic + COMPRESSED_SUFFIX, True
        elif transport == "raw":
            compressed = False
        inputs.append((topic, CompressedImage if compressed else Image))
    return inputs
