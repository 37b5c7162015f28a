"""`train-fou replay BAG`: the whole pipeline with a recorded bag as the camera (SPEC §7).

Starts bag_player, detector, speed controller and hub (sim by default) in one
process, prints one line per controller state change as it happens, and a
JSON summary as the last line. `--record OUT.mcap` writes every pipeline topic
to an MCAP bag; `--report DIR` writes a plot, an annotated GIF and summary.json.
With `--hub ble` the bag starts only once the hub is connected and its motor
ready (hub_name or hub_address from --params; one line when it does not come).
SIGINT, SIGTERM, SIGHUP and any error stop the pipeline with the hub braked; the
exit code is 1 when the hub did not acknowledge its last brake.
"""
from __future__ import annotations

import argparse
import json
import math
import pathlib
import sys
import time

from train_fou.cli.run_cmd import (add_domain_argument, add_executor_argument, add_monitoring_arguments,
                                   monitoring_arguments)
from train_fou.replay_summary import state_line, summarize, timeline_from_replay

HELP = 'run the whole pipeline with a bag as the camera; state changes as lines, JSON summary last'

#: After the last frame, wait at most this long (wall) for the pipeline's last answers.
DRAIN_S = 2.0
#: Highest --rate (the bag player's parameter range).
MAX_RATE = 100.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('bag', type=pathlib.Path, help='rosbag2 directory, .mcap or .db3 file with images')
    parser.add_argument('--topic', default='', help='image topic in the bag (default: its first image topic)')
    parser.add_argument('--params', action='append', type=pathlib.Path, default=[], metavar='YAML',
                        help='extra ROS 2 parameter file for the pipeline nodes; repeatable')
    parser.add_argument('--rate', type=float, default=1.0,
                        help='playback rate (1 = as recorded; 0 = each frame waits for the detector)')
    parser.add_argument('--record', type=pathlib.Path, default=None, metavar='OUT.mcap',
                        help='record every pipeline topic into this MCAP bag (.mcap: one file, else a directory)')
    parser.add_argument('--report', type=pathlib.Path, default=None, metavar='DIR',
                        help='write a plot, an annotated GIF and summary.json into DIR')
    parser.add_argument('--hub', choices=('sim', 'ble'), default='sim', help='hub backend (default: %(default)s)')
    parser.add_argument('--model', default='', help='detector model (default: models/signs.onnx)')
    add_executor_argument(parser)
    add_domain_argument(parser)
    add_monitoring_arguments(parser)


def record_topics(transport: str):
    from diagnostic_msgs.msg import DiagnosticArray
    from sensor_msgs.msg import CompressedImage, Image

    from train_fou import qos
    from train_fou.msg import HubState, SignDetectionArray, SpeedCommand

    camera = (('camera/image_raw', Image, qos.SENSOR) if transport == 'raw'
              else ('camera/image_raw/compressed', CompressedImage, qos.SENSOR))
    return [camera,
            ('signs/detections', SignDetectionArray, qos.RELIABLE),
            ('train/speed_command', SpeedCommand, qos.RELIABLE),
            ('hub/state', HubState, qos.LATCHED),
            ('/diagnostics', DiagnosticArray, qos.DIAGNOSTICS)]


