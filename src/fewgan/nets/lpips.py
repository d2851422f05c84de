"""LPIPS (lpips 0.1.4) with its backbone resolved through `fewgan.weights`.

`lpips.LPIPS` normally downloads torchvision's ImageNet VGG16/AlexNet when it is built. fewgan instead
builds it with a random backbone (`pnet_rand=True`, so nothing is downloaded; the linear heads that ship
inside the lpips package are still loaded) and then copies the backbone weights resolved by
`fewgan.weights.resolve` (local path / torch hub cache / checked download) into it. When no backbone
weights can be had and the profile allows it (smoke/demo), the random backbone stays, deterministically
seeded, and the fallback text is returned so that callers record it in their `fallbacks`.
"""

from __future__ import annotations

import inspect
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from fewgan.io import sha256_file, torch_load
from fewgan.weights import resolve

#: lpips' own names for the backbones, and fewgan.weights' names for their pretrained files.
_NETS = {"vgg": ("vgg", "vgg16"), "vgg16": ("vgg", "vgg16"), "alex": ("alex", "alexnet"),
         "alexnet": ("alex", "alexnet")}
#: Seed of the random backbone used when no pretrained weights are available (fallback only).
RANDOM_BACKBONE_SEED = 0


class LPIPSDistance(nn.Module):
    """LPIPS distance between two batches in [-1, 1] (N, 3, H, W) -> (N,). Differentiable in its inputs."""

    def __init__(self, model: nn.Module, net: str):
        super().__init__()
        self.model = model
        self.net = net

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if x.shape != y.shape or x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f"LPIPS expects two (N, 3, H, W) batches of equal shape, got "
                             f"{tuple(x.shape)} and {tuple(y.shape)}")
        return self.model(x, y).reshape(x.shape[0])

    def to_target(self, y: torch.Tensor) -> "FixedTarget":
        """This distance against one fixed batch `y`, with y's backbone features computed once: an
        optimisation loop against constant targets (GAN inversion) then runs the backbone on its own images
        only. Values and gradients equal forward(x, y) (tests/test_lpips_weights.py)."""
        return FixedTarget(self, y)


class FixedTarget:
    """x -> LPIPS(x, y) per image (N,) for a fixed y, y's normalised backbone features kept. The arithmetic is
    lpips.LPIPS.forward's (v0.1 scaling, normalize_tensor, squared difference, linear heads, spatial average)
    with the package's own modules; only the target side is not recomputed."""

    def __init__(self, dist: LPIPSDistance, y: torch.Tensor):
        import lpips as _lpips

        m = dist.model
        if m.version != "0.1" or m.spatial or not m.lpips:
            raise ValueError("FixedTarget supports LPIPS v0.1 with linear heads, non-spatial (fewgan's build)")
        if y.dim() != 4 or y.shape[1] != 3:
            raise ValueError(f"LPIPS expects an (N, 3, H, W) target batch, got {tuple(y.shape)}")
        self.dist, self.shape, self._norm = dist, tuple(y.shape), _lpips.normalize_tensor
        with torch.no_grad():
            self.feats = [self._norm(f) for f in m.net.forward(m.scaling_layer(y))]

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if tuple(x.shape) != self.shape:
            raise ValueError(f"LPIPS against a fixed target of shape {self.shape}, got {tuple(x.shape)}")
        m = self.dist.model
        outs = m.net.forward(m.scaling_layer(x))
        val = 0
        for kk in range(m.L):
            diff = (self._norm(outs[kk]) - self.feats[kk]) ** 2
            val += m.lins[kk](diff).mean([2, 3], keepdim=True)
        return val.reshape(x.shape[0])


def _copy_backbone(model: nn.Module, state: dict[str, torch.Tensor], path: Path) -> None:
    """Copy torchvision `features.<i>.<param>` tensors into lpips' sliced backbone (model.net)."""
    by_index: dict[int, nn.Module] = {}
    for slice_name, sl in model.net.named_children():
        for child_name, child in sl.named_children():
            by_index[int(child_name)] = child
    wanted = {(i, pname) for i, m in by_index.items() for pname, _ in m.named_parameters(recurse=False)}
    copied = set()
    with torch.no_grad():
        for key, value in state.items():
            parts = key.split(".")
            if len(parts) != 3 or parts[0] != "features":
                continue  # classifier weights are not part of LPIPS
            idx, pname = int(parts[1]), parts[2]
            if idx not in by_index:
                continue  # layers after the last LPIPS tap (e.g. the final max-pool's neighbours)
            target = getattr(by_index[idx], pname)
            if target.shape != value.shape:
                raise ValueError(f"{path}: {key} has shape {tuple(value.shape)}, LPIPS expects "
                                 f"{tuple(target.shape)}; this is not the right backbone file")
            target.copy_(value)
            copied.add((idx, pname))
    missing = wanted - copied
    if missing:
        raise ValueError(f"{path}: backbone file lacks {len(missing)} tensors LPIPS needs "
                         f"(e.g. features.{sorted(missing)[0][0]}.{sorted(missing)[0][1]}); supply the "
                         "official torchvision file")


