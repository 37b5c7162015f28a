"""`train-fou sim`: closed-loop runs of the whole pipeline on the virtual track (SPEC §7).

Each run starts a fresh set of nodes (track_sim, detector, controller, sim hub)
in this process, on simulated time in lockstep: the track only moves when the
pipeline has answered the previous frame, so the figures are the same on a
fast and a slow machine. Output: one line per run and the totals, or with
`--json` a single JSON document (`runs`: per-run results, `totals`).
"""
from __future__ import annotations

import argparse
import json
import pathlib
import sys
import time
from collections import Counter

from train_fou.cli.run_cmd import add_executor_argument, add_monitoring_arguments, monitoring_arguments
from train_fou.executors import executor_kind

HELP = 'closed-loop runs on the virtual track (cliff, signs, train dynamics); JSON results, optional report'

#: A run that has not ended after this much wall time per simulated second is abandoned.
WALL_S_PER_SIM_S = 20.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--scenario', type=pathlib.Path, default=None,
                        help='scenario YAML (default: config/scenarios/default.yaml)')
    parser.add_argument('--runs', type=int, default=1, help='number of runs (default: %(default)s)')
    parser.add_argument('--seed', type=int, default=0, help='campaign seed; run i draws from (seed, i)')
    parser.add_argument('--first-run', type=int, default=0, help='index of the first run (to repeat one run)')
    parser.add_argument('--report', type=pathlib.Path, default=None, metavar='DIR',
                        help='write summary.json, a plot per run and an annotated GIF of the first and failed runs')
    parser.add_argument('--json', action='store_true', help='print one JSON document instead of lines')
    parser.add_argument('--params', action='append', type=pathlib.Path, default=[], metavar='YAML',
                        help='extra ROS 2 parameter file for the pipeline nodes; repeatable')
    parser.add_argument('--model', default='', help='detector model (default: models/signs.onnx)')
    add_executor_argument(parser)
    parser.add_argument('--domain-id', type=int, default=None, metavar='N',
                        help='ROS domain of the runs (default: a random private one, so that no other ROS graph '
                             'on the network can disturb a campaign; give yours to watch it in rqt/RViz)')
    parser.add_argument('--oracle', action='store_true',
                        help='no detector: the true sign boxes are the detections (tests policy and dynamics)')
    add_monitoring_arguments(parser)


def private_domain_id() -> int:
    """A random ROS domain outside the usual 0-101 (valid up to 232 with Fast DDS's port mapping)."""
    import random
    return random.SystemRandom().randint(120, 232)


def timeline_from_sim(sim, title: str):
    """The report timeline of a finished track_sim node."""
    from train_fou.report import Timeline
    from train_fou.sim.track import label_of

    timeline = Timeline(title=title)
    for entry in sim.log:
        i = timeline.add(entry.t_s, entry.command_power if entry.state >= 0 else None, entry.applied_power,
                         entry.state if entry.state >= 0 else None, entry.detections,
                         position_m=entry.position_m, speed_mps=entry.speed_mps)
        if entry.frame is not None:
            timeline.frames.append((i, entry.frame, entry.frame_scale))
    for sign in sim.world.track.signs:
        if label_of(sign.kind):
            timeline.landmarks.append((sign.at_m, sign.kind))
    timeline.landmarks.append((sim.world.track.cliff_at_m, 'cliff'))
    return timeline


def run_one(context, names, params, stop, wall_limit_s: float, kind: str | None = None, watchers=()):
    """Start the pipeline on an executor of `kind`; spin until track_sim reports its result.

    Returns (the track_sim node, the model file the detector opened: None without a detector).

    `watchers`: nodes that outlive the run (the live view, the metrics), spun with it.

    One executor thread (train_fou.executors, events by default): the nodes'
    callbacks are short (inference has its own thread, the hub its own asyncio
    loop), and in lockstep nothing runs in parallel anyway; a single thread
    halves the wall time of a run against the MultiThreadedExecutor and keeps
    the order of callbacks steadier.
    """
    from train_fou.executors import make_executor
    from train_fou.nodes.runner import create_nodes, destroy_nodes

    nodes = create_nodes(names, params, context=context)
    sim = nodes[names.index('track_sim')]
    executor = make_executor(kind, context=context)
    try:
        for node in (*nodes, *watchers):
            executor.add_node(node)
        deadline = time.monotonic() + wall_limit_s
        while not sim.done.is_set() and not stop.is_set() and time.monotonic() < deadline:
            executor.spin_once(timeout_sec=0.1)
        return sim, model_run(nodes[names.index('detector_node')]) if 'detector_node' in names else None
    finally:
        destroy_nodes(nodes)
        executor.shutdown()


