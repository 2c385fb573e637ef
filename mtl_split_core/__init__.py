"""ROS-free core of mtl_split: wire codec, model bundle, inference backends, images.

Edge, server, training and tools all import this package; nothing in it imports rclpy or
torch, so a robot runs it with numpy + onnxruntime alone.
"""
