"""Parameters checked when they are declared: one line that names the node, the parameter, the value
and what is allowed, instead of rclpy's 29-line traceback.

Every node class lists `CheckedParameters` before `Node`. Its `declare_parameter`
is rclpy's (Humble's signature), plus: a value of the wrong type or out of the
descriptor's range (rclpy's exceptions), and NaN or infinity for a number, become
a `ParameterError`. rclpy's range check also refuses NaN and infinity when a
parameter is changed at run time, so every number is declared with a range
(tests/test_node_parameters.py checks it). `declare_choice` adds a list of allowed
strings; `parameter_error` words the same line for a node's own checks (a port
name, a model file).

The value in the message is the override the node was given: rclpy keeps it in
`Node._parameter_overrides` (Humble through Kilted); without it the line says
what is allowed only.
"""
from __future__ import annotations

import math
from typing import Any
from collections.abc import Sequence

from rcl_interfaces.msg import ParameterDescriptor, ParameterType
from rclpy.exceptions import InvalidParameterTypeException, InvalidParameterValueException

from train_fou.nodes.errors import ParameterError

#: What a parameter of each type holds, in words.
TYPE_WORDS = {
    ParameterType.PARAMETER_BOOL: 'true or false',
    ParameterType.PARAMETER_INTEGER: 'an integer',
    ParameterType.PARAMETER_DOUBLE: 'a number',
    ParameterType.PARAMETER_STRING: 'a string',
    ParameterType.PARAMETER_BYTE_ARRAY: 'a list of bytes',
    ParameterType.PARAMETER_BOOL_ARRAY: 'a list of true/false',
    ParameterType.PARAMETER_INTEGER_ARRAY: 'a list of integers',
    ParameterType.PARAMETER_DOUBLE_ARRAY: 'a list of numbers',
    ParameterType.PARAMETER_STRING_ARRAY: 'a list of strings',
}


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return 'a bool'
    if isinstance(value, int):
        return 'an integer'
    if isinstance(value, float):
        return 'a number'
    if isinstance(value, str):
        return 'a string'
    if isinstance(value, (list, tuple)):
        return 'a list'
    return type(value).__name__


def shown(value: Any) -> str:
    """A value as the user wrote it: 'two', 1.5, nan, true, null, [1, 2]."""
    if value is None:
        return 'null'
    if isinstance(value, bool):
        return 'true' if value else 'false'
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else str(value)
    if isinstance(value, (list, tuple)):
        return '[' + ', '.join(shown(v) for v in value) + ']'
    return repr(value)


def allowed(descriptor: ParameterDescriptor, given: Any = None) -> str:
    """What `descriptor` allows, in words: 'an integer from 1 to 30', 'one of sim, ble'."""
    if descriptor.additional_constraints:
        return descriptor.additional_constraints
    words = TYPE_WORDS.get(descriptor.type, 'a value of the declared type')
    if descriptor.type == ParameterType.PARAMETER_INTEGER and descriptor.integer_range:
        r = descriptor.integer_range[0]
        return f'{words} from {r.from_value} to {r.to_value}'
    if descriptor.type == ParameterType.PARAMETER_DOUBLE:
        text = f'a finite {words[2:]}'
        if descriptor.floating_point_range:
            r = descriptor.floating_point_range[0]
            text = f'{words} from {r.from_value:g} to {r.to_value:g}'
        if isinstance(given, int) and not isinstance(given, bool):
            text += f' (write {given}.0: ROS parameters do not turn an integer into a number)'
        return text
    return words


def _non_finite(value: Any) -> bool:
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, (list, tuple)) or type(value).__name__ == 'array':
        return any(isinstance(v, float) and not math.isfinite(v) for v in value)
    return False


class CheckedParameters:
    """Mixin for the project's Node subclasses (listed before rclpy's Node)."""

    def _given(self, name: str) -> Any:
        override = getattr(self, '_parameter_overrides', {}).get(name)
        return getattr(override, 'value', None)

    def parameter_error(self, name: str, value: Any, expected: str, wrong_type: bool = False) -> ParameterError:
        """The one-line error for parameter `name` holding `value` where `expected` is allowed."""
        text = shown(value) + (f' ({_kind(value)})' if wrong_type else '')
        return ParameterError(f'{self.get_name()}: parameter {name} = {text}: expected {expected}')

    def declare_parameter(self, name: str, value: Any = None, descriptor: ParameterDescriptor | None = None,
                          ignore_override: bool = False):
        descriptor = descriptor if descriptor is not None else ParameterDescriptor()
        try:
            parameter = super().declare_parameter(name, value, descriptor, ignore_override)
        except (InvalidParameterTypeException, InvalidParameterValueException) as err:
            given = self._given(name)
            raise self.parameter_error(name, given, allowed(descriptor, given),
                                       wrong_type=isinstance(err, InvalidParameterTypeException)) from None
        if _non_finite(parameter.value):
            raise self.parameter_error(name, parameter.value, allowed(descriptor))
        return parameter

    def declare_choice(self, name: str, default: str, choices: Sequence[str], description: str,
                       read_only: bool = True) -> str:
        """A string parameter that must be one of `choices`; returns its value."""
        words = f'one of {", ".join(choices)}'
        value = self.declare_parameter(name, default, ParameterDescriptor(
            type=ParameterType.PARAMETER_STRING, description=f'{description} ({words})',
            additional_constraints=words, read_only=read_only)).value
        if value not in choices:
            raise self.parameter_error(name, value, words)
        return value
