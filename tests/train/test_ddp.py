"""Multi-process training: torchrun, 2 CPU processes, gloo backend, the real loop on the tiny model."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import torch

from fewgan.io import torch_load

import pytest

pytestmark = pytest.mark.slow  # subprocess benchmarks / torchrun: not in `make test-fast`

HERE = Path(__file__).resolve().parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_gloo_ranks_end_with_identical_weights(tmp_path):
    # 10 images, global batch 4 -> 2 per rank from disjoint shards. Even steps: fakes made with a graph in
    # the D step and reused by the G step (FastGAN's way); odd steps: no_grad fakes in the D step, and the
    # G step runs G twice (StyleGAN2's path-length pass does).
    (tmp_path / "worker.json").write_text(json.dumps({
        "n_images": 10, "model_cfg": {"second_g_forward": True, "share_fakes": "alternate"},
        "train": {"iterations": 4, "snapshot_every": 2, "sample_every": 4, "log_every": 2}}))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(filter(None, [
        str(HERE), os.environ.get("PYTHONPATH", "")]))}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
           "--master_port", str(_free_port()), str(HERE / "ddp_worker.py"), str(tmp_path)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]

    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    # exact: gloo's all-reduce hands every rank the same reduced bytes (with 2 ranks a + b == b + a bit for bit), so
    # the ranks apply identical updates; any difference is a synchronisation bug
    for part in ("model", "G_ema"):
        assert r0[part].keys() == r1[part].keys()
        for k in r0[part]:
            assert torch.equal(r0[part][k], r1[part][k]), f"{part}.{k} differs between ranks"
    # the ranks really trained (weights moved) and saw different data (their D-phase logs differ)
    snap2 = torch_load(tmp_path / "work" / "snapshots" / "snapshot_0000002.pt")["G_ema"]
    assert any(not torch.equal(snap2[k], r0["G_ema"][k]) for k in snap2)
    # only rank 0 published; run.json records the world size; both ranks' RNG states are in the resume file
    run = json.loads((tmp_path / "out" / "run.json").read_text())
    assert run["world_size"] == 2 and run["snapshots"][-1]["iteration"] == 4
    resume = torch_load(tmp_path / "work" / "resume.pt")
    assert len(resume["rng"]) == 2
    assert not torch.equal(resume["rng"][0]["generators"]["augment"], resume["rng"][1]["generators"]["augment"])
