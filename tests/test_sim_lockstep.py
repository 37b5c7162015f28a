"""The lockstep gate: when the simulator may take its next step (pure, wall time passed in)."""
from train_fou.sim.dynamics import BRAKE_POWER
from train_fou.sim.lockstep import Command, LockstepGate, motor_input

CRUISE = Command(power=60, brake=False, state=0, reason='')
BRAKE = Command(power=0, brake=True, state=3, reason='danger')


def test_steps_only_after_detections_command_and_hub():
    gate = LockstepGate()
    gate.on_hub(0)
    gate.sent(100, now=0.0)
    assert gate.decide(0.1) == 'wait'
    gate.on_detections(100, now=0.1)
    assert gate.decide(0.1) == 'wait'
    gate.on_command(100, CRUISE, now=0.2)
    assert gate.decide(0.2) == 'wait'          # the hub still shows the old power
    gate.on_hub(60)
    assert gate.decide(0.21) == 'step'


def test_answers_for_other_frames_do_not_count():
    gate = LockstepGate()
    gate.sent(200, now=0.0)
    gate.on_detections(100, now=0.0)
    gate.on_command(100, CRUISE, now=0.0)
    assert gate.decide(0.1) == 'wait'


def test_hub_that_never_spoke_is_not_waited_for():
    gate = LockstepGate()
    gate.sent(1, now=0.0)
    gate.on_detections(1, now=0.0)
    gate.on_command(1, CRUISE, now=0.0)
    assert gate.decide(0.0) == 'step'


def test_hub_lagging_too_long_is_counted_and_passed():
    gate = LockstepGate(hub_grace_s=0.5)
    gate.on_hub(0)
    gate.sent(1, now=0.0)
    gate.on_detections(1, now=0.0)
    gate.on_command(1, CRUISE, now=0.0)
    assert gate.decide(0.4) == 'wait'
    assert gate.decide(0.6) == 'step' and gate.hub_mismatches == 1


def test_unanswered_frame_is_resent_quickly_before_the_first_answer_then_patiently():
    gate = LockstepGate(retry_s=5.0, startup_retry_s=0.5, max_retries=1)
    gate.sent(1, now=0.0)
    assert gate.decide(0.6) == 'resend'
    gate.sent(1, now=0.6, retry=True)
    assert gate.decide(1.2) == 'resend'        # before any answer: keep trying, discovery may be slow
    gate.on_detections(1, now=1.3)
    gate.on_command(1, CRUISE, now=1.3)
    assert gate.decide(1.3) == 'step'
    gate.sent(2, now=2.0)
    assert gate.decide(3.0) == 'wait'          # a slow inference is not a lost frame
    assert gate.decide(7.1) == 'resend'
    gate.sent(2, now=7.1, retry=True)
    assert gate.decide(12.2) == 'step' and gate.unanswered == 1


def test_braked_hub_reports_zero_and_the_command_says_brake():
    assert BRAKE.applied == 0
    assert motor_input(0, BRAKE) == BRAKE_POWER
    assert motor_input(0, CRUISE) == 0
    assert motor_input(45, CRUISE) == 45
