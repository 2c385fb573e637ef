"""Topic names: the one place they are spelled.

Names without a leading slash are relative, so a node started in namespace /robot_a
publishes /robot_a/mtl_split/features and the server answers in /robot_a/mtl_split/results.
"""
from __future__ import annotations

DEFAULT_IMAGE_TOPIC = "/camera/image_raw"
COMPRESSED_SUFFIX = "/compressed"  # image_transport's name of a camera's CompressedImage topic
FEATURES = "mtl_split/features"
BACKBONE_INFO = "mtl_split/backbone_info"
RESULTS = "mtl_split/results"
ANNOTATED = "mtl_split/annotated"  # the visualization node's camera frames with results drawn on
# Ground-truth labels written into bags by `mtl-split make-bag` (std_msgs/String, JSON).
GROUND_TRUTH = "/mtl_split/ground_truth"
DIAGNOSTICS = "/diagnostics"


def results_for(features_topic: str) -> str:
    """The combined results topic beside a (fully qualified) features topic."""
    base = features_topic.rstrip("/")
    if not base.endswith(FEATURES):
        raise ValueError(f"{features_topic!r} does not end in {FEATURES!r}")
    return base[: -len(FEATURES)] + RESULTS


def task_result_for(features_topic: str, task: str) -> str:
    """The per-task results topic beside a features topic."""
    return f"{results_for(features_topic)}/{task}"


# Dense tasks publish on results/<task> too (sensor_msgs/Image mono8 class ids for
# segmentation, sensor_msgs/Image 32FC1 metres for depth, mtl_split/Detection2DArray for
# detection), with their class names latched beside them and, where vision_msgs imports,
# vision_msgs/Detection2DArray on the second name.
LABEL_INFO = "label_info"
VISION_MSGS = "vision_msgs"


def label_info_for(features_topic: str, task: str) -> str:
    return f"{task_result_for(features_topic, task)}/{LABEL_INFO}"


def vision_msgs_for(features_topic: str, task: str) -> str:
    return f"{task_result_for(features_topic, task)}/{VISION_MSGS}"
