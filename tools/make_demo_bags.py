#!/usr/bin/env python3
"""Make the demo bags in bags/ with the virtual track (run with .venv/bin/python).

Each bag is one drive of a fixed scenario (config/scenarios/demo_*.yaml) by the
speed policy on the signs' true boxes (train_fou.sim.drive), recorded like a
real camera: JPEG frames on /camera/image_raw/compressed at 10 fps, plus
/camera/camera_info and the true boxes on /sim/ground_truth. The bag's clock is
the simulated time, so replaying at rate 1 shows the drive at its real pace.

    .venv/bin/python tools/make_demo_bags.py [--out bags] [--quality 70]
"""
from __future__ import annotations

import argparse
import pathlib
import sys

#: bag file -> (scenario, seed)
DEMO_BAGS = {
    'cliff_danger.mcap': ('demo_cliff.yaml', 3),
    'limits_and_stop.mcap': ('demo_stop.yaml', 1),
}


def make_bag(scenario_path: pathlib.Path, seed: int, out: pathlib.Path, quality: int) -> dict:
    import cv2
    from rosbags.typesys import Stores, get_typestore  # noqa: F401  (typestore via BagRecorder)

    from train_fou.paths import config_path
    from train_fou.policy import load_policy
    from train_fou.record import BagRecorder
    from train_fou.render.signs import CLASS_NAMES
    from train_fou.sim.drive import drive
    from train_fou.sim.episode import Episode
    from train_fou.sim.scenario import load_scenario
    from train_fou.sim.track import label_of

    world = load_scenario(scenario_path).sample(seed, 0)
    episode = Episode(world)
    bag = BagRecorder(out)
    store = bag.typestore
    T = store.types
    image_type, info_type = 'sensor_msgs/msg/CompressedImage', 'sensor_msgs/msg/CameraInfo'
    truth_type = 'train_fou/msg/SignDetectionArray'
    topics = {'/camera/image_raw/compressed': image_type, '/camera/camera_info': info_type,
              '/sim/ground_truth': truth_type}
    for topic, msgtype in topics.items():
        bag.add_topic(topic, msgtype)
    cam = world.camera
    f, (cx, cy) = cam.focal_px, cam.centre

    def on_frame(ep, image, truths, _state):
        stamp = T['builtin_interfaces/msg/Time'](sec=ep.stamp_ns // 10**9, nanosec=ep.stamp_ns % 10**9)
        header = T['std_msgs/msg/Header'](stamp=stamp, frame_id='camera')
        import numpy as np
        jpeg = cv2.imencode('.jpg', image, [cv2.IMWRITE_JPEG_QUALITY, quality])[1]
        image_msg = T[image_type](header=header, format='jpeg', data=np.frombuffer(jpeg.tobytes(), np.uint8))
        info = T[info_type](header=header, height=cam.height, width=cam.width, distortion_model='plumb_bob',
                            d=np.zeros(5), k=np.array([f, 0, cx, 0, f, cy, 0, 0, 1], float),
                            r=np.eye(3).ravel(), p=np.array([f, 0, cx, 0, 0, f, cy, 0, 0, 0, 1, 0], float),
                            binning_x=0, binning_y=0,
                            roi=T['sensor_msgs/msg/RegionOfInterest'](x_offset=0, y_offset=0, height=0, width=0,
                                                                      do_rectify=False))
        detections = [T['train_fou/msg/SignDetection'](class_id=CLASS_NAMES.index(label_of(t.kind)),
                                                       label=label_of(t.kind), score=1.0, x_min=t.box[0],
                                                       y_min=t.box[1], width=t.box[2], height=t.box[3])
                      for t in truths if label_of(t.kind)]
        truth = T[truth_type](header=header, detections=detections, image_width=cam.width,
                              image_height=cam.height, backend='sim', preprocess_ms=0.0, inference_ms=0.0,
                              postprocess_ms=0.0, frames_dropped=0)
        for topic, msg in (('/camera/image_raw/compressed', image_msg), ('/camera/camera_info', info),
                           ('/sim/ground_truth', truth)):
            bag.write(topic, ep.stamp_ns, bytes(store.serialize_cdr(msg, topics[topic])))

    config = load_policy(config_path('policy.yaml'))
    try:
        drive(episode, config, on_frame=on_frame, render=True)
    finally:
        bag.close()
    result = episode.result().as_dict()
    return {'bag': str(out), 'frames': result['frames'], 'seconds': result['time_s'],
            'end': result['end_reason'], 'margin_m': result['margin_m'], 'ok': result['ok'],
            'signs': [s['kind'] for s in result['world']['signs']], 'mbytes': round(out.stat().st_size / 2**20, 2)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--out', type=pathlib.Path, default=pathlib.Path('bags'))
    parser.add_argument('--quality', type=int, default=60, help='JPEG quality')
    parser.add_argument('--force', action='store_true', help='replace existing bags')
    args = parser.parse_args(argv)
    scenarios = pathlib.Path(__file__).resolve().parents[1] / 'config' / 'scenarios'
    args.out.mkdir(parents=True, exist_ok=True)
    for name, (scenario, seed) in DEMO_BAGS.items():
        out = args.out / name
        if out.exists():
            if not args.force:
                print(f'{out}: exists (use --force to replace)', file=sys.stderr)
                continue
            out.unlink()
        print(make_bag(scenarios / scenario, seed, out, args.quality), flush=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
