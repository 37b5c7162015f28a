"""`train-fou bench`: the detector's cost, measured four ways on the same model and frames (train_fou.bench).

- raw_session_ms: the bare inference call (backend.infer on a pre-processed tensor);
- node_ms: detector_node over DDS, image message published -> detections message received;
- e2e_ms: image stamp -> brake bytes written to the sim hub, through detector_node,
  speed_controller and hub_node, one sample per confirmed stop sign;
  image_to_command_ms: image stamp -> the controller's first command on it;
- ultralytics_ms: ultralytics predict on the same model and frames, here or in another
  interpreter (--ultralytics-python, e.g. the training venv);
- yolo_ros_style_ms: a node shaped like mgonzs13/yolo_ros (ultralytics predict in the
  subscription callback) in that interpreter, on the node's frames over the same DDS path,
  each frame right after the node (node_over_yolo_ros_style);
- node_path_ms_p50: where node_ms goes, stage by stage (the node in the bench process);
- echo_node_ms: an rclpy node that answers each image at once with an empty detections message
  (no model), each node frame right after it: the DDS and rclpy floor of any node here;
  node_overhead_above_echo_ms_p50 = node - raw - echo, paired per frame;
- baseline_raw_ms (--baseline M): another model's bare inference, call by call beside the model's own.
Raw, node (and the peer) alternate frame by frame. A null figure's cause is in `reasons`.
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import sys

from train_fou.cli.run_cmd import add_executor_argument

HELP = 'benchmark the detector: bare inference, node over DDS, whole pipeline, ultralytics'


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--model', default=None,
                        help='ONNX model or TensorRT engine (default: share/train_fou/models/signs.onnx)')
    parser.add_argument('--frames', type=int, default=200, help='measured frames per method (default: %(default)s)')
    parser.add_argument('--warmup', type=int, default=10, help='unmeasured frames first (default: %(default)s)')
    parser.add_argument('--backend', default='auto', help='auto, tensorrt, onnxruntime-cuda or onnxruntime-cpu')
    parser.add_argument('--size', default='640x480', help='camera frame WIDTHxHEIGHT (default: %(default)s)')
    parser.add_argument('--e2e-rate', type=float, default=30.0,
                        help='highest camera frame rate of the pipeline run (default: %(default)s Hz)')
    parser.add_argument('--e2e-samples', type=int, default=100,
                        help='timed stop-sign cycles of the pipeline run (default: %(default)s)')
    parser.add_argument('--ultralytics-python', default=os.environ.get('TRAIN_FOU_ULTRALYTICS_PYTHON', ''),
                        metavar='PYTHON', help='interpreter with ultralytics when this one lacks it, for the '
                                               'ultralytics and yolo_ros-style runs '
                                               '(default: $TRAIN_FOU_ULTRALYTICS_PYTHON)')
    parser.add_argument('--soak-s', type=float, default=0.0, metavar='S',
                        help='also stream frames to the node for S seconds and report latency over time')
    parser.add_argument('--soak-fps', type=float, default=30.0,
                        help='frame rate of the soak run (default: %(default)s)')
    parser.add_argument('--node-process', action='store_true',
                        help='run detector_node in its own process (`train-fou run`, as ros2 launch does on the '
                             'Jetson) instead of in the bench process')
    parser.add_argument('--baseline', default=None, metavar='MODEL',
                        help='another ONNX model whose bare inference is timed beside the model\'s own, '
                             'call by call (raw_over_baseline in the results)')
    parser.add_argument('--skip', default='',
                        help='comma-separated parts to skip: node, e2e, ultralytics, yolo_ros_style')
    parser.add_argument('--json', action='store_true', help='print one JSON object')
    add_executor_argument(parser)


def run(args: argparse.Namespace) -> int:
    from train_fou.bench.compare import measure_baseline, measure_ultralytics
    from train_fou.bench.detector import BenchOptions, measure_detector
    from train_fou.bench.harness import make_frames
    from train_fou.cli import CliError
    from train_fou.cli.detect_cmd import open_cli_detector

    try:
        width, height = (int(v) for v in args.size.lower().split('x'))
    except ValueError:
        raise CliError(f'--size {args.size!r}: expected WIDTHxHEIGHT, e.g. 640x480') from None
    if args.frames < 1 or args.warmup < 0 or args.e2e_samples < 1 or not args.e2e_rate > 0:
        raise CliError('--frames and --e2e-samples must be >= 1, --warmup >= 0 and --e2e-rate > 0')
    skip = frozenset(filter(None, args.skip.split(',')))
    detector, choice = open_cli_detector(args.model, args.backend)
    model_path = pathlib.Path(args.model) if args.model else None
    if model_path is None:
        from train_fou.paths import default_model
        model_path = default_model()
    print(f'backend: {choice.reason}', file=sys.stderr)
    # The node, the peer and ultralytics run the file the bare session runs (`auto` may have chosen
    # <stem>.int8.onnx on the CPU, and the node is given the backend by name, which runs the file named).
    run_path = pathlib.Path(choice.model) if choice.model is not None else model_path
    frames, source = make_frames(min(args.frames, 50), width, height)
    frames = [frames[i % len(frames)] for i in range(args.frames)]
    result: dict = {'raw_session_ms_p50': None, 'node_ms_p50': None, 'e2e_ms_p50': None, 'e2e_ms_p99': None,
                    'ultralytics_ms_p50': None, 'yolo_ros_style_ms_p50': None, 'backend': choice.backend.name,
                    'imgsz': list(detector.metadata.imgsz), 'model': str(model_path), 'model_run': str(run_path),
                    'precision': detector.precision, 'frames': args.frames,
                    'frame_size': [width, height], 'frames_source': source, 'reasons': {}}
    options = BenchOptions(warmup=args.warmup, executor=args.executor, node_process=args.node_process, skip=skip,
                           soak_s=args.soak_s, soak_fps=args.soak_fps, e2e_rate_hz=args.e2e_rate,
                           e2e_samples=args.e2e_samples, peer_python=args.ultralytics_python)
    try:
        if args.baseline:
            baseline, _ = open_cli_detector(args.baseline, choice.backend.name)
            try:
                compared = measure_baseline(detector, baseline, frames, args.warmup)
            finally:
                baseline.close()
            result['baseline'] = str(args.baseline)
            result.update(compared.fields())
        measured = measure_detector(detector, run_path, frames, options)
    finally:
        detector.close()
    result.update(measured.fields())
    result['reasons'].update(measured.reasons())
    if 'ultralytics' in skip:
        result['reasons']['ultralytics'] = 'skipped'
    else:
        foreign = measure_ultralytics(run_path, frames[:min(len(frames), 100)], detector, args.warmup,
                                      args.ultralytics_python)
        result.update(foreign.fields())
        result['reasons'].update(foreign.reasons())
    if args.json:
        print(json.dumps(result), flush=True)
    else:
        for key, value in result.items():
            print(f'{key:>22}: {value}')
    return 0
