#!/usr/bin/env python3
"""Make the README's pictures in docs/ (run with .venv/bin/python after `make setup`).

* docs/annotated.png: a `signs/annotated` frame, as rqt_image_view shows it:
  the demo bag replayed through the real detector node, the frame with the
  most detections kept.
* docs/sim_report.png and docs/sim_run.gif: `train-fou sim --runs 1 --report`.

    .venv/bin/python tools/make_docs_images.py [--model models/signs.onnx]
"""
from __future__ import annotations

import argparse
import json
import pathlib
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]


def annotated_frame(bag: pathlib.Path, model: str, out: pathlib.Path, timeout_s: float = 120.0) -> int:
    """Replay `bag` at rate 0 with a subscriber on signs/annotated; save the richest frame."""
    import cv2
    import rclpy
    from rclpy.context import Context
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.node import Node
    from sensor_msgs.msg import Image

    from train_fou import pipelines, qos
    from train_fou.msg import SignDetectionArray
    from train_fou.nodes.pipeline_monitor import bgr_of
    from train_fou.nodes.runner import create_nodes, destroy_nodes

    context = Context()
    rclpy.init(context=context, domain_id=231)
    params = pipelines.node_parameters('replay', {'bag': str(bag), 'rate': '0', 'model': model})
    params['detector_node']['input_transport'] = 'compressed'
    watcher = Node('docs_watcher', context=context)
    counts: dict[tuple[int, int], int] = {}
    best: dict = {}

    def on_detections(msg):
        counts[(msg.header.stamp.sec, msg.header.stamp.nanosec)] = len(msg.detections)

    def on_annotated(msg):
        key = (msg.header.stamp.sec, msg.header.stamp.nanosec)
        n = counts.get(key, 0)
        if n >= best.get('n', 0):
            best.update(n=n, image=bgr_of(msg).copy())

    watcher.create_subscription(SignDetectionArray, 'signs/detections', on_detections, qos.RELIABLE)
    watcher.create_subscription(Image, 'signs/annotated', on_annotated, qos.SENSOR)
    nodes = create_nodes(['detector_node', 'bag_player'], params, context=context)
    executor = SingleThreadedExecutor(context=context)
    for node in [watcher, *nodes]:
        executor.add_node(node)
    deadline = time.monotonic() + timeout_s
    try:
        while not nodes[-1].finished and time.monotonic() < deadline:
            executor.spin_once(timeout_sec=0.1)
        for _ in range(10):
            executor.spin_once(timeout_sec=0.05)
    finally:
        destroy_nodes([watcher, *nodes])
        executor.shutdown()
        rclpy.shutdown(context=context)
    if 'image' not in best:
        raise SystemExit('no signs/annotated frame received')
    cv2.imwrite(str(out), best['image'])
    return best['n']


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--model', default='', help='detector model (default: the shipped one)')
    parser.add_argument('--seed', type=int, default=1)
    parser.add_argument('--run', type=int, default=0, help='run index of the campaign (train-fou sim --first-run)')
    args = parser.parse_args(argv)
    docs = ROOT / 'docs'
    docs.mkdir(exist_ok=True)
    n = annotated_frame(ROOT / 'bags' / 'limits_and_stop.mcap', args.model, docs / 'annotated.png')
    print(f'docs/annotated.png: {n} detection(s)')
    with tempfile.TemporaryDirectory() as tmp:
        command = [str(pathlib.Path(sys.executable).parent / 'train-fou'), 'sim', '--runs', '1', '--seed',
                   str(args.seed), '--first-run', str(args.run), '--report', tmp, '--json']
        if args.model:
            command += ['--model', args.model]
        done = subprocess.run(command, capture_output=True, text=True)
        result = json.loads(done.stdout.strip().splitlines()[-1])['runs'][0]
        shutil.copy(pathlib.Path(tmp) / f'run_{args.run:03d}.png', docs / 'sim_report.png')
        shutil.copy(pathlib.Path(tmp) / f'run_{args.run:03d}.gif', docs / 'sim_run.gif')
    print(f'docs/sim_report.png, docs/sim_run.gif: {result["end_reason"]}, margin {result["margin_m"]} m')
    return 0


if __name__ == '__main__':
    sys.exit(main())
