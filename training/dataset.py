"""YOLO datasets on disk: labels, data.yaml, content hash, and import of real labelled photos.

Layout (what ultralytics reads)::

    root/data.yaml                 path, train/val/test, names (+ our own fields)
    root/images/{train,val,test}/*.jpg
    root/labels/{train,val,test}/*.txt   one `class cx cy w h` line per box, normalised 0..1

Real photos come in two ways, both mapped onto the model's class names with a
class-name mapping (`{"their name": "speed_limit_30", "bus": null}`, null or
missing = drop the box; unmapped names that already are class names pass):

- another YOLO directory (its data.yaml or classes.txt gives its names);
- a Label Studio JSON export ("JSON" with `annotations[].result[]`, or
  "JSON-MIN" with `label[]`), rectangle labels in percent of the image.

Imported images are split into train/val/test by a hash of their file name,
so re-importing the same photos gives the same split.
"""
from __future__ import annotations

import hashlib
import json
import pathlib
import shutil
from collections.abc import Iterable, Mapping, Sequence

import yaml

from train_fou.errors import TrainFouError

SPLITS = ('train', 'val', 'test')
IMAGE_SUFFIXES = ('.jpg', '.jpeg', '.png', '.bmp', '.webp')

Box = tuple[float, float, float, float]  # x1, y1, x2, y2 in pixels


class DatasetError(TrainFouError):
    """A dataset, label file or export that cannot be read (the message names the file and the problem)."""


def write_labels(path: pathlib.Path, boxes: Iterable[tuple[int, Box]], width: int, height: int) -> None:
    """YOLO label file: boxes (class, (x1, y1, x2, y2) pixels) clipped to the image and normalised."""
    lines = []
    for cls, (x1, y1, x2, y2) in boxes:
        x1, x2 = sorted((min(max(x1, 0.0), width), min(max(x2, 0.0), width)))
        y1, y2 = sorted((min(max(y1, 0.0), height), min(max(y2, 0.0), height)))
        if x2 - x1 < 1 or y2 - y1 < 1:
            continue
        lines.append(f'{int(cls)} {(x1 + x2) / 2 / width:.6f} {(y1 + y2) / 2 / height:.6f} '
                     f'{(x2 - x1) / width:.6f} {(y2 - y1) / height:.6f}')
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(''.join(line + '\n' for line in lines))


def read_labels(path: pathlib.Path, width: int, height: int) -> list[tuple[int, Box]]:
    """Boxes of a YOLO label file in pixels; a missing file is an image without objects."""
    path = pathlib.Path(path)
    if not path.is_file():
        return []
    boxes = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 5:
            raise DatasetError(f'{path}:{n}: expected `class cx cy w h`, got {line!r}')
        try:
            cls = int(parts[0])
            cx, cy, w, h = (float(v) for v in parts[1:])
        except ValueError:
            raise DatasetError(f'{path}:{n}: not numbers: {line!r}') from None
        boxes.append((cls, ((cx - w / 2) * width, (cy - h / 2) * height, (cx + w / 2) * width, (cy + h / 2) * height)))
    return boxes


def write_data_yaml(root: pathlib.Path, names: Sequence[str], extra: Mapping | None = None) -> pathlib.Path:
    """data.yaml for ultralytics, with an absolute `path` so it works from any working directory."""
    root = pathlib.Path(root).resolve()
    data = {'path': str(root), 'train': 'images/train', 'val': 'images/val', 'test': 'images/test',
            'names': {i: n for i, n in enumerate(names)}}
    data.update(extra or {})
    out = root / 'data.yaml'
    out.write_text(yaml.safe_dump(data, sort_keys=False))
    return out


