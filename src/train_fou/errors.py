"""The one base class of every error train_fou raises on purpose, and the rule that uses it.

Each package keeps its own exception class (`HubError`, `VisionError`,
`SimError`, ...), derived from `TrainFouError`; its message names the bad value
and what is allowed. The CLI, the node executables and the training workspace
decide "a user error: print one line" with `is_user_error`, by `isinstance`,
never by a module or class name. Anything else is a bug and keeps its traceback.
"""
from __future__ import annotations


class TrainFouError(Exception):
    """Base class of every error the project raises on purpose (one clear line for the user)."""


def is_user_error(err: BaseException) -> bool:
    """True for the project's own errors and for a missing file (both name what to fix)."""
    return isinstance(err, (TrainFouError, FileNotFoundError))
