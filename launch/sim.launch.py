"""The closed-loop virtual track: the simulator publishes the camera and /clock,
the detector, controller and simulated hub run on simulated time.

    ros2 launch train_fou sim.launch.py scenario:=/path/to/scenario.yaml seed:=3

Common arguments: namespace:=, params_file:= (applied after config/<node>.yaml),
model:=. The node list and parameter files come from train_fou.pipelines, the
same table the composition runner (train-fou run/replay/sim) reads.

Monitoring (docs/monitoring.md), off by default: foxglove_port:=8765 adds the
Foxglove live view, metrics_port:=9464 the Prometheus metrics.
"""
PIPELINE = 'sim'


def generate_launch_description():
    from train_fou.pipelines import launch_description
    return launch_description(PIPELINE)