def _seeded_build(lp_net: str) -> nn.Module:
    """lpips.LPIPS with its backbone randomly initialised from RANDOM_BACKBONE_SEED (the caller's RNG untouched).
    torchvision initialises the whole VGG16, its unused 120M-parameter classifier too: about 1 s on 2 cores."""
    import lpips as _lpips

    with torch.random.fork_rng(devices=[]), warnings.catch_warnings():
        torch.manual_seed(RANDOM_BACKBONE_SEED)
        warnings.simplefilter("ignore")  # torchvision's "pretrained is deprecated" on the random build
        return _lpips.LPIPS(net=lp_net, pretrained=True, pnet_rand=True, verbose=False)


def random_backbone_file(lp_net: str, params: dict) -> Path:
    """Where the seeded random LPIPS is kept: named by every version its random numbers depend on."""
    from importlib.metadata import version

    import torchvision

    from fewgan.weights.resolver import cache_dir

    versions = f"torch{torch.__version__}-torchvision{torchvision.__version__}-lpips{version('lpips')}"
    return cache_dir(params) / f"lpips-{lp_net}-random-backbone-seed{RANDOM_BACKBONE_SEED}-{versions}.pth"


def random_backbone(lp_net: str, params: dict) -> nn.Module:
    """`_seeded_build(lp_net)`, read from its file in the weights cache after the first build: the module is
    made on the meta device (no initialisation) and every parameter and buffer loaded, so it equals the build
    tensor for tensor (tests/nets/test_lpips_random_backbone.py) in a fraction of the time. A damaged file is
    rebuilt and rewritten (logged)."""
    import logging

    import lpips as _lpips

    from fewgan.io import CheckpointError, atomic_torch_save

    path = random_backbone_file(lp_net, params)
    if path.is_file():
        try:
            state = torch_load(path)
            with torch.device("meta"), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                model = _lpips.LPIPS(net=lp_net, pretrained=True, pnet_rand=True, verbose=False)
            model = model.to_empty(device="cpu")
            model.load_state_dict(state, strict=True)
            return model
        except (CheckpointError, RuntimeError, KeyError) as exc:
            logging.getLogger(__name__).warning("%s: not usable (%s); building the seeded random LPIPS again",
                                                path, exc)
    model = _seeded_build(lp_net)
    try:
        atomic_torch_save(path, model.state_dict())
    except OSError as exc:  # a read-only cache costs the rebuild next time, nothing else
        logging.getLogger(__name__).warning("%s: not written (%s); the next build initialises LPIPS again", path, exc)
    return model


def build_lpips(net: str, params: dict, device: Any = "cpu") -> tuple[nn.Module, dict]:
    """LPIPS module (x, y in [-1, 1] -> per-image distance (N,)) and a description dict
    {"net", "backbone": WeightsInfo as dict, "fallback": str | None, "note": str | None, "linear_heads": {...}}."""
    if net not in _NETS:
        raise KeyError(f"unknown LPIPS net {net!r}; choose one of {', '.join(_NETS)}")
    import lpips as _lpips

    lp_net, weights_name = _NETS[net]
    info = resolve(weights_name, params)
    if info.path is None:  # the seeded random backbone stays: built once, then read back (random_backbone)
        model = random_backbone(lp_net, params)
    else:  # pretrained: its file replaces the random backbone
        model = _seeded_build(lp_net)
        _copy_backbone(model, torch_load(info.path, map_location="cpu"), info.path)
    heads = Path(inspect.getfile(_lpips.LPIPS)).parent / "weights" / "v0.1" / f"{lp_net}.pth"
    model = model.to(device).eval().requires_grad_(False)
    # note: why these LPIPS values are not comparable to published ones (untrained fallback, or a non-official
    # backbone file the user accepted with sha256: null); None for the pretrained backbone
    desc = {"net": lp_net, "backbone": info.as_dict(), "fallback": info.fallback,
            "note": None if info.standard else (info.fallback or info.label),
            "linear_heads": {"path": str(heads), "sha256": sha256_file(heads) if heads.is_file() else None}}
    return LPIPSDistance(model, lp_net).to(device).eval(), desc
