"""Model metadata validation and image buffer decoding: every error names what is wrong."""
import json

import cv2
import numpy as np
import pytest

from train_fou.vision import ImageDecodeError, ModelMetadataError, ModelNotFoundError, load_metadata
from train_fou.vision.images import decode_jpeg, encode_jpeg, image_from_raw

GOOD = {"format": "yolov8", "names": ["speed_limit_30", "speed_limit_50", "stop", "danger"],
        "imgsz": [416, 416], "input_name": "images", "conf_threshold": 0.25, "iou_threshold": 0.45,
        "data_hash": "abc"}


def write(tmp_path, data):
    path = tmp_path / 'signs.json'
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return path


def test_load_metadata_reads_the_contract_fields_and_keeps_extras(tmp_path):
    meta = load_metadata(write(tmp_path, GOOD))
    assert meta.names == ('speed_limit_30', 'speed_limit_50', 'stop', 'danger')
    assert meta.imgsz == (416, 416) and meta.num_classes == 4
    assert meta.extra == {'data_hash': 'abc'}


def test_load_metadata_accepts_ultralytics_index_maps(tmp_path):
    meta = load_metadata(write(tmp_path, dict(GOOD, names={'0': 'a', '1': 'b'}, imgsz=320)))
    assert meta.names == ('a', 'b') and meta.imgsz == (320, 320)


@pytest.mark.parametrize('change, message', [
    ({'format': 'yolov5'}, "unsupported `format` 'yolov5'"),
    ({'names': []}, '`names` must be a non-empty list'),
    ({'names': ['a', 'a']}, 'duplicates'),
    ({'imgsz': [416]}, '`imgsz` must be'),
    ({'imgsz': [416, -1]}, '`imgsz` must be'),
    ({'conf_threshold': 2}, '`conf_threshold` must be a number in'),
    ({'input_name': ''}, '`input_name`'),
])
def test_load_metadata_rejects_bad_fields_naming_file_and_field(tmp_path, change, message):
    path = write(tmp_path, dict(GOOD, **change))
    with pytest.raises(ModelMetadataError, match=message) as info:
        load_metadata(path)
    assert str(path) in str(info.value)


def test_load_metadata_reports_malformed_json_with_its_position(tmp_path):
    with pytest.raises(ModelMetadataError, match='line 1, column'):
        load_metadata(write(tmp_path, '{"names": ['))


def test_load_metadata_on_a_missing_file_is_a_file_not_found_error_naming_it(tmp_path):
    with pytest.raises(ModelNotFoundError, match='nope.json: model metadata file not found'):
        load_metadata(tmp_path / 'nope.json')


def test_image_from_raw_is_a_zero_copy_view_for_bgr8_with_padding_rows():
    data = bytes(range(2 * 8)) * 1  # 2 rows, width 2, step 8 (2 bytes of row padding)
    image = image_from_raw('bgr8', 2, 2, 8, data)
    assert image.shape == (2, 2, 3)
    assert image[1, 0].tolist() == [8, 9, 10]


def test_image_from_raw_converts_rgb_and_mono():
    assert image_from_raw('rgb8', 1, 1, 3, bytes([1, 2, 3]))[0, 0].tolist() == [3, 2, 1]
    assert image_from_raw('mono8', 1, 2, 2, bytes([7, 9]))[0, 1].tolist() == [9, 9, 9]


@pytest.mark.parametrize('args, message', [
    (('bgr8', 2, 2, 5, bytes(10)), 'step 5 is smaller'),
    (('bgr8', 2, 2, 6, bytes(11)), 'truncated data: 11 bytes'),
    (('bgr8', 2, 2, 6, bytes(13)), 'oversized data'),
    (('yuv422', 2, 2, 4, bytes(8)), "unsupported encoding 'yuv422'"),
    (('bgr8', 0, 2, 6, b''), 'bad image size'),
])
def test_image_from_raw_rejects_malformed_buffers(args, message):
    with pytest.raises(ImageDecodeError, match=message):
        image_from_raw(*args)


def test_jpeg_round_trip_and_garbage():
    image = np.zeros((16, 16, 3), np.uint8)
    cv2.circle(image, (8, 8), 5, (0, 0, 255), -1)
    decoded = decode_jpeg(encode_jpeg(image, 95))
    assert decoded.shape == image.shape and int(decoded[8, 8, 2]) > 200
    with pytest.raises(ImageDecodeError, match='undecodable'):
        decode_jpeg(b'\xff\xd8not a jpeg')
    with pytest.raises(ImageDecodeError, match='empty'):
        decode_jpeg(b'')


