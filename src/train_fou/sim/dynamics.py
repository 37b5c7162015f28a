"""The train's longitudinal dynamics, driven by the hub's applied motor power.

A LEGO train motor settles to a speed roughly proportional to its power: the
speed follows that target with a first-order lag. Power 0 floats the motor
(the train coasts and rolls out); the LWP3 brake value (127) or an explicit
brake decelerates at a bounded rate. Pure and deterministic: time is passed in.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

#: LWP3 motor power value that brakes (SPEC §6); the hub reports it as applied power.
BRAKE_POWER = 127


@dataclass(frozen=True)
class TrainParams:
    max_speed_mps: float = 1.0     #: steady speed at power 100
    motor_lag_s: float = 0.4       #: time constant of the speed's response to power
    brake_decel_mps2: float = 1.5  #: deceleration while braking
    coast_decel_mps2: float = 0.4  #: rolling friction while the motor floats
    max_decel_mps2: float = 2.5    #: a power drop never decelerates harder than this

    def target_speed(self, power_pct: float) -> float:
        """Steady speed the motor settles to at `power_pct` (−100…100)."""
        return self.max_speed_mps * max(-100.0, min(100.0, power_pct)) / 100.0


@dataclass(frozen=True)
class TrainState:
    position_m: float = 0.0
    speed_mps: float = 0.0


def _towards(value: float, target: float, max_change: float) -> float:
    if value < target:
        return min(target, value + max_change)
    return max(target, value - max_change)


def step(params: TrainParams, state: TrainState, applied_power: int, dt_s: float) -> TrainState:
    """Advance the train by `dt_s` with the hub's applied power held constant.

    `applied_power` is the hub's int8: −100…100 drives, 0 floats, 127 brakes.
    """
    if dt_s <= 0.0:
        return state
    v = state.speed_mps
    if applied_power == BRAKE_POWER or abs(applied_power) > 100:
        v_new = _towards(v, 0.0, params.brake_decel_mps2 * dt_s)
    elif applied_power == 0:
        v_new = _towards(v, 0.0, params.coast_decel_mps2 * dt_s)
    else:
        target = params.target_speed(applied_power)
        lagged = target + (v - target) * math.exp(-dt_s / params.motor_lag_s)
        if abs(lagged) < abs(v):
            # A lower power drags the train down, but not harder than the wheels allow.
            v_new = _towards(v, lagged, params.max_decel_mps2 * dt_s)
        else:
            v_new = lagged
    position = state.position_m + 0.5 * (v + v_new) * dt_s
    return TrainState(position_m=position, speed_mps=v_new)


def stopping_distance_m(params: TrainParams, speed_mps: float) -> float:
    """Distance to stand still from `speed_mps` while braking."""
    return speed_mps * speed_mps / (2.0 * params.brake_decel_mps2)
