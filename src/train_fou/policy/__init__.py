"""The speed policy (SPEC §5): configuration and a pure state machine. Never imports rclpy."""
from train_fou.policy.config import Action, PolicyConfig, SignRule, load_policy, policy_from_mapping
from train_fou.policy.errors import PolicyConfigError
from train_fou.policy.machine import (BRAKING_MODES, Detection, EmergencyStop, Frame, Mode, Resume, State,
                                      qualifying_labels, step)

__all__ = ['Action', 'BRAKING_MODES', 'Detection', 'EmergencyStop', 'Frame', 'Mode', 'PolicyConfig',
           'PolicyConfigError', 'Resume', 'SignRule', 'State', 'load_policy', 'policy_from_mapping',
           'qualifying_labels', 'step']