def load_names(root: pathlib.Path) -> list[str]:
    """Class names of a YOLO dataset from data.yaml (list or {id: name}) or classes.txt."""
    root = pathlib.Path(root)
    data_yaml = root / 'data.yaml'
    if data_yaml.is_file():
        try:
            names = yaml.safe_load(data_yaml.read_text()).get('names')
        except (yaml.YAMLError, AttributeError) as err:
            raise DatasetError(f'{data_yaml}: unreadable: {err}') from err
        if isinstance(names, Mapping):
            return [str(names[k]) for k in sorted(names, key=int)]
        if isinstance(names, list):
            return [str(n) for n in names]
        raise DatasetError(f'{data_yaml}: no `names` list or mapping')
    classes = root / 'classes.txt'
    if classes.is_file():
        return [line.strip() for line in classes.read_text().splitlines() if line.strip()]
    raise DatasetError(f'{root}: neither data.yaml nor classes.txt names the classes')


def split_images(root: pathlib.Path, split: str) -> list[pathlib.Path]:
    folder = pathlib.Path(root) / 'images' / split
    return sorted(p for p in folder.glob('*') if p.suffix.lower() in IMAGE_SUFFIXES)


def label_path_for(image: pathlib.Path) -> pathlib.Path:
    """images/<split>/x.jpg -> labels/<split>/x.txt (the ultralytics convention)."""
    parts = list(image.parts)
    idx = len(parts) - 1 - parts[::-1].index('images')
    parts[idx] = 'labels'
    return pathlib.Path(*parts).with_suffix('.txt')


def dataset_hash(root: pathlib.Path) -> str:
    """sha256 over every image and label file (names and bytes), in a stable order: identifies training data.

    Only images and `.txt` labels count: ultralytics writes `labels/<split>.cache` on the first
    training run, which must not change the identity of the data.
    """
    root = pathlib.Path(root)
    digest = hashlib.sha256()
    for sub, suffixes in (('images', IMAGE_SUFFIXES), ('labels', ('.txt',))):
        for path in sorted((root / sub).rglob('*')):
            if path.is_file() and path.suffix.lower() in suffixes:
                digest.update(str(path.relative_to(root)).encode())
                digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def dataset_hash_many(roots) -> str:
    """The data hash of training on several datasets, in order (one dataset: its own hash)."""
    if len(roots) == 1:
        return dataset_hash(roots[0])
    digest = hashlib.sha256()
    for root in roots:
        digest.update(dataset_hash(root).encode())
    return digest.hexdigest()


# --- import of real labelled photos

