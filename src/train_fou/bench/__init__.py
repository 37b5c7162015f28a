"""The measurements behind `train-fou bench`; each returns a frozen dataclass, only the CLI prints.

- harness: frames, ready-serialized images, answer timing, percentiles;
- graph: the ROS graph of a run (the bench's node, the nodes under test, one executor);
- detector: bare inference against detector_node over DDS, frame by frame, and the soak;
- e2e: image stamp -> brake bytes written to the sim hub, through the whole pipeline;
- compare: another model call by call, and ultralytics predict on the same frames;
- ultralytics_worker: the program run in the interpreter that has ultralytics;
- yolo_ros_style: the peer node run there too (ultralytics predict in an rclpy callback).

Nothing here imports train_fou.cli. This package's `__init__`, ultralytics_worker and
yolo_ros_style import nothing of ROS at load time: they run as `python -m train_fou.bench.<name>`
in the training venv, which has no rclpy (yolo_ros_style borrows the runtime venv's, at run time).
"""
