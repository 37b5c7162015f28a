"""A recorded bag as the camera, the whole pipeline, the simulated hub.

    ros2 launch train_fou replay.launch.py bag:=/path/to/bag.mcap rate:=1.0

Common arguments: namespace:=, params_file:= (applied after config/<node>.yaml),
model:=. The node list and parameter files come from train_fou.pipelines, the
same table the composition runner (train-fou run/replay/sim) reads.

Monitoring (docs/monitoring.md), off by default: foxglove_port:=8765 adds the
Foxglove live view, metrics_port:=9464 the Prometheus metrics.
"""
PIPELINE = 'replay'


def generate_launch_description():
    from train_fou.pipelines import launch_description
    return launch_description(PIPELINE)
