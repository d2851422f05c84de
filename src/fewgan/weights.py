"""One resolver for every pretrained file fewgan uses (FID Inception, LPIPS backbones VGG16/AlexNet).

`resolve(name, params)` looks, in this order (`search_order` lists it), for:

1. a local file named by an environment variable (FEWGAN_INCEPTION_WEIGHTS, FEWGAN_VGG16_WEIGHTS,
   FEWGAN_ALEXNET_WEIGHTS);
2. a local file named in params (`evaluation.weights.<key>.path`);
3. the official file name in fewgan's install directory: `$FEWGAN_WEIGHTS_DIR`, else
   `$XDG_CACHE_HOME/fewgan/weights`, else `~/.cache/fewgan/weights` (where `fewgan weights install`
   puts files; one per user, shared by every checkout);
4. the official file name in torch hub's checkpoint cache (`torch.hub.get_dir()/checkpoints/`);
5. the official file name in the project's cache (`evaluation.weights.cache_dir`);
6. a download from the official URL into the project's cache, checked against the known sha256;
7. only when `evaluation.weights.allow_untrained_fallback` is true (smoke/demo profiles): a labelled
   fallback. For Inception this is a deterministic, seeded random-init weights FILE written once into
   the cache and then loaded through exactly the same code path as the real file; for the LPIPS
   backbones it is "no file" (the caller builds a random backbone, `pnet_rand=True`).

Paths named explicitly (1, 2) must exist and match; a file found in a directory (3-5) whose sha256 is
wrong is skipped with a warning. The answer (`WeightsInfo`) records where the weights came from and
their sha256; every metric value fewgan writes carries it. A file whose sha256 differs from the official
one is refused unless the params set `sha256: null` for it (then it is used and reported as non-standard).

Air-gapped nodes (`fewgan weights ...`, `register_cli`): `list` prints every file with its URL, sha256
and search locations; on a machine with internet, download the URLs (e.g. `curl -LO URL`); copy the files
over; `fewgan weights install FILE...` identifies each file by its sha256 (or checks it against
`--name`) and copies it atomically into the install directory; `check` says what each name resolves to.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

from fewgan.io import atomic_path, sha256_file, torch_load

log = logging.getLogger(__name__)

#: Label required on every number computed with an untrained feature extractor (DESIGN.md).
UNTRAINED_LABEL = "feature extractor: untrained, not comparable to published FID"


@dataclass(frozen=True)
class _Known:
    key: str            # key under params['evaluation']['weights']
    env: str            # environment variable that overrides the path
    filename: str       # official file name (torch hub cache uses the same name)
    url: str
    sha256: str
    nbytes: int | None


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
}
_ALIASES = {"inception": "inception-v3-compat", "vgg": "vgg16", "alex": "alexnet"}

#: What uses each file (for `fewgan weights list`).
USED_BY = {
    "inception-v3-compat": "FID/KID feature extractor (score, evaluate; torch-fidelity InceptionV3)",
    "vgg16": "LPIPS-VGG backbone (FastGAN reconstruction loss recon_loss: lpips_vgg; inversion, lpips_net: vgg)",
    "alexnet": "LPIPS-AlexNet backbone (only where lpips_net: alex is chosen)",
}
#: Environment variable naming the install directory (see `weights_dir`).
WEIGHTS_DIR_ENV = "FEWGAN_WEIGHTS_DIR"

#: Seed of the random-init Inception fallback file (fixed so every machine writes the same file).
FALLBACK_INCEPTION_SEED = 20210112


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


def canonical_name(name: str) -> str:
    name = _ALIASES.get(name, name)
    if name not in KNOWN:
        raise KeyError(f"unknown pretrained weights {name!r}; known: {', '.join(KNOWN)}")
    return name


def cache_dir(params: dict) -> Path:
    return Path(_weights_cfg(params).get("cache_dir") or "cache/weights")


def weights_dir() -> Path:
    """fewgan's install directory: $FEWGAN_WEIGHTS_DIR, else $XDG_CACHE_HOME/fewgan/weights, else
    ~/.cache/fewgan/weights. Searched by `resolve` before the torch hub and project caches."""
    env = os.environ.get(WEIGHTS_DIR_ENV)
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path("~/.cache").expanduser())
    return Path(base) / "fewgan" / "weights"


def _fallback_allowed(params: dict) -> bool:
    return bool(_weights_cfg(params).get("allow_untrained_fallback", False))


# ------------------------------------------------------------------------------------------------
# download
# ------------------------------------------------------------------------------------------------
def _urlopen_fetch(url: str, dest: Path, timeout: float = 60.0) -> None:
    """Copy `url` (https:// or file://) to `dest`."""
    with urllib.request.urlopen(url, timeout=timeout) as resp, open(dest, "wb") as f:  # noqa: S310
        shutil.copyfileobj(resp, f, length=1 << 20)


#: The function that fetches a URL to a local path; tests monkeypatch it.
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
    kind: str              # env | params | installed | torch-hub-cache | cache | download | fallback
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
        Location("installed", "installed", weights_dir() / k.filename,
                 note=f"${WEIGHTS_DIR_ENV} or ~/.cache/fewgan/weights (fewgan weights install)"),
    ]
    hub = _hub_checkpoints()
    if hub is not None:
        locs.append(Location("torch-hub-cache", "torch-hub-cache", hub / k.filename, note="torch.hub.get_dir()/checkpoints"))
    locs.append(Location("cache", "cache", cache_dir(params) / k.filename, note="evaluation.weights.cache_dir"))
    url = entry.get("url") or k.url
    dl = bool(wcfg.get("download", True) and url)
    locs.append(Location("download", f"download {url} ->", cache_dir(params) / k.filename, url=url, enabled=dl,
                         note="" if dl else "disabled (evaluation.weights.download: false)"))
    fb = _fallback_allowed(params)
    if name == "inception-v3-compat":
        fb_path, fb_note = fallback_inception_path(params), "seeded random-init Inception file (untrained)"
    else:
        fb_path, fb_note = None, "random-init backbone, LPIPS pnet_rand=True (untrained)"
    locs.append(Location("fallback", "fallback", fb_path, enabled=fb,
                         note=fb_note if fb else "not allowed (evaluation.weights.allow_untrained_fallback: false)"))
    return locs


