"""`ros2 launch mtl_split viz.launch.py bundle:=<dir> [camera_topic:=...] [namespace:=...]`:
the visualization node alone (e.g. on an operator's machine), publishing camera frames with the
results drawn on them on <namespace>/mtl_split/annotated. `pipeline.launch.py viz:=true` and
`edge.launch.py viz:=true` start it beside the edge. Without a ROS install: `mtl-split launch
viz --bundle <dir> ...`."""
from mtl_split_ros.ros2_launch import describe


def generate_launch_description():
    return describe("viz")