def test_parse_image_reads_a_serialized_image_in_place():
    from builtin_interfaces.msg import Time
    from rclpy.serialization import serialize_message
    from std_msgs.msg import Header

    from train_fou.nodes.image_msgs import image_msg
    from train_fou.vision.cdr import parse_image

    pixels = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    data = serialize_message(image_msg(pixels, Header(stamp=Time(sec=-3, nanosec=9), frame_id='cam')))
    fields = parse_image(data)
    assert fields[:7] == (-3, 9, 'cam', 2, 3, 'bgr8', 9)
    assert fields.data.tobytes() == pixels.tobytes() and not fields.data.flags.owndata


def test_parse_compressed_reads_big_endian_cdr_golden_bytes():
    from train_fou.vision.cdr import parse_compressed

    data = (b'\x00\x00\x00\x00'          # encapsulation: CDR big endian
            b'\x00\x00\x00\x07'          # header.stamp.sec = 7
            b'\x00\x00\x00\x05'          # header.stamp.nanosec = 5
            b'\x00\x00\x00\x02c\x00'     # header.frame_id = "c"
            b'\x00\x00'                  # align to 4
            b'\x00\x00\x00\x05jpeg\x00'  # format = "jpeg"
            b'\x00\x00\x00'              # align to 4
            b'\x00\x00\x00\x02\xff\xd8')  # data = ff d8
    fields = parse_compressed(data)
    assert fields[:4] == (7, 5, 'c', 'jpeg') and fields.data.tobytes() == b'\xff\xd8'


def test_header_stamp_is_read_and_patched_in_the_messages_own_byte_order():
    from train_fou.vision.cdr import header_stamp, parse_compressed, write_header_stamp

    big = bytearray(b'\x00\x00\x00\x00'          # encapsulation: CDR big endian
                    b'\x00\x00\x00\x07'          # header.stamp.sec = 7
                    b'\x00\x00\x00\x05'          # header.stamp.nanosec = 5
                    b'\x00\x00\x00\x02c\x00\x00\x00'  # header.frame_id = "c", aligned to 4
                    b'\x00\x00\x00\x05jpeg\x00\x00\x00\x00'  # format = "jpeg", aligned to 4
                    b'\x00\x00\x00\x00')         # data: empty
    little = bytearray(b'\x00\x01\x00\x00'       # encapsulation: CDR little endian
                       b'\xff\xff\xff\xff'       # header.stamp.sec = -1
                       b'\x00\xca\x9a\x3b')      # header.stamp.nanosec = 1_000_000_000
    assert header_stamp(big) == (7, 5) and header_stamp(little) == (-1, 1_000_000_000)
    write_header_stamp(big, 123, 456)
    write_header_stamp(little, 2, 3)
    assert header_stamp(big) == (123, 456) and parse_compressed(big)[:4] == (123, 456, 'c', 'jpeg')
    assert bytes(little) == b'\x00\x01\x00\x00\x02\x00\x00\x00\x03\x00\x00\x00'
    with pytest.raises(ImageDecodeError, match='truncated message: header.stamp.nanosec'):
        header_stamp(b'\x00\x01\x00\x00\x01\x00\x00\x00')
    with pytest.raises(ImageDecodeError, match='not a CDR message with a header'):
        write_header_stamp(bytearray(b'\x07\x07\x00\x00' + bytes(8)), 1, 2)


@pytest.mark.parametrize('data, message', [
    (b'', 'not a CDR message'),
    (b'\x07\x07\x00\x00', 'not a CDR message'),
    (b'\x00\x01\x00\x00\x01\x00', 'truncated message: header.stamp.sec'),
    (b'\x00\x01\x00\x00' + bytes(8) + b'\xff\xff\x00\x00', 'truncated message: header.frame_id needs 65535'),
])
def test_parse_image_rejects_garbage(data, message):
    from train_fou.vision.cdr import parse_image
    with pytest.raises(ImageDecodeError, match=message):
        parse_image(data)


@pytest.mark.parametrize('params', [[], [cv2.IMWRITE_JPEG_PROGRESSIVE, 1]], ids=['baseline', 'progressive'])
def test_a_jpeg_cut_anywhere_is_truncated_while_bytes_after_its_end_are_allowed(params):
    image = np.random.default_rng(1).integers(0, 255, (48, 64, 3), dtype=np.uint8)
    ok, jpeg = cv2.imencode('.jpg', image, params)
    jpeg = jpeg.tobytes()
    assert decode_jpeg(jpeg + b'trailer written by a phone').shape == image.shape
    for cut in (len(jpeg) - 2, len(jpeg) // 2, 200, 30):
        with pytest.raises(ImageDecodeError, match='truncated JPEG'):
            decode_jpeg(jpeg[:cut])


def test_a_truncated_png_is_an_error_before_libpng_sees_it():
    ok, png = cv2.imencode('.png', np.zeros((16, 16, 3), np.uint8))
    with pytest.raises(ImageDecodeError, match='truncated PNG'):
        decode_jpeg(png.tobytes()[:-20])
