"""launch_ros front end of launch_plan: what launch/*.launch.py call.

Only the launch files import this module, and only `describe` imports launch / launch_ros
(they come with a ROS install, not with the PyPI wheels). Everything else here is plain
Python, tested without them: which arguments a launch declares and the exact keyword
arguments each launch_ros Node gets.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mtl_split_core.options import BACKENDS

from .launch_plan import LaunchArgs, plan

# name -> (default, description). An empty camera_topic/backend leaves the nodes' parameter
# to config/<node>.yaml and params_file.
ARGUMENTS = {
    "bundle": ("", "model bundle directory from `mtl-split export` (required)"),
    "camera_topic": ("", "camera topic of the edge node (default: image_topics of config/edge.yaml or "
                         "params_file, /camera/image_raw)"),
    "namespace": ("", "namespace of the nodes, e.g. /robot_a"),
    "backend": ("", f"{' | '.join(BACKENDS)} (default: the nodes' backend parameter, auto)"),
    "params_file": ("", "YAML parameters applied after config/<node>.yaml"),
    "dds_profile": ("nodes", "Fast DDS profile of the nodes: nodes (config/fastdds/nodes.xml, for camera "
                             "frames up to 12 MP), an XML file, or none (keep the environment's)"),
    "viz": ("false", "true: also start the visualization node beside the edge (camera frames with the results "
                     "drawn on them, sensor_msgs/Image on <namespace>/mtl_split/annotated)"),
}
TRUE = ("true", "1", "yes", "on")  # launch arguments are strings


def node_actions(launch: str, values: Mapping[str, str]) -> list[dict[str, Any]]:
    """Keyword arguments of one launch_ros Node per node of `launch`, from the launch
    arguments' values (strings, as LaunchConfiguration gives them)."""
    if not values.get("bundle"):
        raise ValueError("bundle:=<directory> is required (a bundle from `mtl-split export`)")
    given = {name: values.get(name, default) for name, (default, _) in ARGUMENTS.items()}
    args = LaunchArgs(**{**given, "viz": str(given["viz"]).strip().lower() in TRUE})
    return [
        dict(package="mtl_split", executable=n.spec.executable, name=n.spec.name,
             namespace=n.namespace or None, parameters=[*n.params_files, n.parameters],
             remappings=list(n.remaps), additional_env=dict(n.environment), output="screen", emulate_tty=True)
        for n in plan(launch, args)
    ]


def describe(launch: str):
    """LaunchDescription of one launch ("pipeline", "edge" or "server")."""
    from launch import LaunchDescription
    from launch.actions import DeclareLaunchArgument, OpaqueFunction
    from launch.substitutions import LaunchConfiguration
    from launch_ros.actions import Node

    def nodes(context):
        values = {name: LaunchConfiguration(name).perform(context) for name in ARGUMENTS}
        return [Node(**kwargs) for kwargs in node_actions(launch, values)]

    declared = [DeclareLaunchArgument(name, default_value=default, description=text)
                for name, (default, text) in ARGUMENTS.items()]
    return LaunchDescription([*declared, OpaqueFunction(function=nodes)])
