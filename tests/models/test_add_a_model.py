"""Adding a model is adding its files, with nothing else edited (docs/DESIGN.md, "Add a model").

The toy model in tests/models/toy_model/ (toy/spec.py, toy/model.py, toy.yaml) is copied into a copy of this
project as src/fewgan/models/toy/ and params/models/toy.yaml, plus a profile that puts it in the experiment.
Then: `fewgan params` validates its block and derives its stages from its capabilities (latents, not
invertible: no invert stage), Snakemake and DVC both plan its cell, and Snakemake trains it for 2 iterations
through the shared loop, with its own phases (D twice, then G)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
TOY = Path(__file__).resolve().parent / "toy_model"
BIN = Path(sys.executable).parent


def _copy_project(dst: Path) -> None:
    proc = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=REPO, capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip(f"{REPO} is not a git checkout: {proc.stderr.strip()}")
    for rel in proc.stdout.splitlines():
        src = REPO / rel
        if src.is_file() and not rel.startswith(("tests/", "reports/", "docs/")):
            (dst / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst / rel)


@pytest.mark.slow
def test_a_toy_model_is_registered_planned_by_both_engines_and_trained(tmp_path):
    proj = tmp_path / "proj"
    _copy_project(proj)
    # the model: its folder and its params file, nothing else edited
    shutil.copytree(TOY / "toy", proj / "src/fewgan/models/toy")
    shutil.copy2(TOY / "toy.yaml", proj / "params/models/toy.yaml")
    # a profile that puts it in the experiment, beside an invertible model
    profile = yaml.safe_load((proj / "params/profiles/smoke.yaml").read_text())
    profile["experiment"]["models"] = ["toy", "dcgan"]
    profile["train"].update(iterations=2, snapshot_every=2, sample_every=2, log_every=1)
    (proj / "params/profiles/toy.yaml").write_text(yaml.safe_dump(profile))

    env = {**os.environ, "PYTHONPATH": str(proj / "src"), "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
           "DVC_NO_ANALYTICS": "1", "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t"}

    def sh(*cmd: str, timeout: int = 600) -> str:
        p = subprocess.run(list(cmd), cwd=proj, env=env, capture_output=True, text=True, timeout=timeout)
        assert p.returncode == 0, f"{' '.join(cmd)} failed:\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}"
        return p.stdout + p.stderr

    # registered by discovery; its capabilities decide its stages
    sh("fewgan", "params", "--profile", "toy")
    active = yaml.safe_load((proj / "params/active.yaml").read_text())
    assert active["models"]["toy"]["d_steps"] == 2
    assert active["experiment"]["stage_models"]["invert"] == ["dcgan"]
    assert active["experiment"]["stage_models"]["score"] == ["toy", "dcgan"]

    # Snakemake plans it: train, score, select, evaluate for the toy cell; invert only for dcgan
    plan = sh("snakemake", "-n", "--cores", "2", "all", "-p")
    assert "runs/demo_faces/toy/s0/train" in plan and "runs/demo_faces/toy/s0/evaluate" in plan
    assert "runs/demo_faces/dcgan/s0/invert" in plan and "runs/demo_faces/toy/s0/invert" not in plan
    # DVC plans it from the same stage table (dvc.yaml is profile-independent: nothing to regenerate)
    sh("git", "init", "-q")
    sh("git", "add", "-A")
    sh("git", "commit", "-qm", "toy")
    stages = sh("dvc", "stage", "list")
    assert "train@demo_faces-toy-0" in stages and "evaluate@demo_faces-toy-0" in stages
    assert "invert@demo_faces-dcgan-0" in stages and "invert@demo_faces-toy-0" not in stages

    # trained for 2 iterations through the shared loop, with its own phases
    sh("snakemake", "--cores", "2", "runs/demo_faces/toy/s0/train", timeout=900)
    run = json.loads((proj / "runs/demo_faces/toy/s0/train/run.json").read_text())
    assert run["iterations"] == 2 and run["capabilities"] == ["latents"]
    assert run["phases"] == [{"name": "D", "optimizer": "D", "repeats": 2}, {"name": "G", "optimizer": "G", "repeats": 1}]
    rows = [json.loads(s) for s in (proj / "runs/demo_faces/toy/s0/train/log.jsonl").read_text().splitlines()]
    assert [r["iteration"] for r in rows] == [1, 2] and {"loss_D", "loss_G", "D/real", "D/fake"} <= rows[0].keys()
    assert run["params_G"] == 8 * 3 * 64 * 64 + 3 * 64 * 64  # Linear(z_dim 8 -> 3 x 64 x 64)
    # the snapshot rebuilds through the consumers' reader
    code = ("from fewgan.models.registry import load_snapshot; import torch; "
            "m, G, meta = load_snapshot('runs/demo_faces/toy/s0/train/snapshots/snapshot_0000002.pt'); "
            "print(type(m).__name__, tuple(m.generate(G, m.sample_latents(3)).shape), meta['iteration'])")
    assert sh(sys.executable, "-c", code).strip().splitlines()[-1] == "ToyGAN (3, 3, 64, 64) 2"