def run(args: argparse.Namespace) -> int:
    import rclpy
    from rclpy.context import Context
    from rclpy.signals import SignalHandlerOptions

    from train_fou import pipelines
    from train_fou.cli import CliError
    from train_fou.executors import make_executor
    from train_fou.nodes.pipeline_monitor import PipelineMonitor
    from train_fou.nodes.runner import create_nodes, destroy_nodes
    from train_fou.record import BagRecorder, RecordError
    from train_fou.stopping import StopSignals
    from train_fou.vision.errors import BagError
    from train_fou.vision.image_bag import ImageBag

    if not (math.isfinite(args.rate) and 0 <= args.rate <= MAX_RATE):
        raise CliError(f'--rate {args.rate:g}: expected a number from 0 to {MAX_RATE:g} '
                       '(1: as recorded, 0: each frame waits for the detector)')
    try:
        with ImageBag(args.bag, args.topic) as bag:  # a bad bag: one clear error before any node starts
            frames_in_bag = bag.message_count
    except BagError as err:
        raise CliError(str(err)) from err
    launch_args = {'bag': str(args.bag), 'topic': args.topic, 'rate': str(args.rate), 'model': args.model,
                   **monitoring_arguments(args)}
    try:
        params = pipelines.node_parameters('replay', launch_args, args.params)
    except pipelines.PipelineError as err:
        raise CliError(str(err)) from err
    params['hub_node']['backend'] = args.hub
    domain = pipelines.domain_id(params, args.domain_id)
    hub = params['hub_node']
    if args.hub == 'ble' and not (hub.get('hub_name') or hub.get('hub_address')):
        raise CliError('--hub ble needs the hub to drive: set hub_name (or hub_address) for hub_node in a --params '
                       'file (`train-fou hub scan` lists the hubs in range)')
    transport = params['detector_node']['input_transport']  # the bag decided (pipelines.bag_transport)
    names = list(pipelines.pipeline_nodes('replay', launch_args))

    recorder = None
    if args.record:
        try:
            recorder = BagRecorder(args.record)
        except RecordError as err:
            raise CliError(str(err)) from err

    signals = StopSignals().install()
    stop = signals.event
    context = Context()
    rclpy.init(context=context, domain_id=domain, signal_handler_options=SignalHandlerOptions.NO)
    executor = make_executor(args.executor, context=context)
    nodes: list = []
    changes = []
    started = time.monotonic()
    first_stamp = 0
    try:
        # Observers first, so that nothing the pipeline says is missed.
        monitor = PipelineMonitor(camera_transport=transport, keep_images_every=2 if args.report else 0,
                                  context=context)
        nodes.append(monitor)
        if recorder is not None:
            from train_fou.nodes.recorder import Recorder
            nodes.append(Recorder(recorder, record_topics(transport), context=context))
        # Pipeline nodes, the bag player last: it starts playing once the detector listens.
        nodes.extend(create_nodes([n for n in names if n != 'bag_player'], params, context=context))
        hub_node = next(n for n in nodes if n.get_name() == 'hub_node')
        for node in nodes:
            executor.add_node(node)
        if args.hub == 'ble':
            _wait_for_hub(executor, hub_node, stop, hub_node.get_parameter('scan_timeout_s').value + 30.0)
        player = create_nodes(['bag_player'], params, context=context)[0]
        nodes.append(player)
        executor.add_node(player)
        if player.error:
            raise CliError(player.error)
        drained_at = None
        while not stop.is_set():
            executor.spin_once(timeout_sec=0.05)
            while not monitor.changes.empty():
                change = monitor.changes.get()
                if not first_stamp:
                    frames = monitor.snapshot().frames
                    first_stamp = frames[0].stamp_ns if frames else change.source_stamp_ns
                changes.append(change)
                print(state_line(change, first_stamp), flush=True)
            if player.finished:
                drained_at = drained_at or time.monotonic()
                processed = len(monitor.observed.frames)
                if processed >= player.published or time.monotonic() - drained_at > DRAIN_S:
                    # one more controller period, so the answer to the last frame is in
                    end = time.monotonic() + 0.2
                    while time.monotonic() < end:
                        executor.spin_once(timeout_sec=0.05)
                    break
    finally:
        destroy_nodes(nodes)  # the hub brakes first (newest last) and waits for the acknowledgement
        executor.shutdown()
        if context.ok():
            rclpy.shutdown(context=context)
        signals.restore()
        if recorder is not None:
            recorder.close()
    observed = monitor.snapshot()
    summary = summarize(args.bag, player, observed, changes, time.monotonic() - started)
    summary['frames_in_bag'] = frames_in_bag
    summary['hub'] = {'backend': args.hub, 'connections': hub_node.session.connections,
                      'brake_acknowledged': hub_node.brake_acknowledged}
    if recorder is not None:
        summary['record'] = {'path': str(args.record), 'messages': dict(recorder.counts)}
    if 'foxglove_bridge' in names:
        from train_fou.nodes.foxglove_bridge import FoxgloveBridge
        bridge = next(n for n in nodes if isinstance(n, FoxgloveBridge))
        summary['foxglove'] = {'port': bridge.port, **bridge.stats}
    if args.report:
        from train_fou.report import write_report
        files = write_report(timeline_from_replay(observed, f'replay of {args.bag.name}'), args.report, summary,
                             stem='replay')
        summary['report'] = files
    print(json.dumps(summary), flush=True)
    if not hub_node.brake_acknowledged:
        print('train-fou replay: the hub did not acknowledge the last brake', file=sys.stderr)
        return 1
    if stop.is_set():
        return signals.exit_code(130)
    return 0 if not player.error else 1


def _wait_for_hub(executor, hub_node, stop, timeout_s: float) -> None:
    """Spin until the hub's motor is ready; CliError at the first failed attempt (the hub's own error line)."""
    from train_fou.cli import CliError
    deadline = time.monotonic() + timeout_s
    while not stop.is_set():
        status = hub_node.session.status
        if status.ready:
            return
        if status.last_error and not status.connected:
            raise CliError(f'hub not ready: {status.last_error}')
        if time.monotonic() > deadline:
            raise CliError(f'hub not ready within {timeout_s:g} s: {status.last_error or "no answer"}')
        executor.spin_once(timeout_sec=0.05)

