"""Moved to tests/helpers/models.py; kept while tests/test_cli_detect_bench.py imports it from here."""
from helpers.models import build_yolov8_like, default_anchors, make_model, write_image_bag, write_metadata  # noqa: F401
