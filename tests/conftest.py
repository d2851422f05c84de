"""Shared test fixtures."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
#: Real images for tests live beside the checkout, never inside it (see README).
SHARED_DATA = Path(os.environ.get("FEWGAN_SHARED_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(autouse=True)
def _small_torch():
    """Deterministic, 2-core friendly defaults for every test."""
    torch.manual_seed(0)
    torch.set_num_threads(min(2, os.cpu_count() or 1))
    yield


@pytest.fixture
def one_torch_thread(_small_torch):
    """For tiny models: one thread is faster, and on a shared 2-core machine two OpenMP threads that
    spin-wait for each other cost several times the CPU time. Use with
    `pytestmark = pytest.mark.usefixtures("one_torch_thread")`."""
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture
def shared_data() -> Path:
    """The folder of real images (../shared/data); tests that need it skip when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real test images not found at {SHARED_DATA} "
                    "(expected ../shared/data beside the checkout, or set FEWGAN_SHARED_DATA)")
    return SHARED_DATA
