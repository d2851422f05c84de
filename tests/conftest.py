"""Shared test fixtures."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
#: Real images for tests live beside the checkout, never inside it (see README).
SHARED_DATA = Path(os.environ.get("FEWGAN_SHARED_DATA", REPO.parent / "shared" / "data"))
#: pytest-xdist workers running side by side (`make test` runs 2): each gets an even share of the cores, since two
#: processes with 2 OpenMP threads each on 2 cores spin-wait on each other and run several times slower
WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
TORCH_THREADS = max(1, min(2, os.cpu_count() or 1) // WORKERS)
#: the modules that take longest (measured with --durations; README "Tests"), collected first so that under
#: `--dist loadfile --no-loadscope-reorder` the two workers start on them and the short modules fill in after
SLOW_MODULES = ("tests/test_workflow.py", "tests/test_dvc.py", "tests/metrics/test_verdicts.py",
                "tests/test_translation_workflow.py", "tests/test_bench_scripts.py", "tests/test_reliability.py",
                "tests/test_stages.py")


def pytest_collection_modifyitems(config, items):
    def rank(item) -> int:
        path = item.nodeid.split("::")[0]
        return SLOW_MODULES.index(path) if path in SLOW_MODULES else len(SLOW_MODULES)

    items.sort(key=rank)  # stable: the order within a module and among the other modules is kept


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    """Keep each phase's report on the item (item.rep_setup / rep_call / rep_teardown) for fixtures that
    act on the outcome (tests/test_reliability.py writes its doc only from a run where every case passed)."""
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


@pytest.fixture(autouse=True)
def _small_torch():
    """Deterministic, 2-core friendly defaults for every test."""
    torch.manual_seed(0)
    torch.set_num_threads(TORCH_THREADS)
    yield


@pytest.fixture
def one_torch_thread(_small_torch):
    """For tiny models: one thread is faster, and on a shared 2-core machine two OpenMP threads that
    spin-wait for each other cost several times the CPU time. Use with
    `pytestmark = pytest.mark.usefixtures("one_torch_thread")`."""
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(TORCH_THREADS)


@pytest.fixture
def shared_data() -> Path:
    """The folder of real images (../shared/data); tests that need it skip when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real test images not found at {SHARED_DATA} "
                    "(expected ../shared/data beside the checkout, or set FEWGAN_SHARED_DATA)")
    return SHARED_DATA
