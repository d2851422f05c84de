"""Helpers shared by the translation models' tests (CycleGAN, pix2pix, NICE-GAN): CPU-sized configs, a fixed
two-domain batch, a few trainer steps, and a crash-and-resume run through the shared training loop."""

from __future__ import annotations

import json
from pathlib import Path

import torch
import yaml

from fewgan.io import torch_load
from fewgan.models.base import TrainContext

REPO = Path(__file__).resolve().parents[2]


def defaults(model: str) -> dict:
    return yaml.safe_load((REPO / "params" / "models" / f"{model}.yaml").read_text())


#: CPU-sized configs (every other key from params/models/<m>.yaml); lr raised so a few steps show learning
TINY = {
    "cyclegan": dict(ngf=4, ndf=4, n_blocks=1, pool_size=3, lr=1e-3),
    "pix2pix": dict(ngf=4, ndf=4, lr=1e-3),
    "nicegan": dict(ch=4, n_res=1, n_dis=6, lr=1e-3),
}
RES = {"cyclegan": 32, "pix2pix": 32, "nicegan": 64}


def tiny(model: str, **over) -> dict:
    return {**defaults(model), **TINY[model], **over}


def fixed_domains(res: int, n: int = 2, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Two smooth, different image batches in [-1, 1] (A: horizontal ramps, B: vertical ramps, random tints)."""
    g = torch.Generator().manual_seed(seed)
    ramp = torch.linspace(-1, 1, res)
    tint_a, tint_b = torch.rand(n, 3, 1, 1, generator=g), torch.rand(n, 3, 1, 1, generator=g)
    a = (ramp.view(1, 1, 1, res) * tint_a).expand(n, 3, res, res).contiguous()
    b = (ramp.view(1, 1, res, 1) * tint_b).expand(n, 3, res, res).contiguous()
    return a, b


def trainer_for(model: str, cfg: dict, res: int, iterations: int = 100, batch: int = 2):
    from fewgan.train.trainer import build_trainer

    torch.manual_seed(0)
    return build_trainer(model, cfg, res, TrainContext(batch_size=batch, iterations=iterations))


def run_steps(trainer, a: torch.Tensor, b: torch.Tensor, steps: int, start: int = 0) -> list[dict]:
    """`steps` iterations on the same (A, B) batch; the rows StepResult.row() gives."""
    rows = []
    for s in range(start, start + steps):
        res = trainer.step(s, reals=lambda j: (a, None, b), latents=lambda: None, augment=lambda x: x)
        assert res.finite(), res.losses
        rows.append(res.row())
    return rows


# ---- the shared loop ------------------------------------------------------------------------------------
def loop_params(model: str, cfg: dict, res: int, translation: dict, iterations: int = 4) -> dict:
    train = yaml.safe_load((REPO / "params" / "train.yaml").read_text())
    train.update(iterations=iterations, batch_size=2, snapshot_every=2, sample_every=2, log_every=1, grid_size=2,
                 interpolation_steps=3)
    weights = yaml.safe_load((REPO / "params" / "evaluation.yaml").read_text())["weights"]
    return {"seed": 0, "device": "cpu", "datasets": {"toy": {"resolution": res, "translation": translation}},
            "models": {model: dict(cfg)}, "train": train, "evaluation": {"weights": weights}}


def serve_toy_domains(monkeypatch, res: int, n_a: int = 5, n_b: int = 4):
    """Training images of two classes (cat: n_a, dog: n_b) in place of fewgan.data.loading."""
    from fewgan.train import loop

    g = torch.Generator().manual_seed(7)
    images = torch.randint(0, 256, (n_a + n_b, 3, res, res), generator=g, dtype=torch.uint8)
    names = [f"img{i:03d}.png" for i in range(n_a + n_b)]
    labels = torch.tensor([0] * n_a + [1] * n_b)
    monkeypatch.setattr(loop, "load_train_images", lambda c, s, r: (images.clone(), list(names)))
    monkeypatch.setattr(loop, "load_train_labels", lambda split_dir, n: (labels.clone(), {"cat": 0, "dog": 1}))
    return images, labels


def train_dirs(root: Path) -> dict:
    return {k: root / k for k in ("curated_dir", "split_dir", "out_dir", "work_dir")}


def assert_resume_is_bit_exact(tmp_path, monkeypatch, model_cls, model: str, params: dict, crash_phase: str,
                               crash_step: int = 2) -> dict:
    """An uninterrupted 4-iteration run, and one that crashes in iteration `crash_step` + 1 (after the snapshot
    at 2) and is re-run: the resume state (every network, the image pools, the optimisers) and the snapshots
    are equal bit for bit, and so are the logged losses. Returns the straight run's run.json."""
    from fewgan.train import loop

    straight = train_dirs(tmp_path / "straight")
    loop.train(params, "toy", model, threads=1, **straight)
    crashed = train_dirs(tmp_path / "crashed")
    original = getattr(model_cls, crash_phase)

    def crashing(self, nets, batch, step, augment):
        if step == crash_step:
            raise RuntimeError("injected crash")
        return original(self, nets, batch, step, augment)

    monkeypatch.setattr(model_cls, crash_phase, crashing)
    try:
        loop.train(params, "toy", model, threads=1, **crashed)
        raise AssertionError("the injected crash did not happen")
    except RuntimeError as e:
        assert "injected crash" in str(e)
    monkeypatch.setattr(model_cls, crash_phase, original)
    assert torch_load(crashed["work_dir"] / "resume.pt")["iteration"] == 2
    run = loop.train(params, "toy", model, threads=1, **crashed).run
    assert run["sessions_started_at"] == [0, 2]
    ra, rb = torch_load(straight["work_dir"] / "resume.pt"), torch_load(crashed["work_dir"] / "resume.pt")
    assert ra["model"].keys() == rb["model"].keys()
    for k in ra["model"]:
        assert torch.equal(ra["model"][k], rb["model"][k]), f"resume state {k} differs"
    for it in (2, 4):
        sa = torch_load(straight["out_dir"] / "snapshots" / f"snapshot_{it:07d}.pt")
        sb = torch_load(crashed["out_dir"] / "snapshots" / f"snapshot_{it:07d}.pt")
        for net in sa:
            if isinstance(sa[net], dict) and all(torch.is_tensor(v) for v in sa[net].values()) and sa[net]:
                assert all(torch.equal(sa[net][k], sb[net][k]) for k in sa[net]), f"snapshot {it} {net} differs"
    timing = ("wall_s", "it_per_s", "img_per_s", "s_per_kimg", "peak_mem_mb")
    read = lambda d: [{k: v for k, v in json.loads(s).items() if k not in timing}  # noqa: E731
                      for s in (d["out_dir"] / "log.jsonl").read_text().splitlines()]
    assert read(straight) == read(crashed)
    return json.loads((straight["out_dir"] / "run.json").read_text())
