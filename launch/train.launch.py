"""On the train: USB camera -> detector -> speed controller -> LEGO hub over BLE.

    ros2 launch train_fou train.launch.py hub_address:=90:84:2B:AA:BB:CC model:=/path/signs.engine

Common arguments: namespace:=, params_file:= (applied after config/<node>.yaml),
model:=. The node list and parameter files come from train_fou.pipelines, the
same table the composition runner (train-fou run/replay/sim) reads.

Monitoring (docs/monitoring.md), on by default here: the Foxglove live view on
ws://<train>:8765 (foxglove_port:=PORT, or off; the camera is subscribed only
while a viewer watches) and Prometheus metrics on http://<train>:9464/metrics
(metrics_port:=PORT, or off).
"""
PIPELINE = 'train'


def generate_launch_description():
    from train_fou.pipelines import launch_description
    return launch_description(PIPELINE)
