"""A recorded bag as the camera, the whole pipeline, the simulated hub.

    ros2 launch train_fou replay.launch.py bag:=/path/to/bag.mcap rate:=1.0

Common arguments: namespace:=, params_file:= (applied after config/<node>.yaml),
model:=. The node list and parameter files come from train_fou.pipelines, the
same table the composition runner (train-fou run/replay/sim) reads.
"""
PIPELINE = 'replay'


def generate_launch_description():
    from train_fou.pipelines import launch_description
    return launch_description(PIPELINE)
