"""Write ROS 2 messages (serialized CDR, as received) into an MCAP bag with rosbags.

`BagRecorder` is the storage half of `train-fou replay --record` and of the
demo-bag generator: it registers the project's own interfaces (train_fou/msg)
with a rosbags typestore, so the bag carries every schema and Foxglove,
rosbags and `ros2 bag` can all read it. A path ending in `.mcap` becomes one
bare MCAP file (what Foxglove opens); any other path a rosbag2 directory
(metadata.yaml + MCAP). No rclpy here.
"""
from __future__ import annotations

import pathlib
import shutil
import tempfile
import threading

from train_fou.errors import TrainFouError

#: ROS message class module path -> rosbags type name, e.g. sensor_msgs.msg.Image -> sensor_msgs/msg/Image
PROJECT_PACKAGE = 'train_fou'


class RecordError(TrainFouError):
    """The bag cannot be created or written."""


def msgtype_of(msg_class) -> str:
    """'pkg/msg/Name' of a generated ROS message class."""
    module = msg_class.__module__.split('.')
    return f'{module[0]}/msg/{msg_class.__name__}'


def project_typestore():
    """A Kilted typestore that also knows train_fou/msg/* (from the installed .msg files)."""
    from rosbags.typesys import Stores, get_types_from_msg, get_typestore

    from train_fou.paths import share_dir

    store = get_typestore(Stores.ROS2_KILTED)
    types = {}
    msg_dir = share_dir() / 'msg'
    for path in sorted(msg_dir.glob('*.msg')):
        types.update(get_types_from_msg(path.read_text(), f'{PROJECT_PACKAGE}/msg/{path.stem}'))
    if not types:
        raise RecordError(f'no interface definitions in {msg_dir}: build the package (make setup)')
    store.register(types)
    return store


class BagRecorder:
    """Thread-safe writer: add topics, write CDR bytes with a log time, close."""

    def __init__(self, path: str | pathlib.Path, compress: bool = False) -> None:
        from rosbags.rosbag2 import StoragePlugin, Writer

        self.path = pathlib.Path(path)
        if self.path.exists():
            raise RecordError(f'{self.path} exists already; not overwriting')
        self._single_file = self.path.suffix == '.mcap'
        if self._single_file:
            self._tmp = pathlib.Path(tempfile.mkdtemp(prefix='train_fou_bag_', dir=self.path.parent or None))
            bag_dir = self._tmp / self.path.stem
        else:
            self._tmp = None
            bag_dir = self.path
        try:
            self._typestore = project_typestore()
            self._writer = Writer(bag_dir, version=9, storage_plugin=StoragePlugin.MCAP)
            if compress:
                from rosbags.rosbag2 import CompressionFormat, CompressionMode
                self._writer.set_compression(CompressionMode.MESSAGE, CompressionFormat.ZSTD)
            self._writer.open()
        except RecordError:
            self._cleanup()
            raise
        except Exception as err:
            self._cleanup()
            raise RecordError(f'{self.path}: cannot create bag: {err}') from err
        self._bag_dir = bag_dir
        self._connections: dict[str, object] = {}
        self._lock = threading.Lock()
        self.counts: dict[str, int] = {}
        self.closed = False

    @property
    def typestore(self):
        """The rosbags typestore of this bag (to serialize messages written from Python)."""
        return self._typestore

    def add_topic(self, topic: str, msgtype: str) -> None:
        with self._lock:
            if topic in self._connections:
                return
            try:
                self._connections[topic] = self._writer.add_connection(topic, msgtype, typestore=self._typestore)
            except Exception as err:
                raise RecordError(f'{self.path}: cannot add {topic} ({msgtype}): {err}') from err
            self.counts[topic] = 0

    def write(self, topic: str, log_time_ns: int, data: bytes) -> None:
        with self._lock:
            if self.closed:
                return
            self._writer.write(self._connections[topic], int(log_time_ns), data)
            self.counts[topic] += 1

    def close(self) -> pathlib.Path:
        """Finish the bag; returns the path written (the .mcap file or the bag directory)."""
        with self._lock:
            if self.closed:
                return self.path
            self.closed = True
            self._writer.close()
            if self._single_file:
                [mcap] = sorted(self._bag_dir.glob('*.mcap'))
                shutil.move(str(mcap), str(self.path))
                self._cleanup()
        return self.path

    def _cleanup(self) -> None:
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
