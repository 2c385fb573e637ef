"""rclpy helpers shared by the edge and server nodes: parameters, QoS, diagnostics, lifecycle."""