def _how_to_fix(k: _Known, params: dict, url: str) -> str:
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
            label = f"{name}: official pretrained weights"
        else:  # user accepted a non-official file with sha256: null
            label = f"{name}: non-official weights file (sha256 {digest[:12]}), not comparable to published values"
        return WeightsInfo(name, path.resolve(), f"{where}:{path}", digest, standard, label)

    for loc in search_order(name, params):
        if loc.kind in ("env", "params"):
            if loc.path is not None:  # named explicitly: any problem is an error
                return found(loc.path, loc.where)
        elif loc.kind in ("installed", "torch-hub-cache", "cache"):
            if loc.path.is_file():
                try:
                    return found(loc.path, loc.where)
                except (WeightsChecksumError, ValueError) as exc:
                    log.warning("ignoring %s: %s", loc.path, exc)
                    tried.append(f"{loc.path}: {exc}")
            else:
                tried.append(f"{loc.path}: absent")
        elif loc.kind == "download":
            if not loc.enabled:
                tried.append("download disabled (evaluation.weights.download: false)")
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

    text = (f"{name} backbone weights unavailable ({'; '.join(tried)}): using a random-init backbone "
            f"(LPIPS pnet_rand=True; the linear heads shipped with lpips are still loaded); LPIPS values are "
            f"not comparable to published ones. To fix: {how}")
    log.warning(text)
    return WeightsInfo(name, None, "random-init (untrained backbone)", None, False,
                       f"{name}: untrained backbone, LPIPS not comparable to published values", text)


# ------------------------------------------------------------------------------------------------
# `fewgan weights list | check | install`: plain functions returning rows, and the CLI
# ------------------------------------------------------------------------------------------------
#: params used when no params file is given or found: the defaults of params/evaluation.yaml.
DEFAULT_PARAMS: dict[str, Any] = {"profile": None, "evaluation": {"weights": {
    "cache_dir": "cache/weights", "download": True, "allow_untrained_fallback": False}}}


