"""`ros2 launch mtl_split edge.launch.py bundle:=<dir> [camera_topic:=...] [namespace:=...]
[backend:=auto|tensorrt|onnxruntime] [params_file:=...] [viz:=true]`. Without a ROS install:
`mtl-split launch edge --bundle <dir> ...` starts the same nodes."""
from mtl_split_ros.ros2_launch import describe


def generate_launch_description():
    return describe("edge")
