"""Fixtures for the metrics tests: params with an isolated weights cache and no network."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

import fewgan.weights as W
from fewgan.weights import resolver

REPO = Path(__file__).resolve().parents[2]


def make_params(tmp_path: Path, *, fallback: bool = True, profile: str = "smoke") -> dict:
    ev = yaml.safe_load((REPO / "params" / "evaluation.yaml").read_text())
    ev["weights"]["cache_dir"] = str(tmp_path / "wcache")
    ev["weights"]["allow_untrained_fallback"] = fallback
    ev["weights"]["download"] = False
    ev["feature_cache_dir"] = str(tmp_path / "features")
    return {"profile": profile, "seed": 0, "device": "cpu", "evaluation": ev}


@pytest.fixture(autouse=True)
def _no_weights_from_outside(monkeypatch, tmp_path):
    monkeypatch.setenv("FEWGAN_WEIGHTS_DIR", str(tmp_path / "installed"))  # never the machine's installed files
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    for k in W.KNOWN.values():
        monkeypatch.delenv(k.env, raising=False)

    def no_network(url, dest):
        raise OSError(f"network disabled in tests ({url})")

    monkeypatch.setattr(resolver, "FETCH", no_network)


@pytest.fixture(scope="session")
def random_inception_file(tmp_path_factory) -> Path:
    """The seeded random-init Inception weights file (written once per test session)."""
    path = tmp_path_factory.mktemp("inception") / f"inception-v3-compat-randinit-seed{W.FALLBACK_INCEPTION_SEED}.pth"
    W.make_random_inception_file(path)
    return path


@pytest.fixture
def params(tmp_path, random_inception_file) -> dict:
    """smoke-profile params whose weights cache already holds the random Inception file."""
    p = make_params(tmp_path)
    cache = Path(p["evaluation"]["weights"]["cache_dir"])
    cache.mkdir(parents=True, exist_ok=True)
    (cache / random_inception_file.name).write_bytes(random_inception_file.read_bytes())
    return p