def list_rows(params: dict | None = None) -> list[dict[str, Any]]:
    """One row per known file: name, what uses it, file name, URL, sha256, size and the places it is
    looked for, in resolution order (each with whether it is set and whether a file is there now)."""
    params = params or DEFAULT_PARAMS
    rows = []
    for name, k in KNOWN.items():
        locs = []
        for i, loc in enumerate(search_order(name, params), 1):
            if loc.kind in ("env", "params") and loc.path is None:
                state = "unset"
            elif loc.kind == "download":
                state = f"{loc.url} -> {loc.path}" if loc.enabled else "off"
            elif loc.kind == "fallback":
                state = "allowed" if loc.enabled else "not allowed"
            else:
                state = "exists" if loc.path.is_file() else "absent"
            locs.append({"order": i, "kind": loc.kind, "where": loc.where,
                         "path": str(loc.path) if loc.path is not None else None, "url": loc.url,
                         "enabled": loc.enabled, "state": state, "note": loc.note})
        rows.append({"name": name, "used_by": USED_BY.get(name, ""), "filename": k.filename, "url": k.url,
                     "sha256": k.sha256, "nbytes": k.nbytes, "env": k.env, "params_key": f"evaluation.weights.{k.key}",
                     "locations": locs})
    return rows


def check_one(name: str, params: dict | None = None) -> dict[str, Any]:
    """What `resolve(name, params)` would use, found without side effects (no download, no fallback
    file written, nothing loaded): status `ok` (the official file), `non-standard` (another file,
    accepted because params set sha256: null), `refused` (a named path is missing or has the wrong
    sha256: the run would stop), or `missing` (no local file; `note` says what the run would do)."""
    params = params or DEFAULT_PARAMS
    name = canonical_name(name)
    k = KNOWN[name]
    entry = _weights_cfg(params).get(k.key) or {}
    expected = entry["sha256"] if "sha256" in entry else k.sha256
    skipped: list[str] = []

    def row(status: str, loc: Location | None, digest: str | None, note: str) -> dict[str, Any]:
        if skipped:
            note = (note + "; " if note else "") + "skipped: " + "; ".join(skipped)
        return {"name": name, "status": status, "source": loc.where if loc else None,
                "path": str(loc.path) if loc and loc.path is not None else None, "sha256": digest,
                "standard": (digest == k.sha256) if digest else None, "note": note}

    locs = search_order(name, params)
    for loc in locs:
        if loc.kind in ("env", "params"):
            if loc.path is None:
                continue
            if not loc.path.is_file():
                return row("refused", loc, None, f"{loc.where} names {loc.path}, which is not a file: the run stops")
            digest = sha256_file(loc.path)
            if expected is not None and digest != expected:
                return row("refused", loc, digest, f"sha256 differs from the expected {expected}: the run stops "
                           f"(supply the official file, or set {f'evaluation.weights.{k.key}.sha256'}: null)")
            return row("ok" if digest == k.sha256 else "non-standard", loc, digest, "")
        if loc.kind in ("installed", "torch-hub-cache", "cache") and loc.path.is_file():
            digest = sha256_file(loc.path)
            if expected is not None and digest != expected:
                skipped.append(f"{loc.path} (sha256 {digest[:12]}..., expected {expected[:12]}...)")
                continue
            return row("ok" if digest == k.sha256 else "non-standard", loc, digest, "")
    dl = next(x for x in locs if x.kind == "download")
    fb = next(x for x in locs if x.kind == "fallback")
    then = f"use the untrained fallback ({fb.note})" if fb.enabled else "stop with an error"
    if dl.enabled:
        note = f"no local file: the run would download {dl.url} (needs internet) and, failing that, {then}"
    else:
        note = f"no local file and downloads are off: the run would {then}"
    return row("missing", None, None, note)


def check_rows(params: dict | None = None) -> list[dict[str, Any]]:
    return [check_one(name, params) for name in KNOWN]


class WeightsInstallError(ValueError):
    """A file given to `install` is not one of the known weights files (nothing was installed)."""


def _copy_hashing(src: Path, dst: Path) -> str:
    h = hashlib.sha256()
    with open(src, "rb") as fi, open(dst, "wb") as fo:
        while True:
            chunk = fi.read(1 << 20)
            if not chunk:
                break
            h.update(chunk)
            fo.write(chunk)
        fo.flush()
        os.fsync(fo.fileno())
    return h.hexdigest()


