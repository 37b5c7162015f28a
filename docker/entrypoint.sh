#!/bin/bash
# Source ROS 2 and the package's install space, then run the command.
set -e
source "/opt/ros/${ROS_DISTRO}/setup.bash"
source /ws/install/setup.bash
exec "$@"