def split_for(name: str, val_fraction: float, test_fraction: float) -> str:
    """Deterministic split of a file name (hash-based, stable across runs and machines)."""
    u = int(hashlib.sha256(name.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    if u < test_fraction:
        return 'test'
    if u < test_fraction + val_fraction:
        return 'val'
    return 'train'


def _map_class(name: str, mapping: Mapping[str, str | None], names: Sequence[str], where: str) -> int | None:
    if name in mapping:
        target = mapping[name]
        if target is None:
            return None
    elif name in names:
        target = name
    else:
        raise DatasetError(f'{where}: label {name!r} is neither a class ({", ".join(names)}) nor in the class mapping '
                           f'(map it to a class, or to null to drop it)')
    if target not in names:
        raise DatasetError(f'{where}: mapping sends {name!r} to {target!r}, which is not a class ({", ".join(names)})')
    return names.index(target)


def _image_size(path: pathlib.Path) -> tuple[int, int]:
    import cv2  # noqa: PLC0415
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise DatasetError(f'{path}: not a readable image')
    return img.shape[1], img.shape[0]


def _add_image(dst: pathlib.Path, image: pathlib.Path, boxes, width, height, split: str) -> None:
    out = dst / 'images' / split / image.name
    out.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(image, out)
    write_labels(dst / 'labels' / split / (image.stem + '.txt'), boxes, width, height)


def import_yolo(src: pathlib.Path, dst: pathlib.Path, mapping: Mapping[str, str | None], names: Sequence[str],
                val_fraction: float = 0.15, test_fraction: float = 0.15) -> dict[str, int]:
    """Copy a YOLO dataset into dst with its classes mapped onto `names`; returns images per split.

    A source with images/{train,val,test} keeps its splits; a flat images/ (or a
    folder of images next to .txt labels) is split by file-name hash.
    """
    src, dst = pathlib.Path(src), pathlib.Path(dst)
    src_names = load_names(src)
    counts = {s: 0 for s in SPLITS}
    pairs: list[tuple[pathlib.Path, pathlib.Path, str | None]] = []
    if any((src / 'images' / s).is_dir() for s in SPLITS):
        for s in SPLITS:
            pairs += [(img, label_path_for(img), s) for img in split_images(src, s)]
    else:
        folder = src / 'images' if (src / 'images').is_dir() else src
        for img in sorted(p for p in folder.glob('*') if p.suffix.lower() in IMAGE_SUFFIXES):
            label = (src / 'labels' / (img.stem + '.txt')) if (src / 'labels').is_dir() else img.with_suffix('.txt')
            pairs.append((img, label, None))
    if not pairs:
        raise DatasetError(f'{src}: no images found')
    for img, label, split in pairs:
        width, height = _image_size(img)
        boxes = []
        for cls, box in read_labels(label, width, height):
            if not 0 <= cls < len(src_names):
                raise DatasetError(f'{label}: class {cls} out of range 0..{len(src_names) - 1}')
            new = _map_class(src_names[cls], mapping, names, str(label))
            if new is not None:
                boxes.append((new, box))
        split = split or split_for(img.name, val_fraction, test_fraction)
        _add_image(dst, img, boxes, width, height, split)
        counts[split] += 1
    write_data_yaml(dst, names, extra={'imported_from': str(src)})
    return counts


def find_image(ref: str, images_dir: pathlib.Path) -> pathlib.Path:
    """An image named in an export ('/data/upload/3/1a2b3c4d-photo.jpg', a URL, a path) found in images_dir.

    Only the file name counts: exports name images by URLs of their storage (which may no longer
    exist), and the photos are wherever the user keeps them. Local-storage URLs name the file in
    their query ('/data/local-files/?d=photos/photo.jpg').
    """
    from urllib.parse import parse_qs, urlsplit  # noqa: PLC0415
    url = urlsplit(ref)
    path = parse_qs(url.query).get('d', [url.path])[0] if url.query else url.path
    base = path.rstrip('/').rsplit('/', 1)[-1]
    candidates = [base]
    if '-' in base:  # Label Studio prefixes uploads with an 8-hex id and a dash
        candidates.append(base.split('-', 1)[1])
    for name in candidates:
        path = images_dir / name
        if path.is_file():
            return path
    raise DatasetError(f'image {ref!r} of the export not found in {images_dir} (tried {", ".join(candidates)})')


def labelstudio_tasks(export: pathlib.Path) -> list[Mapping]:
    """The tasks of a Label Studio JSON or JSON-MIN export (a JSON list of objects)."""
    export = pathlib.Path(export)
    try:
        tasks = json.loads(export.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise DatasetError(f'{export}: not a readable JSON export: {err}') from err
    if not isinstance(tasks, list):
        raise DatasetError(f'{export}: expected a JSON list of tasks, got {type(tasks).__name__}')
    for n, task in enumerate(tasks):
        if not isinstance(task, Mapping):
            raise DatasetError(f'{export}: task {n} is not an object')
    return tasks


def labelstudio_annotated(task: Mapping) -> bool:
    """Whether a task has an annotation that was not cancelled ("skipped").

    A full JSON export lists every task, labelled or not; a task nobody labelled says
    nothing about its image. A JSON-MIN export holds annotated tasks only.
    """
    if 'data' not in task:
        return True
    return any(not a.get('was_cancelled') for a in task.get('annotations', []))


def labelstudio_rectangles(task: Mapping) -> tuple[str, list[Mapping]]:
    """(image reference, rectangle dicts with x/y/width/height/rectanglelabels[/original_width]) of one task.

    Full JSON: the last annotation that was not cancelled; JSON-MIN: every list of
    rectangles in the task (its key is the labelling config's control name, often `label`).
    """
    if 'data' in task:  # full JSON export
        data = task['data']
        ref = data.get('image') or next((v for v in data.values() if isinstance(v, str)), None)
        anns = [a for a in task.get('annotations', []) if not a.get('was_cancelled')]
        results = anns[-1].get('result', []) if anns else []
        rects = []
        for r in results:
            if r.get('type', 'rectanglelabels') != 'rectanglelabels':
                continue
            value = dict(r.get('value', {}))
            for key in ('original_width', 'original_height', 'image_rotation'):
                value.setdefault(key, r.get(key))
            rects.append(value)
        return ref, rects
    ref = task.get('image')  # JSON-MIN export
    return ref, [r for v in task.values() if isinstance(v, list)
                 for r in v if isinstance(r, Mapping) and 'rectanglelabels' in r]


def labelstudio_label(rect: Mapping, where: str) -> str:
    """The one label of a rectangle; rotated rectangles (or images rotated in the editor) are errors."""
    labels = rect.get('rectanglelabels') or []
    if len(labels) != 1:
        raise DatasetError(f'{where}: a rectangle needs exactly one label, got {labels}')
    if rect.get('rotation', 0):
        raise DatasetError(f'{where}: rotated rectangles are not supported (rotation {rect["rotation"]})')
    if rect.get('image_rotation', 0):
        raise DatasetError(f'{where}: the image was rotated in the editor (image_rotation '
                           f'{rect["image_rotation"]}); not supported')
    return str(labels[0])


def labelstudio_box(rect: Mapping, width: float, height: float, where: str) -> Box:
    """A rectangle's percent x/y/width/height as (x1, y1, x2, y2) pixels of a width x height image."""
    try:
        x, y, w, h = (float(rect[k]) for k in ('x', 'y', 'width', 'height'))
    except (KeyError, TypeError, ValueError):
        raise DatasetError(f'{where}: rectangle without numeric x/y/width/height') from None
    return x / 100 * width, y / 100 * height, (x + w) / 100 * width, (y + h) / 100 * height


def import_labelstudio(export: pathlib.Path, images_dir: pathlib.Path, dst: pathlib.Path,
                       mapping: Mapping[str, str | None], names: Sequence[str],
                       val_fraction: float = 0.15, test_fraction: float = 0.15) -> dict[str, int]:
    """Label Studio JSON export -> YOLO dataset under dst; returns images per split."""
    export = pathlib.Path(export)
    tasks = labelstudio_tasks(export)
    counts = {s: 0 for s in SPLITS}
    for n, task in enumerate(tasks):
        ref, rects = labelstudio_rectangles(task)
        if not ref:
            raise DatasetError(f'{export}: task {n} names no image')
        image = find_image(ref, pathlib.Path(images_dir))
        width, height = _image_size(image)
        boxes = []
        for r in rects:
            cls = _map_class(labelstudio_label(r, f'{export}: task {n}'), mapping, names, f'{export}: task {n}')
            if cls is None:
                continue
            boxes.append((cls, labelstudio_box(r, width, height, f'{export}: task {n}')))
        split = split_for(image.name, val_fraction, test_fraction)
        _add_image(pathlib.Path(dst), image, boxes, width, height, split)
        counts[split] += 1
    write_data_yaml(pathlib.Path(dst), names, extra={'imported_from': str(export)})
    return counts


def load_mapping(spec: str | None) -> dict[str, str | None]:
    """A class mapping from a YAML/JSON file path or inline `a=b,c=` (empty target = drop)."""
    if not spec:
        return {}
    path = pathlib.Path(spec)
    if path.is_file():
        data = yaml.safe_load(path.read_text())
        if not isinstance(data, Mapping):
            raise DatasetError(f'{path}: a class mapping must be a mapping of name -> class name (or null)')
        return {str(k): (None if v is None else str(v)) for k, v in data.items()}
    mapping: dict[str, str | None] = {}
    for item in spec.split(','):
        if '=' not in item:
            raise DatasetError(f'class mapping item {item!r} is not `their_name=class_name`')
        key, value = item.split('=', 1)
        mapping[key.strip()] = value.strip() or None
    return mapping
