"""The simulator's side of the closed loop without ROS (train_fou.sim.closed_loop): frames logged with
the pipeline's answers, the motor driven by what the hub reports, a result when the run ends."""
from __future__ import annotations

from train_fou.sim.closed_loop import REPORT_WIDTH, ClosedLoop
from train_fou.sim.dynamics import BRAKE_POWER
from train_fou.sim.lockstep import Command, LockstepGate
from train_fou.sim.scenario import Scenario

SCENARIO = {'name': 'short', 'fps': 10, 'max_time_s': 20, 'end_still_s': 1.0, 'track': {'length_m': 2.0},
            'train': {'max_speed_mps': 1.0, 'motor_lag_s': 0.2},
            'signs': {'placed': [{'kind': 'stop', 'at_m': 1.5}], 'distractors': 0}}
FULL = Command(power=100, brake=False, state=0, reason='cruise')
BRAKED = Command(power=0, brake=True, state=3, reason='danger')


def closed_loop(**kwargs) -> ClosedLoop:
    return ClosedLoop(Scenario('short', SCENARIO).sample(3, 0), LockstepGate(), **kwargs)


def answer(loop, stamp, command, detections=(), now=0.0):
    loop.on_detections(stamp, list(detections), now)
    loop.on_command(stamp, command, now)


def test_a_frame_is_logged_with_the_answer_to_it_and_the_world_moves_on_the_command():
    loop = closed_loop()
    stamp = loop.episode.stamp_ns
    image, _truths = loop.frame(stamp, now=0.0)
    assert image.shape == (loop.world.camera.height, loop.world.camera.width, 3) and len(loop.log) == 1
    assert loop.gate.decide(0.0) == 'wait'
    loop.on_detections(stamp + 1, [('danger', 0.9, (0, 0, 9, 9))], 0.0)  # another frame's answer
    answer(loop, stamp, FULL, [('stop', 0.8, (10.0, 20.0, 30.0, 40.0))])
    assert loop.gate.decide(0.0) == 'step'
    assert loop.step() is False and loop.result is None
    entry = loop.log[0]
    assert entry.detections == [('stop', 0.8, (10.0, 20.0, 30.0, 40.0))]
    assert (entry.command_power, entry.brake, entry.reason, entry.applied_power) == (100, False, 'cruise', 100)
    assert loop.episode.stamp_ns > stamp and loop.episode.t_s > 0


def test_the_motor_follows_the_hub_and_a_braked_hub_brakes_it():
    loop = closed_loop()
    assert loop.applied_power() == 0  # nothing said yet
    loop.on_command(0, FULL, 0.0)
    assert loop.applied_power() == 100  # no hub in the loop: the command's power
    loop.on_hub(40)
    assert loop.applied_power() == 40  # the hub's, once it has spoken
    loop.on_command(0, BRAKED, 0.0)
    loop.on_hub(0)
    assert loop.applied_power() == BRAKE_POWER  # 0 from the hub and a brake command: braked, not floating


def test_a_run_at_full_power_falls_off_the_end_and_says_so_in_its_result():
    loop = closed_loop(keep_frames_every=5)
    frames = 0
    while True:
        stamp = loop.episode.stamp_ns
        loop.frame(stamp, now=float(frames))
        answer(loop, stamp, FULL, now=float(frames))
        frames += 1
        if loop.step():
            break
        assert frames < 500
    result = loop.result
    assert result['end_reason'] == 'fell' and result['unanswered_frames'] == 0 and result['hub_mismatches'] == 0
    assert len(loop.log) == frames
    kept = [entry for entry in loop.log if entry.frame is not None]
    assert len(kept) == (frames + 4) // 5
    assert kept[0].frame.shape[1] == REPORT_WIDTH and kept[0].frame_scale == REPORT_WIDTH / loop.world.camera.width
