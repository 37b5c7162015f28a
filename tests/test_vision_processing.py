"""Pre- and post-processing of train_fou.vision: golden values, round trips, properties."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from train_fou.vision import Letterboxer, LetterboxInfo, decode_yolov8, letterbox, nms, unletterbox
from train_fou.vision.annotate import draw_detections
from train_fou.vision.preprocess import PAD_VALUE, letterbox_geometry


def test_letterbox_centres_a_landscape_frame_with_grey_bars_above_and_below():
    image = np.zeros((480, 640, 3), np.uint8)
    image[..., 0] = 10   # blue
    image[..., 2] = 200  # red
    tensor, info = letterbox(image, (416, 416))
    assert tensor.shape == (1, 3, 416, 416) and tensor.dtype == np.float32
    assert info == LetterboxInfo(scale=0.65, pad_x=0, pad_y=52, src_width=640, src_height=480,
                                 dst_width=416, dst_height=416)
    grey = PAD_VALUE / 255
    assert np.allclose(tensor[0, :, :52, :], grey) and np.allclose(tensor[0, :, 52 + 312:, :], grey)
    # Channel 0 is red (RGB order), channel 2 blue, scaled to 0..1.
    assert np.allclose(tensor[0, 0, 52:364, :], 200 / 255)
    assert np.allclose(tensor[0, 2, 52:364, :], 10 / 255)


def test_letterbox_portrait_pads_left_and_right_and_non_square_input():
    info, new_w, new_h = letterbox_geometry((640, 480), (384, 640))
    assert (new_w, new_h) == (288, 384)
    assert info.pad_x == 176 and info.pad_y == 0


def test_letterboxer_reuses_its_tensor_and_refills_padding_when_the_size_changes():
    boxer = Letterboxer((64, 64))
    first, _ = boxer(np.full((32, 64, 3), 255, np.uint8))
    second, info = boxer(np.full((64, 32, 3), 255, np.uint8))
    assert first is second
    assert np.allclose(second[0, :, :, :info.pad_x], PAD_VALUE / 255)
    assert np.allclose(second[0, :, :, info.pad_x:info.pad_x + 32], 1.0)


def test_letterbox_rejects_a_non_bgr_array_with_its_shape():
    with pytest.raises(ValueError, match=r'shape \(4, 4\)'):
        letterbox(np.zeros((4, 4), np.uint8), (32, 32))


def _output(boxes_cxcywh, scores):
    """1x(4+nc)xN from N boxes and NxC scores."""
    return np.concatenate([np.asarray(boxes_cxcywh, np.float32).T,
                           np.asarray(scores, np.float32).T])[None]


INFO = LetterboxInfo(scale=0.65, pad_x=0, pad_y=52, src_width=640, src_height=480, dst_width=416, dst_height=416)


def test_decode_maps_boxes_back_to_source_pixels():
    out = _output([[208, 208, 65, 130]], [[0.0, 0.9]])
    [det] = decode_yolov8(out, INFO, 0.25, 0.45, 2, ['a', 'b'])
    assert det.class_id == 1 and det.label == 'b' and det.score == pytest.approx(0.9)
    # centre 208 -> x 320, y (208-52)/0.65 = 240; size 65x130 -> 100x200 source pixels
    assert (det.x1, det.y1, det.x2, det.y2) == pytest.approx((270, 140, 370, 340), abs=1e-3)


def test_decode_drops_low_scores_and_suppresses_overlaps_within_a_class_only():
    out = _output([[100, 100, 50, 50], [102, 100, 50, 50], [101, 100, 50, 50], [300, 300, 20, 20]],
                  [[0.9, 0.0], [0.8, 0.0], [0.0, 0.7], [0.1, 0.2]])
    dets = decode_yolov8(out, INFO, 0.25, 0.45, 2)
    assert [(d.class_id, round(d.score, 2)) for d in dets] == [(0, 0.9), (1, 0.7)]
    assert [d.label for d in dets] == ['0', '1']


def test_decode_accepts_the_transposed_layout_and_rejects_a_wrong_class_count():
    out = _output([[208, 208, 65, 130]], [[0.9, 0.0]])
    assert decode_yolov8(out.transpose(0, 2, 1), INFO, 0.25, 0.45, 2)
    with pytest.raises(ValueError, match='3 classes'):
        decode_yolov8(out, INFO, 0.25, 0.45, 3)


def test_decode_returns_an_empty_list_when_nothing_passes():
    assert decode_yolov8(_output([[1, 1, 1, 1]], [[0.1]]), INFO, 0.25, 0.45, 1) == []


def test_decode_clips_boxes_to_the_image_and_drops_those_outside():
    out = _output([[5, 208, 40, 40], [208, 20, 40, 40]], [[0.9], [0.9]])
    dets = decode_yolov8(out, INFO, 0.25, 0.45, 1)
    assert len(dets) == 1  # the second lies in the top padding only
    assert dets[0].x1 == 0.0


def test_nms_keeps_the_best_of_overlapping_boxes():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30]], np.float32)
    assert nms(boxes, np.array([0.5, 0.9, 0.8], np.float32), 0.5).tolist() == [1, 2]


@settings(max_examples=60, deadline=None)
@given(src_w=st.integers(1, 1920), src_h=st.integers(1, 1080),
       dst=st.sampled_from([(320, 320), (416, 416), (384, 640)]),
       boxes=st.lists(st.tuples(*(st.floats(-2000, 2000, allow_nan=False),) * 4), min_size=1, max_size=20))
def test_unletterboxed_boxes_always_stay_inside_the_source_image(src_w, src_h, dst, boxes):
    info, _, _ = letterbox_geometry((src_h, src_w), dst)
    arr = np.sort(np.asarray(boxes, np.float32).reshape(-1, 2, 2), axis=1).reshape(-1, 4)[:, [0, 2, 1, 3]]
    out = unletterbox(arr, info)
    assert (out[:, 0::2] >= 0).all() and (out[:, 0::2] <= src_w).all()
    assert (out[:, 1::2] >= 0).all() and (out[:, 1::2] <= src_h).all()


@settings(max_examples=40, deadline=None)
@given(x=st.floats(0, 600), y=st.floats(0, 440), w=st.floats(4, 40), h=st.floats(4, 40))
def test_a_box_survives_letterbox_and_back(x, y, w, h):
    _, info = letterbox(np.zeros((480, 640, 3), np.uint8), (416, 416))
    cx, cy = (x + w / 2) * info.scale + info.pad_x, (y + h / 2) * info.scale + info.pad_y
    [det] = decode_yolov8(_output([[cx, cy, w * info.scale, h * info.scale]], [[0.9]]), info, 0.25, 0.45, 1)
    assert (det.x1, det.y1, det.x2, det.y2) == pytest.approx((x, y, min(x + w, 640), min(y + h, 480)), abs=1e-2)


def test_draw_detections_draws_on_a_copy():
    image = np.zeros((100, 100, 3), np.uint8)
    out = _output([[208, 208, 100, 100]], [[0.9]])
    dets = decode_yolov8(out, LetterboxInfo(4.16, 0, 0, 100, 100, 416, 416), 0.25, 0.45, 1, ['stop'])
    drawn = draw_detections(image, dets)
    assert drawn.any() and not image.any()


def _reference_letterbox(image_bgr, dst_hw):
    """ultralytics' LetterBox(auto=False, center=True) + its to-tensor step, written out plainly."""
    import cv2
    dst_h, dst_w = dst_hw
    h, w = image_bgr.shape[:2]
    r = min(dst_h / h, dst_w / w)
    new_w, new_h = int(round(w * r)), int(round(h * r))
    dw, dh = (dst_w - new_w) / 2, (dst_h - new_h) / 2
    if (new_w, new_h) != (w, h):
        image_bgr = cv2.resize(image_bgr, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
    top, bottom = int(round(dh - 0.1)), int(round(dh + 0.1))
    left, right = int(round(dw - 0.1)), int(round(dw + 0.1))
    padded = cv2.copyMakeBorder(image_bgr, top, bottom, left, right, cv2.BORDER_CONSTANT,
                                value=(PAD_VALUE, PAD_VALUE, PAD_VALUE))
    return (padded[..., ::-1].transpose(2, 0, 1)[None].astype(np.float32) / 255.0), (left, top)


@pytest.mark.parametrize('src_hw, dst_hw', [((480, 640), (416, 416)), ((640, 480), (416, 416)),
                                            ((240, 320), (96, 128)), ((416, 416), (416, 416)),
                                            ((100, 37), (64, 96)), ((720, 1280), (384, 640))])
def test_letterboxer_matches_the_ultralytics_reference_on_random_frames(src_hw, dst_hw):
    rng = np.random.default_rng(sum(src_hw) + sum(dst_hw))
    boxer = Letterboxer(dst_hw)
    for _ in range(3):  # the reused buffers carry nothing over from the previous frame
        image = rng.integers(0, 256, (*src_hw, 3), dtype=np.uint8)
        expected, (left, top) = _reference_letterbox(image, dst_hw)
        tensor, info = boxer(image)
        assert (info.pad_x, info.pad_y) == (left, top)
        assert tensor.shape == expected.shape
        assert np.abs(tensor - expected).max() <= 1 / 255 + 1e-6
        assert np.array_equal(tensor, letterbox(image, dst_hw)[0])


def test_letterboxer_takes_non_contiguous_views_like_a_padded_image_row_stride():
    rng = np.random.default_rng(7)
    wide = rng.integers(0, 256, (480, 660, 3), dtype=np.uint8)
    view = wide[:, :640]  # what image_from_raw returns when step > width * 3
    expected, _ = _reference_letterbox(np.ascontiguousarray(view), (416, 416))
    tensor, _ = Letterboxer((416, 416))(view)
    assert np.abs(tensor - expected).max() <= 1 / 255 + 1e-6
