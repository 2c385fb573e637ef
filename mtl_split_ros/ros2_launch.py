"""launch_ros front end of launch_plan: what launch/*.launch.py call.

Only the launch files import this module, and this module is the only one that imports
launch / launch_ros (they come with a ROS install, not with the PyPI wheels).
"""
from __future__ import annotations

from mtl_split_core import topics

from .launch_plan import LaunchArgs, plan

ARGUMENTS = {
    "bundle": ("", "model bundle directory from `mtl-split export` (required)"),
    "camera_topic": (topics.DEFAULT_IMAGE_TOPIC, "camera topic of the edge node"),
    "namespace": ("", "namespace of the nodes, e.g. /robot_a"),
    "backend": ("auto", "auto | tensorrt | onnxruntime"),
    "params_file": ("", "YAML parameters applied after config/<node>.yaml"),
    "dds_profile": ("nodes", "Fast DDS profile of the nodes: nodes (config/fastdds/nodes.xml, for camera "
                             "frames up to 12 MP), an XML file, or none (keep the environment's)"),
}


def describe(launch: str):
    """LaunchDescription of one launch ("pipeline", "edge" or "server")."""
    from launch import LaunchDescription
    from launch.actions import DeclareLaunchArgument, OpaqueFunction
    from launch.substitutions import LaunchConfiguration
    from launch_ros.actions import Node

    def nodes(context):
        value = {name: LaunchConfiguration(name).perform(context) for name in ARGUMENTS}
        if not value["bundle"]:
            raise RuntimeError("bundle:=<directory> is required (a bundle from `mtl-split export`)")
        return [
            Node(package="mtl_split", executable=n.spec.executable, name=n.spec.name,
                 namespace=n.namespace or None, parameters=[*n.params_files, n.parameters],
                 remappings=list(n.remaps), additional_env=dict(n.environment),
                 output="screen", emulate_tty=True)
            for n in plan(launch, LaunchArgs(**value))
        ]

    declared = [DeclareLaunchArgument(name, default_value=default, description=text)
                for name, (default, text) in ARGUMENTS.items()]
    return LaunchDescription([*declared, OpaqueFunction(function=nodes)])
