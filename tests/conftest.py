"""Shared test set-up: an isolated DDS domain per pytest session, and the rclpy context fixture.

Tests run against the install space (.venv, built by `make setup`). Every
pytest session picks its own ROS_DOMAIN_ID and keeps discovery on this host,
so parallel test runs (and other ROS processes) never see each other's topics.
Child processes inherit the environment. Helpers shared by several test files
live in tests/helpers/ (`from helpers.waiting import wait_until`), never here.
"""
from __future__ import annotations

import os
import random

os.environ.setdefault('ROS_DOMAIN_ID', str(random.SystemRandom().randint(1, 100)))
os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
os.environ.setdefault('RMW_IMPLEMENTATION', 'rmw_fastrtps_cpp')

import pytest  # noqa: E402


@pytest.fixture
def ros_context():
    """A fresh rclpy context for one test, shut down afterwards."""
    import rclpy
    from rclpy.context import Context

    context = Context()
    rclpy.init(context=context)
    try:
        yield context
    finally:
        if context.ok():
            rclpy.shutdown(context=context)
