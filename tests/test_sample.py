"""`fewgan sample` (fewgan.sample): reproducible images of a run's selected generator, truncation, class,
interpolation, FastGAN style mixing, provenance, and refusals of snapshots that do not belong to the run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from PIL import Image

from fewgan.cli import main
from fewgan.io import atomic_write_json, read_yaml, sha256_file
from fewgan.models.registry import build_model
from fewgan.train.checkpoint import write_snapshot

pytestmark = pytest.mark.usefixtures("one_torch_thread")
REPO = Path(__file__).resolve().parents[1]
SMALL = {"fastgan": {"ngf": 8, "ndf": 8, "nz": 16, "dec_width": 8, "recon_loss": "l1"},
         "biggan": {"g_ch": 4, "d_ch": 4, "attention": None},
         "stylegan2": {"z_dim": 16, "w_dim": 16, "mapping_layers": 1, "channel_base": 256, "channel_max": 16}}


def _cfg(model: str) -> dict:
    return {**read_yaml(REPO / "params" / "models" / f"{model}.yaml"), **SMALL[model]}


def make_run(root: Path, model: str, res: int = 64, num_classes: int = 0, dataset: str = "faces") -> Path:
    """runs/<dataset>/<model>/s0 with run.json, two snapshots and the selected one (best.json, generator.pt)."""
    torch.manual_seed(0)
    cfg = _cfg(model)
    gan = build_model(model, cfg, res, num_classes)
    run = root / "runs" / dataset / model / "s0"
    nets = {**{f"{n}_ema": gan.network(n).state_dict() for n in gan.ema_networks},
            **{n: gan.network(n).state_dict() for n in gan.snapshot_networks}}
    for it in (100, 200):
        write_snapshot(run / "train" / "snapshots" / f"snapshot_{it:07d}.pt", model=model, model_cfg=cfg,
                       resolution=res, num_classes=num_classes, iteration=it, dataset=dataset, networks=nets,
                       fallbacks=["test fallback"])
    classes = {f"c{i}": i for i in range(num_classes)}
    atomic_write_json(run / "train" / "run.json", {"dataset": dataset, "model": model, "resolution": res,
                                                   "class_index": classes, "class_use": "test"})
    gen = run / "select" / "generator.pt"
    gen.parent.mkdir(parents=True)
    gen.write_bytes((run / "train" / "snapshots" / "snapshot_0000200.pt").read_bytes())
    atomic_write_json(run / "select" / "best.json", {"iteration": 200, "sha256": sha256_file(gen)})
    return run


def _sample(tmp_path, monkeypatch, *args) -> int:
    monkeypatch.chdir(tmp_path)
    return main(["sample", *map(str, args)])


def _png(path: Path) -> torch.Tensor:
    import numpy as np

    return torch.from_numpy(np.array(Image.open(path).convert("RGB")))


def test_same_seed_same_images_and_provenance(tmp_path, monkeypatch):
    make_run(tmp_path, "fastgan")
    run = "runs/faces/fastgan/s0"
    assert _sample(tmp_path, monkeypatch, run, "-n", 6, "--seed", 3, "--format", "both", "--out", "a") == 0
    assert _sample(tmp_path, monkeypatch, run, "-n", 6, "--seed", 3, "--out", "b") == 0
    assert _sample(tmp_path, monkeypatch, run, "-n", 6, "--seed", 4, "--out", "c") == 0
    a, b, c = (_png(tmp_path / d / "samples.png") for d in "abc")
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert a.shape == (3 * 64, 2 * 64, 3)                       # 6 images, round(sqrt(6)) = 2 per row
    pngs = sorted((tmp_path / "a" / "images").glob("*.png"))
    assert len(pngs) == 6 and torch.equal(_png(pngs[0]), a[:64, :64])
    meta = json.loads((tmp_path / "a" / "sample.json").read_text())
    gen = tmp_path / run / "select" / "generator.pt"
    assert meta["snapshot"] == {"path": str(Path(run) / "select" / "generator.pt"), "iteration": 200,
                                "sha256": sha256_file(gen)}
    assert meta["seed"] == 3 and meta["psi"] is None and meta["model"] == "fastgan"
    assert meta["fallbacks"] == ["test fallback"] and meta["command"][:3] == ["fewgan", "sample", run]


def test_training_snapshot_by_iteration_and_interpolation_gif(tmp_path, monkeypatch):
    make_run(tmp_path, "fastgan")
    run = "runs/faces/fastgan/s0"
    assert _sample(tmp_path, monkeypatch, run, "-n", 0, "--iteration", 100, "--interpolate", 2, "--steps", 5,
                   "--gif") == 0
    out = tmp_path / run / "sample"
    strip = _png(out / "interpolation.png")
    assert strip.shape == (2 * 64, 5 * 64, 3)
    gif = Image.open(out / "interpolation.gif")
    assert gif.n_frames == 5 + 3                                  # there and back
    meta = json.loads((out / "sample.json").read_text())
    assert meta["snapshot"]["iteration"] == 100 and "samples.png" not in meta["files"]


def test_fastgan_style_mixing_takes_the_style_from_the_second_latent(tmp_path, monkeypatch):
    run = make_run(tmp_path, "fastgan")     # 64 px: one excitation (64 <- 4 px)
    assert _sample(tmp_path, monkeypatch, "runs/faces/fastgan/s0", "-n", 0, "--mix", 3) == 0
    g = _png(run / "sample" / "mixing.png")
    assert g.shape == (4 * 64, 4 * 64, 3)
    assert (g[:64, :64] == 255).all()                            # the blank corner
    # on the network (an untrained G gives near-grey pixels, so compare its float outputs): the style latent
    # feeds only the excitations - the same latent twice is the plain image, another latent changes it
    from fewgan.models.registry import load_snapshot

    gan, G, _ = load_snapshot(run / "select" / "generator.pt")
    z, z2 = torch.randn(2, gan.z_dim), torch.randn(2, gan.z_dim)

    def seeded(fn, *a):
        torch.manual_seed(0)
        return fn(G, *a)

    plain = seeded(gan.generate, z)
    assert torch.allclose(seeded(gan.generate_mixed, z, z), plain, rtol=1e-5, atol=1e-9)
    mixed = seeded(gan.generate_mixed, z, z2)
    scale = plain.abs().max()
    assert (mixed - plain).abs().max() > 1e-3 * scale
    # the content latent still matters: another content with the same style differs
    assert (seeded(gan.generate_mixed, z2, z2) - mixed).abs().max() > 1e-3 * scale


def test_truncation_and_class_where_the_model_has_them(tmp_path, monkeypatch):
    make_run(tmp_path, "biggan", num_classes=3)
    run = "runs/faces/biggan/s0"
    assert _sample(tmp_path, monkeypatch, run, "-n", 4, "--class", "c2", "--psi", 0.5, "--out", "t") == 0
    meta = json.loads((tmp_path / "t" / "sample.json").read_text())
    assert meta["class_index"] == 2 and meta["psi"] == 0.5 and "truncated normal" in meta["psi_meaning"]
    from fewgan.sample import Sampler, load, find_generator

    gan, G, _ = load(find_generator(tmp_path / run))
    s = Sampler(gan, G, 0, psi=0.5, label=2)
    z = s.latents(64)
    assert z[:, :-1].abs().max() <= 0.5 and (z[:, -1] == 2).all()
    # unconditional models refuse a class, models without truncation refuse psi
    make_run(tmp_path, "fastgan")
    assert _sample(tmp_path, monkeypatch, "runs/faces/fastgan/s0", "--class", "c1") == 3
    assert _sample(tmp_path, monkeypatch, "runs/faces/fastgan/s0", "--psi", 0.7) == 3
    assert _sample(tmp_path, monkeypatch, run, "--class", "nope") == 3


def test_stylegan2_truncation_psi_zero_gives_one_image(tmp_path, monkeypatch):
    make_run(tmp_path, "stylegan2")
    from fewgan.sample import Sampler, find_generator, load

    gan, G, _ = load(find_generator(tmp_path / "runs/faces/stylegan2/s0"))
    imgs = Sampler(gan, G, 0, psi=0.0).images(Sampler(gan, G, 0, psi=0.0).latents(3))
    assert torch.equal(imgs[0], imgs[1]) and torch.equal(imgs[1], imgs[2])
    free = Sampler(gan, G, 0).images(Sampler(gan, G, 0).latents(3))
    assert not torch.equal(free[0], free[1])


def test_refuses_snapshots_of_another_run_and_replaced_files(tmp_path, monkeypatch, capsys):
    run = make_run(tmp_path, "fastgan")
    other = make_run(tmp_path, "fastgan", dataset="cats")
    # a snapshot copied in from another run: run.json says faces, the snapshot says cats
    (run / "train" / "snapshots" / "snapshot_0000100.pt").write_bytes(
        (other / "train" / "snapshots" / "snapshot_0000100.pt").read_bytes())
    assert _sample(tmp_path, monkeypatch, "runs/faces/fastgan/s0", "--iteration", 100) == 3
    err = capsys.readouterr().err
    assert "does not match" in err and "run.json" in err and "'cats'" in err
    # generator.pt replaced after selection
    (run / "select" / "generator.pt").write_bytes((other / "select" / "generator.pt").read_bytes() + b"")
    (run / "select" / "generator.pt").write_bytes(b"x" + (other / "select" / "generator.pt").read_bytes()[1:])
    assert _sample(tmp_path, monkeypatch, "runs/faces/fastgan/s0") == 3
    assert "re-run `fewgan select`" in capsys.readouterr().err
    # a missing iteration lists what exists; an output path outside the project is refused
    assert _sample(tmp_path, monkeypatch, "runs/faces/fastgan/s0", "--iteration", 7) == 3
    assert "snapshot_0000100.pt, snapshot_0000200.pt" in capsys.readouterr().err
    assert _sample(tmp_path, monkeypatch, "runs/faces/fastgan/s0", "--out", "../x") == 2



def test_psi_sweep_trades_diversity_for_fidelity(tmp_path, monkeypatch):
    import csv

    import fewgan.metrics.common as common

    make_run(tmp_path, "stylegan2")
    (tmp_path / "data" / "curated" / "faces").mkdir(parents=True)
    (tmp_path / "data" / "splits" / "faces").mkdir(parents=True)
    reals = (torch.rand(12, 3, 64, 64, generator=torch.Generator().manual_seed(1)) * 255).to(torch.uint8)
    seen = []
    monkeypatch.setattr(common, "load_split_images",
                        lambda c, s, which: seen.append((str(c), str(s), which)) or (reals, [f"{i}.png" for i in range(12)]))
    assert _sample(tmp_path, monkeypatch, "runs/faces/stylegan2/s0", "-n", 0, "--psi-sweep", "1,0.5,0",
                   "--sweep-n", 8) == 0
    assert seen == [(str(Path("data/curated/faces")), str(Path("data/splits/faces")), "train")]
    out = tmp_path / "runs/faces/stylegan2/s0/sample"
    rows = list(csv.DictReader(open(out / "truncation.csv")))
    assert [float(r["psi"]) for r in rows] == [1.0, 0.5, 0.0]
    ms = [float(r["msssim_fake"]) for r in rows]
    assert ms[2] == pytest.approx(1.0, abs=1e-6) and ms[0] < ms[2]     # psi 0: one image for every latent
    assert all(float(r["swd_mean"]) > 0 for r in rows)
    assert Image.open(out / "truncation.png").size[0] > 300
    meta = json.loads((out / "sample.json").read_text())
    assert "truncation.png" in meta["files"] and meta["psi_sweep_note"] is None
    # without the dataset's folders the SWD is left out, said in sample.json (not silently)
    monkeypatch.chdir(tmp_path)
    import shutil

    shutil.rmtree(tmp_path / "data")
    assert _sample(tmp_path, monkeypatch, "runs/faces/stylegan2/s0", "-n", 0, "--psi-sweep", "1,0",
                   "--sweep-n", 4, "--out", "nodata") == 0
    meta = json.loads((tmp_path / "nodata" / "sample.json").read_text())
    assert "SWD not computed" in meta["psi_sweep_note"]
    assert all(r["swd_mean"] == "" for r in csv.DictReader(open(tmp_path / "nodata" / "truncation.csv")))
