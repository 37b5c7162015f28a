"""Tiny YOLOv8-shaped ONNX models for tests, built with onnx.helper (no weights, no download).

`build_yolov8_like` makes a model with input `images` 1x3xHxW and output
1x(4+nc)xN. Its boxes are constants (cx, cy, w, h in network pixels); its class
scores are `weights * mean(image)`, so a white frame detects, a black one does
not. `matmuls` > 0 adds an input-dependent chain of MxM matrix products that
only burns time (a "slow model") without changing the output.
"""
from __future__ import annotations

import json
import pathlib

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

NAMES = ['speed_limit_30', 'speed_limit_50', 'stop', 'danger']


def default_anchors(imgsz=(416, 416)):
    """Boxes (cx, cy, w, h) and per-class score weights of the default model: two signs."""
    h, w = imgsz
    boxes = np.array([[w * 0.25, h * 0.5, 40, 60],   # a `stop` sign, left
                      [w * 0.75, h * 0.5, 50, 50],   # a `danger` sign, right
                      [w * 0.75 + 2, h * 0.5, 50, 50]], dtype=np.float32)  # duplicate of the danger box
    weights = np.zeros((3, len(NAMES)), dtype=np.float32)
    weights[0, 2] = 0.9
    weights[1, 3] = 0.8
    weights[2, 3] = 0.7
    return boxes, weights


def build_yolov8_like(path, imgsz=(416, 416), names=NAMES, boxes=None, weights=None, matmuls=0,
                      matmul_size=384, dynamic=False, opset=13) -> pathlib.Path:
    h, w = imgsz
    if boxes is None:
        boxes, weights = default_anchors(imgsz)
    n = boxes.shape[0]
    nc = len(names)
    const = np.zeros((1, 4 + nc, n), dtype=np.float32)
    const[0, :4, :] = boxes.T
    gain = np.zeros((1, 4 + nc, n), dtype=np.float32)
    gain[0, 4:, :] = weights.T
    nodes = [
        helper.make_node('GlobalAveragePool', ['images'], ['gap']),
        helper.make_node('ReduceMean', ['gap'], ['mean4'], axes=[1], keepdims=1),
        helper.make_node('Reshape', ['mean4', 'shape111'], ['mean']),
        helper.make_node('Mul', ['mean', 'gain'], ['scores']),
        helper.make_node('Add', ['scores', 'const'], ['out0']),
    ]
    inits = [numpy_helper.from_array(const, 'const'), numpy_helper.from_array(gain, 'gain'),
             numpy_helper.from_array(np.array([1, 1, 1], dtype=np.int64), 'shape111')]
    last = 'out0'
    if matmuls:
        m = matmul_size
        rng = np.random.default_rng(0)
        inits += [numpy_helper.from_array(np.array([m, m], dtype=np.int64), 'mm_shape'),
                  numpy_helper.from_array(np.array([1, 1], dtype=np.int64), 'shape11'),
                  numpy_helper.from_array((rng.standard_normal((m, m)) / m).astype(np.float32), 'mm_w'),
                  numpy_helper.from_array(np.zeros((1,), dtype=np.float32), 'zero')]
        nodes += [helper.make_node('Reshape', ['mean', 'shape11'], ['mean11']),
                  helper.make_node('Expand', ['mean11', 'mm_shape'], ['mm0'])]
        for i in range(matmuls):
            nodes.append(helper.make_node('MatMul', [f'mm{i}', 'mm_w'], [f'mm{i + 1}']))
        nodes += [helper.make_node('ReduceMean', [f'mm{matmuls}'], ['mm_mean'], keepdims=0),
                  helper.make_node('Mul', ['mm_mean', 'zero'], ['mm_zero']),
                  helper.make_node('Add', ['out0', 'mm_zero'], ['output0'])]
        last = 'output0'
    else:
        nodes.append(helper.make_node('Identity', ['out0'], ['output0']))
    in_shape = [1, 3, 'height', 'width'] if dynamic else [1, 3, h, w]
    graph = helper.make_graph(
        nodes, 'yolov8_like',
        [helper.make_tensor_value_info('images', TensorProto.FLOAT, in_shape)],
        [helper.make_tensor_value_info(last, TensorProto.FLOAT, [1, 4 + nc, n])],
        initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid('', opset)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    path = pathlib.Path(path)
    onnx.save(model, str(path))
    return path


def write_metadata(model_path, imgsz=(416, 416), names=NAMES, **extra) -> pathlib.Path:
    data = {'format': 'yolov8', 'names': list(names), 'imgsz': list(imgsz), 'input_name': 'images',
            'conf_threshold': 0.25, 'iou_threshold': 0.45, 'data_hash': 'test'}
    data.update(extra)
    path = pathlib.Path(model_path).with_suffix('.json')
    path.write_text(json.dumps(data))
    return path


def make_model(directory, name='signs', imgsz=(416, 416), **kwargs) -> pathlib.Path:
    """models/<name>.onnx plus its metadata JSON in `directory`; returns the .onnx path."""
    path = build_yolov8_like(pathlib.Path(directory) / f'{name}.onnx', imgsz=imgsz, **kwargs)
    write_metadata(path, imgsz)
    return path


def write_image_bag(path, count=10, period_s=1 / 30, storage='mcap', topic='/camera/image_raw',
                    compressed=False, size=(48, 64), extra_topics=(), first_stamp_s=100):
    """A rosbag2 with `count` frames (pixel value = index * 20) and header stamps first_stamp_s + i."""
    import cv2
    from rosbags.rosbag2 import StoragePlugin, Writer
    from rosbags.typesys import Stores, get_typestore

    store = get_typestore(Stores.ROS2_HUMBLE)
    Image = store.types['sensor_msgs/msg/Image']
    CompressedImage = store.types['sensor_msgs/msg/CompressedImage']
    Header = store.types['std_msgs/msg/Header']
    Time = store.types['builtin_interfaces/msg/Time']
    String = store.types['std_msgs/msg/String']
    plugin = StoragePlugin.MCAP if storage == 'mcap' else StoragePlugin.SQLITE3
    msgtype = CompressedImage.__msgtype__ if compressed else Image.__msgtype__
    with Writer(path, version=9, storage_plugin=plugin) as writer:
        conn = writer.add_connection(topic, msgtype, typestore=store)
        others = [writer.add_connection(t, String.__msgtype__, typestore=store) for t in extra_topics]
        for i in range(count):
            header = Header(stamp=Time(sec=first_stamp_s + i, nanosec=0), frame_id='bag_camera')
            pixels = np.full((*size, 3), (i * 20) % 256, np.uint8)
            if compressed:
                msg = CompressedImage(header=header, format='jpeg',
                                      data=np.frombuffer(cv2.imencode('.jpg', pixels)[1].tobytes(), np.uint8))
            else:
                msg = Image(header=header, height=size[0], width=size[1], encoding='bgr8', is_bigendian=0,
                            step=size[1] * 3, data=pixels.ravel())
            t_ns = int(1e9) + int(i * period_s * 1e9)
            writer.write(conn, t_ns, store.serialize_cdr(msg, msgtype))
            for other in others:
                writer.write(other, t_ns, store.serialize_cdr(String(data='x'), String.__msgtype__))
    return pathlib.Path(path)
