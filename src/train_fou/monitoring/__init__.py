"""Watching the train without ROS on the watching machine: pure logic of the Foxglove live view and the
Prometheus metrics. The thin nodes are `train_fou.nodes.foxglove_bridge` and
`train_fou.nodes.metrics_exporter`; nothing here imports rclpy (messages are read by their fields).
"""
