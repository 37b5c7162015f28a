"""What a replay observed, as lines and a JSON summary (`train-fou replay`); no ROS imports.

`summarize` accounts for every published frame (processed, dropped in the node, lost before it)
and keeps only plausible command latencies: a bag recorded long ago carries old stamps.
"""
from __future__ import annotations

#: latencies above this (image stamp -> hub write) come from old stamps, not from the pipeline
MAX_PLAUSIBLE_LATENCY_MS = 10_000.0
STATE_NAMES = {0: 'CRUISE', 1: 'LIMIT', 2: 'STOP_HOLD', 3: 'DANGER_LATCHED', 4: 'FAILSAFE'}


def state_line(change, first_stamp_ns: int) -> str:
    t = (change.source_stamp_ns - first_stamp_ns) / 1e9 if first_stamp_ns else 0.0
    before = STATE_NAMES.get(change.before, str(change.before)) if change.before is not None else 'start'
    after = STATE_NAMES.get(change.after, str(change.after))
    power = 'brake' if change.brake else f'power {change.power}'
    return f'[{t:7.2f} s] {before} -> {after} ({power}): {change.reason}'


def summarize(bag_path, player, observed, changes, wall_s: float) -> dict:
    import numpy as np

    frames = observed.frames
    labels: dict[str, int] = {}
    for record in frames:
        for label in {d[0] for d in record.detections}:
            labels[label] = labels.get(label, 0) + 1
    # The hub measures image stamp -> hub write on its clock: a bag recorded long ago (old stamps)
    # gives no meaningful latency, so only plausible values count.
    plausible = [v for v in observed.latencies_ms if 0.0 <= v <= MAX_PLAUSIBLE_LATENCY_MS]
    latencies = np.asarray(plausible) if plausible else None
    inference = np.asarray([f.inference_ms for f in frames]) if frames else None
    final = changes[-1].after if changes else None
    dropped = frames[-1].frames_dropped if frames else 0
    return {
        'bag': str(bag_path), 'frames_published': player.published, 'frames_processed': len(frames),
        'frames_dropped': dropped,
        # replaced in the keep-last-1 subscription queue before the node's callback took them
        # (a busy machine), so the node never saw them: every published frame is accounted for
        'frames_lost_before_node': max(0, player.published - len(frames) - dropped),
        'frames_with_detections': labels,
        'state_changes': len(changes),
        'states': [STATE_NAMES.get(c.after, str(c.after)) for c in changes],
        'final_state': STATE_NAMES.get(final) if final is not None else None,
        'speed_commands': observed.commands,
        'inference_ms_p50': round(float(np.percentile(inference, 50)), 2) if inference is not None else None,
        'command_latency_ms_p50': round(float(np.percentile(latencies, 50)), 2) if latencies is not None else None,
        'command_latency_ms_p99': round(float(np.percentile(latencies, 99)), 2) if latencies is not None else None,
        'bag_error': player.error or None,
        'wall_s': round(wall_s, 2),
    }


def timeline_from_replay(observed, title: str):
    from train_fou.report import Timeline

    timeline = Timeline(title=title)
    first = observed.frames[0].stamp_ns if observed.frames else 0
    for record in observed.frames:
        i = timeline.add((record.stamp_ns - first) / 1e9,
                         None if record.command_power is None else (record.command_power if not record.brake else 0),
                         None if record.applied_power is None else (127 if record.brake and record.applied_power == 0
                                                                    else record.applied_power),
                         record.state, record.detections)
        image = observed.images.get(record.stamp_ns)
        if image is not None:
            timeline.frames.append((i, image[0], image[1]))
    return timeline