def identify(path: Path, name: str | None = None) -> tuple[str, str]:
    """(canonical name, sha256) of a weights file: found by its sha256 among KNOWN, or checked against
    `name`. Raises WeightsInstallError naming the file and both hashes when it does not match."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file; give the path of a downloaded weights file")
    digest = sha256_file(path)
    if name is not None:
        name = canonical_name(name)
        k = KNOWN[name]
        if digest != k.sha256:
            raise WeightsInstallError(
                f"{path}: sha256 {digest} does not match the {name} weights file {k.filename} "
                f"(sha256 {k.sha256}); not installed. The file is corrupt, truncated or another file: "
                f"download it again from {k.url}")
        return name, digest
    for n, k in KNOWN.items():
        if digest == k.sha256:
            return n, digest
    known = "; ".join(f"{n} {k.filename} sha256 {k.sha256}" for n, k in KNOWN.items())
    raise WeightsInstallError(
        f"{path}: sha256 {digest} matches none of the weights files fewgan knows ({known}); not installed. "
        "If it is a partial or corrupt download, fetch it again from the URL that `fewgan weights list` "
        "prints; to use a non-official file, name it in evaluation.weights.<key>.path with sha256: null instead")


def install(path: Path, name: str | None = None, dest_dir: Path | None = None) -> dict[str, Any]:
    """Verify `path` (by sha256, or against `name`) and copy it atomically to `dest_dir` (default
    `weights_dir()`) under its official file name, where `resolve` finds it. The copy is hashed
    again before it is moved into place, so a source that changes during the copy, or a short copy,
    leaves nothing behind. Returns a row: name, status (installed | already-installed | replaced),
    path, sha256."""
    path = Path(path)
    name, digest = identify(path, name)
    k = KNOWN[name]
    dest = Path(dest_dir) if dest_dir is not None else weights_dir()
    final = dest / k.filename
    status = "installed"
    if final.is_file():
        if sha256_file(final) == digest:
            return {"name": name, "file": str(path), "status": "already-installed", "path": str(final), "sha256": digest}
        status = "replaced"  # a corrupt or foreign file under the official name
    with atomic_path(final) as tmp:
        got = _copy_hashing(path, tmp)
        if got != digest:
            raise WeightsInstallError(f"{path}: changed while being copied (sha256 {digest} before, {got} "
                                      f"in the copy); not installed. Copy it again when it is complete")
    log.info("installed %s weights %s -> %s", name, path, final)
    return {"name": name, "file": str(path), "status": status, "path": str(final), "sha256": digest}


def install_rows(paths: list[Path], name: str | None = None, dest_dir: Path | None = None) -> list[dict[str, Any]]:
    """`install` for each file; a refused file gives a row with status `refused` and the reason."""
    if name is not None and len(paths) > 1:
        raise ValueError("--name applies to one FILE; install several files without --name (each is "
                         "identified by its sha256)")
    rows = []
    for p in paths:
        try:
            rows.append(install(Path(p), name, dest_dir))
        except (WeightsInstallError, FileNotFoundError, OSError) as exc:
            rows.append({"name": name, "file": str(p), "status": "refused", "path": None, "sha256": None,
                         "error": str(exc)})
    return rows


# ------------------------------------------------------------------------------------------------
def _table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(str(r[i])) for r in [header] + rows) for i in range(len(header))]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    lines = [fmt.format(*header).rstrip(), fmt.format(*["-" * w for w in widths]).rstrip()]
    lines += [fmt.format(*[str(c) for c in r]).rstrip() for r in rows]
    return "\n".join(lines)


def format_list(rows: list[dict[str, Any]]) -> str:
    out = []
    for r in rows:
        size = f", {r['nbytes']:,} bytes" if r["nbytes"] else ""
        out.append(f"{r['name']}: {r['used_by']}\n  file   {r['filename']}{size}\n  url    {r['url']}\n"
                   f"  sha256 {r['sha256']}\n  looked for, in order:")
        body = [[str(loc["order"]), loc["kind"], loc["path"] or loc["note"], loc["state"]] for loc in r["locations"]]
        for loc, b in zip(r["locations"], body):
            if loc["kind"] == "download":
                b[2] = loc["url"]
                b[3] = f"-> {loc['path']}" if loc["enabled"] else "off"
            elif loc["kind"] == "fallback":
                b[2] = loc["note"]
        out.append("\n".join("    " + ln for ln in _table(body, ["#", "kind", "location", "now"]).splitlines()))
    out.append(f"Install directory: ${WEIGHTS_DIR_ENV}, else ~/.cache/fewgan/weights (now {weights_dir()}).")
    return "\n\n".join(out)


def format_check(rows: list[dict[str, Any]]) -> str:
    body = [[r["name"], r["status"], {True: "yes", False: "no", None: "-"}[r["standard"]],
             f"{r['source']}: {r['path']}" if r["source"] else "-",
             (r["sha256"] or "-")[:16], r["note"]] for r in rows]
    return _table(body, ["name", "status", "standard", "from", "sha256", "note"])


def format_install(rows: list[dict[str, Any]]) -> str:
    body = [[r["file"], r["name"] or "-", r["status"], r["path"] or r.get("error", "")] for r in rows]
    return _table(body, ["file", "name", "status", "installed as / reason"])


def _cli_params(path: str | None) -> tuple[dict, str]:
    """The params the CLI resolves with: the given file, else params/active.yaml when present, else the
    defaults (DEFAULT_PARAMS)."""
    from fewgan.io import read_yaml

    p = Path(path) if path else Path("params/active.yaml")
    if p.is_file():
        params = read_yaml(p)
        if not isinstance(params, dict) or not isinstance(params.get("evaluation"), dict):
            raise ValueError(f"{p}: no 'evaluation' section; pass a resolved params file "
                             "(fewgan params --profile NAME writes params/active.yaml)")
        return params, f"{p} (profile {params.get('profile')})"
    if path:
        raise FileNotFoundError(f"{p}: params file not found")
    return DEFAULT_PARAMS, "defaults (no params/active.yaml here)"


def _cmd_weights(args) -> None:
    import json
    import sys

    if args.weights_command == "install":
        try:
            rows = install_rows([Path(f) for f in args.files], args.name)
        except (ValueError, KeyError) as exc:  # --name with several files, unknown --name
            print(f"fewgan weights install: error: {exc}", file=sys.stderr)
            raise SystemExit(2) from None
        print(json.dumps(rows, indent=2) if args.json else format_install(rows))
        bad = [r for r in rows if r["status"] == "refused"]
        for r in bad:
            print(f"fewgan weights install: refused {r['file']}: {r['error']}", file=sys.stderr)
        if bad:
            raise SystemExit(1)
        return
    params, origin = _cli_params(args.params)
    if args.weights_command == "list":
        rows = list_rows(params)
        print(json.dumps(rows, indent=2) if args.json else f"params: {origin}\n\n" + format_list(rows))
        return
    rows = check_rows(params)
    print(json.dumps(rows, indent=2) if args.json else f"params: {origin}\n" + format_check(rows))
    if args.strict and any(r["status"] != "ok" for r in rows):
        raise SystemExit(1)


def register_cli(subparsers) -> None:
    """Add `weights {list,check,install}` to an argparse subparsers object (handler in `fn`)."""
    p = subparsers.add_parser(
        "weights", help="list, check or install the pretrained weights files (for air-gapped nodes)",
        description="Pretrained weights files fewgan uses. On a machine with internet: `fewgan weights list` "
                    "and download the URLs; on the compute node: `fewgan weights install FILE...`, then "
                    "`fewgan weights check`.")
    p.set_defaults(fn=_cmd_weights)
    wsub = p.add_subparsers(dest="weights_command", required=True, metavar="{list,check,install}")
    for cmd, help_ in (("list", "every file: what uses it, URL, sha256, where it is looked for (in order)"),
                       ("check", "what each file resolves to now, and whether it is the standard file")):
        q = wsub.add_parser(cmd, help=help_, description=help_)
        q.add_argument("--params", default=None,
                       help="resolved params file (default: params/active.yaml if present, else built-in defaults)")
        q.add_argument("--json", action="store_true", help="print the rows as JSON")
        if cmd == "check":
            q.add_argument("--strict", action="store_true", help="exit 1 unless every file is the standard one")
    q = wsub.add_parser("install", help="verify files by sha256 and copy them where fewgan finds them",
                        description="Verify each FILE's sha256 against the known weights files and copy it "
                                    f"atomically into ${WEIGHTS_DIR_ENV} (default ~/.cache/fewgan/weights) "
                                    "under its official name. A mismatch is refused and nothing is written.")
    q.add_argument("files", nargs="+", metavar="FILE")
    q.add_argument("--name", default=None, help=f"the file it must be ({', '.join(KNOWN)}); default: by sha256")
    q.add_argument("--json", action="store_true", help="print the rows as JSON")
