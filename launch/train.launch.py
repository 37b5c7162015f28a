"""On the train: USB camera -> detector -> speed controller -> LEGO hub over BLE.

    ros2 launch train_fou train.launch.py hub_address:=90:84:2B:AA:BB:CC model:=/path/signs.engine

Common arguments: namespace:=, params_file:= (applied after config/<node>.yaml),
model:=. The node list and parameter files come from train_fou.pipelines, the
same table the composition runner (train-fou run/replay/sim) reads.
"""
PIPELINE = 'train'


def generate_launch_description():
    from train_fou.pipelines import launch_description
    return launch_description(PIPELINE)
