"""Fast DDS set-up so that camera frames cross process boundaries (config/fastdds.xml says why).

Every train-fou process and node executable calls `use_project_transport()` before
rclpy.init. It changes nothing when the user already chose (a profiles file, the
builtin-transports variable) or runs another middleware.
"""
from __future__ import annotations

import logging
import os
from collections.abc import MutableMapping

log = logging.getLogger('train_fou.dds')

PROFILE_ENV = 'FASTDDS_DEFAULT_PROFILES_FILE'
#: Fast DDS 2.x (ROS 2 Humble, Iron, Jazzy) reads only this name; Kilted's warns that it is deprecated.
LEGACY_PROFILE_ENV = 'FASTRTPS_DEFAULT_PROFILES_FILE'
LEGACY_DISTROS = ('humble', 'iron', 'jazzy')
#: Any of these set by the user means a transport was chosen on purpose: leave it.
USER_CHOICES = (PROFILE_ENV, LEGACY_PROFILE_ENV, 'FASTDDS_BUILTIN_TRANSPORTS')
FAST_DDS_RMWS = ('rmw_fastrtps_cpp', 'rmw_fastrtps_dynamic_cpp')
PROFILE_NAME = 'fastdds.xml'


def use_project_transport(environ: MutableMapping[str, str] | None = None) -> str | None:
    """Point Fast DDS at config/fastdds.xml; returns its path, or None when left alone (and why, logged)."""
    environ = os.environ if environ is None else environ
    chosen = [name for name in USER_CHOICES if environ.get(name)]
    if chosen:
        log.debug('Fast DDS transport left as set by %s', chosen[0])
        return None
    rmw = environ.get('RMW_IMPLEMENTATION', '')
    if rmw and rmw not in FAST_DDS_RMWS:
        log.debug('RMW_IMPLEMENTATION=%s: no Fast DDS profile', rmw)
        return None
    from train_fou.paths import config_path
    profile = config_path(PROFILE_NAME)
    if not profile.is_file():
        log.warning('%s missing: camera frames may not cross processes (rebuild the package)', profile)
        return None
    environ[PROFILE_ENV] = str(profile)
    if environ.get('ROS_DISTRO', '') in LEGACY_DISTROS:
        environ[LEGACY_PROFILE_ENV] = str(profile)
    return str(profile)
