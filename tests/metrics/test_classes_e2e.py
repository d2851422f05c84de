"""Class-conditional training and evaluation end to end, in-process, on a tiny 3-class folder at 32 px:
curate (sub-folder classes) -> split -> BigGAN train (3 iterations) -> evaluate per class -> invert with
the targets' classes; an unconditional model (DCGAN) on the same split records that it ignored them."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from fewgan.data import curate, split
from fewgan.data.loading import load_images
from fewgan.metrics import evaluate as E
from fewgan.metrics import fid as F
from fewgan.models.registry import load_snapshot
from fewgan.models.biggan.model import BigGAN
from fewgan.params import dataset_entry, model_cfg
from fewgan.train import loop

REPO = Path(__file__).resolve().parents[2]
RES = 32
DS = "toy3"
#: train + test images per class
COUNTS = {"cat": 6, "dog": 5, "wild": 6}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _folder(root):
    """root/<class>/*.png: a different base colour per class plus blocky noise (no duplicates)."""
    rng = np.random.default_rng(0)
    base = {"cat": (200, 60, 60), "dog": (60, 200, 60), "wild": (60, 60, 200)}
    for cls, n in COUNTS.items():
        (root / cls).mkdir(parents=True)
        for i in range(n):
            small = np.clip(np.array(base[cls]) + rng.integers(-50, 50, size=(6, 6, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(small, "RGB").resize((RES, RES), Image.NEAREST).save(root / cls / f"{cls}{i}.png")


@pytest.fixture(scope="module")
def classed(tmp_path_factory):
    """Curated + split 3-class data set (module scope: built once)."""
    root = tmp_path_factory.mktemp("classes")
    _folder(root / "src")
    entry = dataset_entry({"source": {"kind": "folder", "path": "src"}, "mode": "none",
                           "resolution": RES, "min_images": 4, "split": {"ratio": 0.6, "method": "rank"},
                           "classes": {"from": "subfolder"}, "dedup": {"exact": True, "phash_max_distance": None}})
    dparams = {"seed": 0, "datasets": {DS: entry}}
    cwd = os.getcwd()
    os.chdir(root)  # source.root 'repo' = the working directory
    try:
        curate.run(dparams, DS, root / "cur")
        ss = split.run(dparams, DS, root / "cur", root / "spl")
    finally:
        os.chdir(cwd)
    assert all(c["train"] >= 2 and c["test"] >= 2 for c in ss["classes"]["counts"].values()), ss["classes"]
    return {"root": root, "cur": root / "cur", "spl": root / "spl", "split_summary": ss}


def _params(base: dict, model: str, overrides: dict) -> dict:
    p = dict(base)
    train = yaml.safe_load((REPO / "params" / "train.yaml").read_text())
    train.update(iterations=3, batch_size=4, snapshot_every=3, sample_every=3, log_every=1, grid_size=3,
                 interpolation_steps=3, precision="fp32", channels_last=False)
    p.update(datasets={DS: {"resolution": RES}}, models={model: model_cfg(model, overrides)}, train=train)
    return p


BIGGAN_TINY = {"g_ch": 4, "d_ch": 4, "shared_dim": 8, "z_chunk": 4, "attention": 16}


def test_biggan_trains_conditionally_and_is_evaluated_per_class(classed, params, tmp_path, monkeypatch):
    p = _params(params, "biggan", BIGGAN_TINY)
    cell = tmp_path / "runs" / DS / "biggan"
    seen_interp = []
    real_sample = BigGAN.sample_latents

    def spy(self, n, *, generator=None, device=None, labels=None):
        if n == 2:  # the interpolation strip's two ends
            seen_interp.append(labels)
        return real_sample(self, n, generator=generator, device=device, labels=labels)

    monkeypatch.setattr(BigGAN, "sample_latents", spy)
    run = loop.run(p, DS, "biggan", classed["cur"], classed["spl"], cell / "train", tmp_path / "work", threads=1)
    monkeypatch.setattr(BigGAN, "sample_latents", real_sample)
    assert run["conditional"] is True and run["num_classes"] == 3 and run["model_describe"]["conditional"] is True
    assert run["classes"] == ["cat", "dog", "wild"] and run["class_index"] == {"cat": 0, "dog": 1, "wild": 2}
    counts = classed["split_summary"]["classes"]["counts"]
    assert run["train_images_per_class"] == {c: v["train"] for c, v in counts.items()}
    assert "class-conditional" in run["class_use"]
    assert len(seen_interp) == 1 and seen_interp[0].tolist() == [0, 0]  # both ends of one class
    on_disk = json.loads((cell / "train" / "run.json").read_text())
    assert on_disk["conditional"] is True and on_disk["class_index"] == run["class_index"]

    # the snapshot rebuilds a 3-class conditional generator
    snap = cell / "train" / "snapshots" / "snapshot_0000003.pt"
    gan, G, meta = load_snapshot(snap)
    assert gan.conditional and gan.num_classes == 3 and meta["num_classes"] == 3

    # evaluate (select = copy of the last snapshot, as `fewgan select` writes it)
    (cell / "select").mkdir(parents=True)
    shutil.copy(snap, cell / "select" / "generator.pt")
    ev = p["evaluation"]
    ev["fid"].update(n_fake=4, batch_size=4)
    ev["kid"].update(subsets=4)
    ev["swd"].update(patches_per_image=8, directions=16, repeats=2)
    ev["msssim"].update(pairs=2)
    m = E.run(p, DS, "biggan", cell / "select", classed["cur"], classed["spl"], cell / "evaluate", threads=1)
    assert m["conditional"] is True and m["class_index"] == {"cat": 0, "dog": 1, "wild": 2}
    assert set(m["per_class"]) == {"cat", "dog", "wild"} and m["per_class_protocol"]
    assert m["n_real_train"] == sum(v["train"] for v in counts.values())  # overall: all classes together
    for cls, row in m["per_class"].items():
        assert row["n_real_train"] == counts[cls]["train"] and row["n_real_test"] == counts[cls]["test"]
        for key in ("fid_train", "fid_test", "kid_train", "kid_test", "msssim_fake", "msssim_real"):
            assert row[key] is not None and np.isfinite(row[key]), (cls, key)
        assert row["fid_train"] > 0 and row["swd"]["mean"] > 0 and row["swd_real_floor"]["mean"] >= 0
        assert row["msssim_fake_pairs"] == 2 and row["fd_effnet_train"] > 0
        # precision/recall (k = 3) needs 4 real images of the class; a class with fewer says so
        if counts[cls]["train"] >= 4:
            assert row["notes"] == [] and 0 <= row["recall_effnet_train"] <= 1
        else:
            assert row["recall_effnet_train"] is None and row["notes"] == [
                f"{counts[cls]['train']} train image(s) of class {cls}: precision/recall against train not computed "
                "(needs >= 4)"]
    assert json.loads((cell / "evaluate" / "metrics.json").read_text())["per_class"] == m["per_class"]

    # per-class FID is the FID of class-c fakes against the class-c train images, recomputed independently
    extractor = F.build_extractor(p, "cpu")
    train, _, y = load_images(classed["cur"], classed["spl"], "train", with_labels=True)
    gan, G, _ = load_snapshot(cell / "select" / "generator.pt")
    for c, cls in ((0, "cat"), (2, "wild")):
        fakes = torch.cat(list(F.fake_batches(gan, G, 4, batch_size=4, seed=int(p["seed"]) + 1, label=c)))
        want = F.fid_kid(extractor(fakes), extractor(train[y == c]), p, seed=int(p["seed"]))
        assert m["per_class"][cls]["fid_train"] == pytest.approx(want["fid"], rel=1e-6)
        assert m["per_class"][cls]["kid_train"] == pytest.approx(want["kid"], rel=1e-6)
    # ... and class c's fakes really are class c: the latents' class column is c
    g = torch.Generator().manual_seed(0)
    z = gan.sample_latents(4, generator=g, labels=torch.full((4,), 1))
    assert z[:, -1].tolist() == [1.0] * 4

    # inversion: every target keeps its own class; only z is optimised
    import fewgan.invert.stage as IS

    seen = []
    real_start = BigGAN.inversion_start

    def start_spy(self, G, n, *, generator=None, device=None, labels=None):
        seen.append(None if labels is None else labels.tolist())
        return real_start(self, G, n, generator=generator, device=device, labels=labels)

    monkeypatch.setattr(BigGAN, "inversion_start", start_spy)
    monkeypatch.setattr(IS, "_build_lpips", lambda net, params, device: (
        lambda a, b: (a - b).abs().flatten(1).mean(1), {"fallback": "test stand-in", "note": "test stand-in"}))
    inv = yaml_invert()
    inv.update(recipe="backtrack", steps=2, snapshots="all", batch_size=100, max_images=0, include_train=0,
               log_every=1)
    p["invert"] = inv
    res = IS.run(p, DS, "biggan", cell / "train", classed["cur"], classed["spl"], cell / "invert", threads=1)
    _, tnames, ty = load_images(classed["cur"], classed["spl"], "test", with_labels=True)
    assert seen == [ty.tolist()]
    assert res["class_conditional"] is True
    index = {v: k for k, v in res["class_index"].items()}
    assert res["per_image"][0]["classes"] == [index[i] for i in ty.tolist()] and res["per_image"][0]["names"] == tnames

    # the report shows one row per class for this run
    from fewgan.report.collect import Cell, DatasetInfo
    from fewgan.report.stage import per_class_rows

    ds = DatasetInfo(name=DS, params={}, curated_summary=None, split_summary=classed["split_summary"], synthetic=False)
    rows = per_class_rows([Cell(DS, "biggan", m, cell / "evaluate" / "metrics.json")], [ds])
    assert [r["class"] for r in rows] == ["cat", "dog", "wild"]
    assert rows[1]["fid_train"] == pytest.approx(m["per_class"]["dog"]["fid_train"])


def yaml_invert() -> dict:
    return yaml.safe_load((REPO / "params" / "invert.yaml").read_text())


def test_unconditional_model_on_classed_data_records_conditional_false(classed, params, tmp_path):
    p = _params(params, "dcgan", {"z_dim": 8, "ngf": 4, "ndf": 4})
    p["train"].update(iterations=1, snapshot_every=1, sample_every=1)
    run = loop.run(p, DS, "dcgan", classed["cur"], classed["spl"], tmp_path / "train", tmp_path / "work", threads=1)
    assert run["conditional"] is False and run["model_describe"]["conditional"] is False
    assert run["num_classes"] == 3 and run["classes"] == ["cat", "dog", "wild"]
    assert "unconditional" in run["class_use"] and "ignored" in run["class_use"]
    gan, _, _ = load_snapshot(tmp_path / "train" / "snapshots" / "snapshot_0000001.pt")
    assert not gan.conditional and gan.sample_latents(2).shape == (2, gan.z_dim)