def run(args: argparse.Namespace) -> int:
    import rclpy
    from rclpy.context import Context
    from rclpy.signals import SignalHandlerOptions

    from train_fou import pipelines
    from train_fou.cli import CliError
    from train_fou.sim.errors import SimError
    from train_fou.sim.metrics import totals
    from train_fou.sim.scenario import default_scenario_path, load_scenario
    from train_fou.stopping import StopSignals

    if args.runs < 1:
        raise CliError(f'--runs must be at least 1, got {args.runs}')
    scenario_path = args.scenario or default_scenario_path()
    try:
        scenario = load_scenario(scenario_path)
        scenario.sample(args.seed, args.first_run)  # a bad value: one line before any node starts
    except SimError as err:
        raise CliError(str(err)) from err
    pipeline = 'sim-oracle' if args.oracle else 'sim'
    launch_args = {'scenario': str(scenario_path), 'seed': str(args.seed), 'model': args.model,
                   **monitoring_arguments(args)}
    try:
        params = pipelines.node_parameters(pipeline, launch_args, args.params)
    except pipelines.PipelineError as err:
        raise CliError(str(err)) from err
    names = list(pipelines.pipeline(pipeline).nodes)
    # the live view and the metrics stay up across runs (a viewer stays connected, counters keep counting)
    watcher_names = [n for n in pipelines.pipeline_nodes(pipeline, launch_args) if n not in names]

    signals = StopSignals().install()  # SIGINT/SIGTERM/SIGHUP: the run's nodes stop, the hub brakes
    stop = signals.event
    domain_id = (pipelines.checked_domain_id(args.domain_id, '--domain-id') if args.domain_id is not None
                 else private_domain_id())
    context = Context()
    rclpy.init(context=context, domain_id=domain_id, signal_handler_options=SignalHandlerOptions.NO)
    started = time.monotonic()
    results: list[dict] = []
    ran: Counter[str] = Counter()  # model file the detector opened -> runs (auto may choose the INT8 copy)
    report_files: dict[str, dict] = {}
    from train_fou.nodes.runner import create_nodes, destroy_nodes
    watchers: list = []
    try:
        watchers = create_nodes(watcher_names, params, context=context)
        for index in range(args.first_run, args.first_run + args.runs):
            if stop.is_set():
                break
            world = scenario.sample(args.seed, index)
            run_params = {name: dict(values) for name, values in params.items()}
            run_params['track_sim']['run_index'] = index
            if args.report:
                run_params['track_sim']['keep_frames_every'] = 2
            t0 = time.monotonic()
            sim, ran_model = run_one(context, names, run_params, stop, WALL_S_PER_SIM_S * world.max_time_s,
                                     args.executor, watchers)
            wall_s = time.monotonic() - t0
            if sim.result is None:
                if stop.is_set():
                    break
                result = sim.episode.result().as_dict()
                result.update(end_reason='abandoned', ok=False, stopped_before_cliff=False)
            else:
                result = dict(sim.result)
            result['run'] = index
            result['wall_s'] = round(wall_s, 2)
            if ran_model is not None:
                ran[ran_model] += 1
            results.append(result)
            if args.report and (index == args.first_run or not result['ok']):
                from train_fou.report import write_report
                report_files[str(index)] = write_report(
                    timeline_from_sim(sim, f'{scenario.name} seed {args.seed} run {index}: {result["end_reason"]}, '
                                           f'margin {result["margin_m"]:.2f} m'),
                    args.report, {}, stem=f'run_{index:03d}')
            print(_run_line(result), file=sys.stderr if args.json else sys.stdout, flush=True)
            sim.log.clear()
    finally:
        destroy_nodes(watchers)
        if context.ok():
            rclpy.shutdown(context=context)
        signals.restore()
    summary_totals = totals(results)
    summary_totals['wall_s'] = round(time.monotonic() - started, 1)
    summary_totals['all_ok'] = bool(results) and all(r['ok'] for r in results) and len(results) == args.runs
    configured = params.get('detector_node', {}).get('model_path')
    document = {'scenario': scenario.name, 'seed': args.seed, 'pipeline': pipeline, 'domain_id': domain_id,
                'model': None if args.oracle else model_identity(configured, ran),
                'executor': executor_kind(args.executor),
                'runs': results,
                'totals': summary_totals}
    if args.report:
        args.report.mkdir(parents=True, exist_ok=True)
        (args.report / 'summary.json').write_text(json.dumps({**document, 'files': report_files}, indent=2) + '\n')
    if args.json:
        print(json.dumps(document), flush=True)
    else:
        print(json.dumps({'totals': summary_totals}), flush=True)
    if stop.is_set():
        return signals.exit_code(130)
    return 0 if summary_totals['all_ok'] else 1


def model_identity(configured: str | None, ran: Counter[str] | None = None) -> dict:
    """Which detector a campaign judged: the configured path, sha256 of the file, its input size, and
    `ran`: each file the detector opened (`auto` runs an INT8 copy beside it on a CPU) with its
    sha256 and how many runs used it."""
    from train_fou.paths import default_model
    from train_fou.vision.detector import file_sha256
    path = pathlib.Path(configured) if configured else default_model()
    identity: dict = {'path': str(path)}
    try:
        identity['sha256'] = file_sha256(path)
        meta = json.loads(path.with_suffix('.json').read_text())
        identity['imgsz'] = meta.get('imgsz')
    except (OSError, ValueError):  # a results file must still be written
        pass
    if ran is not None:
        identity['ran'] = [{'path': file, 'sha256': _sha256_or_none(file), 'runs': runs} for file, runs in ran.items()]
    return identity


def _sha256_or_none(path: str) -> str | None:
    from train_fou.vision.detector import file_sha256
    try:
        return file_sha256(path)
    except OSError:
        return None


def model_run(detector_node) -> str | None:
    """The model file a detector node opened (None before it loaded one)."""
    choice = getattr(getattr(detector_node, 'worker', None), 'choice', None)
    return str(choice.model) if choice is not None and choice.model is not None else None


def _run_line(r: dict) -> str:
    verdict = 'ok  ' if r['ok'] else 'FAIL'
    return (f'{verdict} run {r["run"]:3d}: {r["end_reason"]:<9} margin {r["margin_m"]:6.2f} m, '
            f'{r["limit_violations"]} limit violation(s), stop holds {r["stop_sign_holds"]}/{r["stop_signs"]}, '
            f'{r["time_s"]:.1f} s simulated in {r["wall_s"]:.1f} s')
