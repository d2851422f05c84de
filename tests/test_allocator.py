"""resources.cpu_allocator (fewgan.allocator): what it changes, and that it changes it."""

from __future__ import annotations

import json
import platform
import subprocess
import sys

import pytest

from fewgan import allocator

_PROBE = r"""
import json, resource, sys, torch
from fewgan.allocator import configure_allocator
info = configure_allocator(sys.argv[1])
for _ in range(12):  # 64 MiB blocks, above glibc's mmap threshold; glibc needs a few to settle
    torch.empty(16 * 2**20).fill_(1.0)
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(10):
    torch.empty(16 * 2**20).fill_(1.0)
faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
print(json.dumps({"info": info, "faults": faults}))
"""


def _probe(mode: str) -> dict:
    out = subprocess.run([sys.executable, "-c", _PROBE, mode], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(platform.system() != "Linux" or not platform.libc_ver()[0] == "glibc",
                    reason="the retain setting acts on glibc malloc only")
def test_retain_stops_page_faulting_large_blocks_again():
    system, retain = _probe("system"), _probe("retain")
    assert system["info"] == {"mode": "system", "applied": False,
                              "detail": "system allocator settings left unchanged"}
    assert retain["info"]["applied"] is True and "M_MMAP_MAX=0" in retain["info"]["detail"]
    # system: every 64 MiB block is a fresh mmap, faulted in page by page (16,384 pages each time)
    assert system["faults"] > 10 * 16384 * 0.9
    # retain: the freed block is reused from the heap, no new faults
    assert retain["faults"] < system["faults"] / 20


def test_unknown_mode_names_the_key(monkeypatch):
    monkeypatch.setattr(allocator, "_applied", None)
    with pytest.raises(ValueError, match=r"resources\.cpu_allocator='fast'.*params/resources\.yaml"):
        allocator.configure_allocator("fast")


def test_preloaded_caching_allocator_is_left_alone(monkeypatch):
    monkeypatch.setattr(allocator, "_applied", None)
    monkeypatch.setenv("LD_PRELOAD", "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2")
    info = allocator.configure_allocator("retain")
    assert info["applied"] is False and "LD_PRELOAD" in info["detail"]


def test_params_schema_rejects_a_bad_allocator(tmp_path):
    import shutil

    from fewgan.params import ParamsError, resolve, validate

    root = tmp_path / "params"
    shutil.copytree("params", root)
    res = root / "resources.yaml"
    res.write_text(res.read_text().replace("cpu_allocator: retain", "cpu_allocator: jemalloc"))
    with pytest.raises(ParamsError, match=r"resources.yaml.*cpu_allocator"):
        validate(*resolve("smoke", root))


def test_asking_for_system_after_retain_reports_what_is_in_force(monkeypatch):
    monkeypatch.setattr(allocator, "_applied", {"mode": "retain", "applied": True, "detail": "glibc mallopt: x"})
    info = allocator.configure_allocator("system")
    assert info["mode"] == "retain" and info["applied"] is True and "kept" in info["detail"]
