from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))  # for fewgan_train_testkit under any import mode
import fewgan_train_testkit as kit  # noqa: E402
from fewgan.train import loop


@pytest.fixture(autouse=True)
def _tiny_model_only():
    kit.TinyGAN.hooks = {}
    yield
    kit.TinyGAN.hooks = {}


@pytest.fixture
def toy_data(monkeypatch):
    """Serve toy training images instead of fewgan.data.loading (tests of the loop, not of the loader)."""
    images, names = kit.toy_images()
    calls = []

    def fake_load(curated_dir, split_dir, resolution):
        calls.append((curated_dir, split_dir, resolution))
        return images.clone(), list(names)

    monkeypatch.setattr(loop, "load_train_images", fake_load)
    monkeypatch.setattr(loop, "load_train_labels", lambda split_dir, names: (None, {}))  # toy data: no classes
    return calls


@pytest.fixture
def dirs(tmp_path):
    return {"curated_dir": tmp_path / "curated", "split_dir": tmp_path / "split",
            "out_dir": tmp_path / "runs" / "toy" / "tiny_test" / "train", "work_dir": tmp_path / "work"}
