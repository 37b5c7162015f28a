"""train_fou: keeps a driverless LEGO train on the rails.

Pure logic lives in subpackages that never import rclpy (vision, policy,
lwp3, hub, sim); ROS plumbing lives in `train_fou.nodes`; the CLI in
`train_fou.cli`. The rosidl interfaces are generated into `train_fou.msg`
at build time (see CMakeLists.txt).
"""

__version__ = '0.1.0'
