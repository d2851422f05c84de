"""score / select / evaluate end to end on a tiny registered generator (offline, random-init Inception)."""

from __future__ import annotations

import csv
import json

import pytest
import torch
from torch import nn

import fewgan.data.loading as loading
from fewgan.io import atomic_torch_save, read_json, sha256_file
from fewgan.metrics import evaluate as E
from fewgan.metrics import score as SC
from fewgan.select import select
from fewgan.models.registry import SNAPSHOT_FORMAT, load_snapshot
from fewgan.models.base import GANModel, register_model, registered_models

RES = 32

if "_metrics_test_tiny" not in registered_models():
    @register_model("_metrics_test_tiny")
    class _Tiny(GANModel):
        def __init__(self, cfg, resolution, num_classes=0):
            super().__init__(cfg, resolution, num_classes)
            self.z_dim = 8
            self.G = nn.Sequential(nn.Linear(8, 3 * resolution * resolution), nn.Tanh(),
                                   nn.Unflatten(1, (3, resolution, resolution)))
            self.D = nn.Identity()


def _images(n, seed):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(n, 3, RES, RES, generator=g) * 255).to(torch.uint8)


@pytest.fixture
def run_dir(tmp_path, monkeypatch):
    sets = {"train": _images(6, 1), "test": _images(3, 2)}
    monkeypatch.setattr(loading, "load_images",
                        lambda curated, split, which, resolution=None: (sets[which], [f"{which}{i}.png" for i in range(len(sets[which]))]))
    snaps = tmp_path / "train" / "snapshots"
    for it, scale in ((1000, 0.1), (2000, 1.0)):
        torch.manual_seed(it)
        m = registered_models()["_metrics_test_tiny"]({}, RES)
        with torch.no_grad():
            m.G[0].weight.mul_(scale * 20)
        atomic_torch_save(snaps / f"snapshot_{it:07d}.pt", {
            "format": SNAPSHOT_FORMAT, "model": "_metrics_test_tiny", "model_cfg": {}, "resolution": RES,
            "iteration": it, "dataset": "toy", "G_ema": m.G.state_dict(), "fallbacks": []})
    return tmp_path


def test_score_select_evaluate(run_dir, params):
    ev = params["evaluation"]
    ev["fid"].update(n_fake=4, batch_size=4)
    ev["score"].update(n_fake=4)
    ev["swd"].update(patches_per_image=8, directions=16, repeats=2)
    ev["msssim"].update(pairs=3)
    res = SC.run(params, "toy", "_metrics_test_tiny", run_dir / "train", run_dir / "c", run_dir / "s",
                 run_dir / "score", threads=1)
    rows = list(csv.DictReader(open(run_dir / "score" / "scores.csv")))
    assert [int(r["iteration"]) for r in rows] == [1000, 2000]
    assert list(rows[0]) == SC.SCORE_COLUMNS
    assert all(float(r["fid"]) > 0 and r["n_fake"] == "4" and r["n_real"] == "6" for r in rows)
    assert res["kid_subset_size"] == 4 and res["settings"]["covariance"].startswith("N-1")
    fe = res["feature_extractor"]
    assert fe["standard"] is False and fe["label"] == "feature extractor: untrained, not comparable to published FID"
    assert any("random-init Inception" in f for f in res["fallbacks"])
    assert (run_dir / "score" / "fid_curve.png").stat().st_size > 1000
    assert res["real_features"]["cached"] is False

    # SWD per snapshot = an independent SWD of the same fakes (fake_batches is seeded) against the train split
    from fewgan.metrics import fid as F
    from fewgan.metrics import swd as S
    from fewgan.models.registry import load_snapshot as _load

    for r in rows:
        gan, G, _ = _load(run_dir / "train" / r["snapshot"])
        fakes = torch.cat(list(F.fake_batches(gan, G, 4, batch_size=4, seed=0)))
        reals = loading.load_images(None, None, "train")[0]
        want_swd = S.swd(reals, fakes, cfg=ev["swd"], seed=0)["mean"]
        # scores.csv stores 6 decimals (score.write_csv: f"{v:.6f}"), so the stored value is within 5e-7 of the
        # recomputed one, plus a small relative term for kernel nondeterminism (another CPU's float paths)
        assert abs(float(r["swd"]) - want_swd) <= 5e-7 + 1e-9 * abs(want_swd), (r["swd"], want_swd)
    assert res["selection"]["metric"] == "fd_effnet" and "fallback" in res["selection"]["why"]
    assert res["feature_extractors"]["effnet-lite0"]["standard"] is True
    assert all(float(r["fd_effnet"]) > 0 and float(r["kid_effnet_std"]) >= 0 for r in rows)

    # auto: the Inception here is untrained and the EfficientNet-Lite0 is the pinned PyPI file, so FD-EffNet
    # picks the snapshot (KID-EffNet breaks ties)
    best = select(params, run_dir / "score", run_dir / "train", run_dir / "select")
    want = min(rows, key=lambda r: (float(r["fd_effnet"]), float(r["kid_effnet"]), -int(r["iteration"])))
    assert best["iteration"] == int(want["iteration"]) and best["metric"] == "fd_effnet"
    assert best["rule"] == ("lowest FD-EffNet (Fréchet distance in EfficientNet-Lite0 ImageNet features; not FID), "
                            "then lowest KID-EffNet, then the later snapshot")
    assert "fallback" in best["why"] and "FD-EffNet decides" in best["why"]
    assert best["fd_effnet"] == pytest.approx(float(want["fd_effnet"]))
    # SWD selects when asked, as before
    ev["select"]["metric"] = "swd"
    best_swd = select(params, run_dir / "score", run_dir / "train", run_dir / "select_swd")
    want_swd = min(rows, key=lambda r: (float(r["swd"]), -int(r["iteration"])))
    assert best_swd["iteration"] == int(want_swd["iteration"])
    assert best_swd["rule"] == "lowest SWD×10³ (mean over pyramid levels), then the later snapshot"
    # asked for FID or KID explicitly with this untrained Inception: refused, naming the key and the way out
    for explicit in ("fid", "kid"):
        ev["select"]["metric"] = explicit
        with pytest.raises(ValueError, match=rf"evaluation.select.metric = {explicit} needs the standard "
                                             r"Inception weights.*auto or swd"):
            select(params, run_dir / "score", run_dir / "train", run_dir / "select_fid")
        assert not (run_dir / "select_fid").exists()
    # score refuses up front (before any snapshot costs time) a selection metric it would not compute
    ev["select"]["metric"] = "swd"
    ev["score"]["swd"] = False
    with pytest.raises(ValueError, match=r"selected by SWD .* but evaluation.score.swd is false"):
        SC.run(params, "toy", "_metrics_test_tiny", run_dir / "train", run_dir / "c", run_dir / "s",
               run_dir / "score_noswd", threads=1)
    assert not (run_dir / "score_noswd").exists()
    ev["score"]["swd"] = True
    ev["select"]["metric"] = "auto"
    gen = run_dir / "select" / "generator.pt"
    assert sha256_file(gen) == sha256_file(run_dir / "train" / want["snapshot"]) == best["sha256"]
    _, _, meta = load_snapshot(gen)
    assert meta["iteration"] == best["iteration"]
    assert json.loads((run_dir / "select" / "best.json").read_text())["feature_extractor"] == fe

    m = E.run(params, "toy", "_metrics_test_tiny", run_dir / "select", run_dir / "c", run_dir / "s",
              run_dir / "evaluate", threads=1)
    on_disk = read_json(run_dir / "evaluate" / "metrics.json")
    for key in ("fid_train", "fid_test", "kid_train", "kid_train_std", "kid_test", "kid_test_std", "swd",
                "swd_real_floor", "msssim_fake", "msssim_real", "n_fake", "n_real_train", "n_real_test",
                "feature_extractor", "fallbacks", "provenance"):
        assert key in on_disk, key
    assert m["n_real_train"] == 6 and m["n_real_test"] == 3 and m["kid_subset_size_test"] == 3
    assert m["fid_train"] > 0 and m["fid_test"] > 0
    # the EfficientNet-Lite0 metrics, labelled as not FID
    assert m["fd_effnet_train"] > 0 and m["fd_effnet_test"] > 0 and m["kid_effnet_train"] is not None
    assert m["effnet_features"] == "pretrained ImageNet features (EfficientNet-Lite0), not comparable to published FID"
    assert m["feature_extractors"]["effnet-lite0"]["label"] == m["effnet_features"]
    assert 0 <= m["precision_effnet_train"] <= 1 and 0 <= m["recall_effnet_train"] <= 1
    assert m["prc_effnet_settings"]["neighborhood"] == 3 and m["prc_effnet_settings"]["n_fake"] == 4
    summary = read_json(run_dir / "evaluate" / "summary.json")
    assert summary["effnet_features"] == m["effnet_features"] and summary["fd_effnet_train"] == m["fd_effnet_train"]
    assert set(m["swd"]["levels"]) == {"32", "16"} and m["swd"]["n_desc"] == 4 * 8
    assert m["msssim_fake_pairs"] == 3 and m["msssim_real_pairs"] == 3
    assert 0 <= m["msssim_fake"] <= 1 and 0 <= m["msssim_real"] <= 1
    assert m["n_generated"] == 6  # max(n_fake 4, 2 x 3 pairs)
    assert (run_dir / "evaluate" / "samples.png").is_file()


def _three_snapshots(tmp_path):
    """(train dir with snapshots 1-3, an empty score dir) for the select tests."""
    train = tmp_path / "train"
    (train / "snapshots").mkdir(parents=True)
    for it in (1, 2, 3):
        atomic_torch_save(train / "snapshots" / f"snapshot_{it:07d}.pt", {"format": SNAPSHOT_FORMAT, "iteration": it})
    sd = tmp_path / "score"
    sd.mkdir()
    return train, sd


def test_select_leaves_out_near_constant_snapshots_of_a_frechet_distance(tmp_path, params):
    """evaluation.select.min_spread: FD-EffNet's lowest value belongs to a snapshot whose fakes have 1% of the real
    feature variance (a near-constant set pays no covariance term); it is left out, the next one is selected, and
    best.json lists it. When every snapshot is below, all compete and best.json says the choice is collapsed."""
    train, sd = _three_snapshots(tmp_path)
    rows = [{"iteration": 1, "fid": 50.0, "kid": 5.0, "swd": 500.0, "fd_effnet": 176.6, "kid_effnet": 0.1,
             "snapshot": "snapshots/snapshot_0000001.pt"},
            {"iteration": 2, "fid": 60.0, "kid": 4.0, "swd": 100.0, "fd_effnet": 310.0, "kid_effnet": 0.4,
             "snapshot": "snapshots/snapshot_0000002.pt"},
            {"iteration": 3, "fid": 70.0, "kid": 3.0, "swd": 96.0, "fd_effnet": 340.0, "kid_effnet": 0.5,
             "snapshot": "snapshots/snapshot_0000003.pt"}]
    spreads = {1: 0.01, 2: 0.35, 3: 0.6}
    blocks = {"inception": {"standard": False, "label": "untrained"}, "effnet-lite0": {"standard": True}}

    def write(spread):
        SC.write_csv(sd / "scores.csv", rows, SC.SCORE_COLUMNS)
        jrows = [r | {"fd_effnet_spread": spread[r["iteration"]]} for r in rows]
        (sd / "scores.json").write_text(json.dumps({"rows": jrows, "feature_extractors": blocks}))

    write(spreads)
    params["evaluation"]["select"] = {"metric": "auto", "budget": None, "min_spread": 0.1}
    best = select(params, sd, train, tmp_path / "sel")
    assert best["metric"] == "fd_effnet" and best["iteration"] == 2
    assert best["spread_guard"]["excluded"] == [{"iteration": 1, "spread": 0.01}]
    assert "snapshots [1] left out" in best["why"] and "min_spread" in best["why"]
    params["evaluation"]["select"]["min_spread"] = 0  # off: the collapsed snapshot wins, as before the guard
    assert select(params, sd, train, tmp_path / "sel_off")["iteration"] == 1
    params["evaluation"]["select"]["min_spread"] = 0.9  # every snapshot below: all compete, and it says so
    best = select(params, sd, train, tmp_path / "sel_all")
    assert best["iteration"] == 1 and "all compete" in best["spread_guard"]["note"]
    params["evaluation"]["select"] = {"metric": "swd", "budget": None, "min_spread": 0.9}  # SWD has no spread
    best = select(params, sd, train, tmp_path / "sel_swd")
    assert best["iteration"] == 3 and best["spread_guard"] is None


def test_frechet_metrics_report_the_feature_spread_of_the_fakes():
    """<name>_spread = tr S_fake / tr S_real (N-1 covariances), against numpy; a constant set scores 0."""
    import numpy as np
    from types import SimpleNamespace

    from fewgan.metrics.registry import get_metric

    fd = get_metric("fd_effnet")
    g = torch.Generator().manual_seed(0)
    real, fake = torch.randn(40, 16, generator=g) * 2.0, torch.randn(30, 16, generator=g) * 0.5
    x = lambda f: SimpleNamespace(features=lambda ex: f,  # noqa: E731
                                  reals=SimpleNamespace(features=lambda split, ex: real))
    want = np.trace(np.cov(fake.double().numpy().T)) / np.trace(np.cov(real.double().numpy().T))
    assert fd._spread(x(fake)) == pytest.approx(want, rel=1e-9)  # float64 on both sides, same data
    assert fd._spread(x(fake[:1].repeat(30, 1))) == 0.0


def test_select_breaks_fid_ties_with_kid_and_refuses_escaping_paths(tmp_path, params):
    train, sd = _three_snapshots(tmp_path)
    rows = [{"iteration": 1, "fid": 10.0, "kid": 5.0, "snapshot": "snapshots/snapshot_0000001.pt"},
            {"iteration": 2, "fid": 9.0, "kid": 4.0, "snapshot": "snapshots/snapshot_0000002.pt"},
            {"iteration": 3, "fid": 9.0, "kid": 3.0, "snapshot": "snapshots/snapshot_0000003.pt"}]
    SC.write_csv(sd / "scores.csv", rows, SC.SCORE_COLUMNS)
    (sd / "scores.json").write_text(json.dumps({"rows": rows,
                                                "feature_extractor": {"standard": True, "label": "standard"}}))
    best = select(params, sd, train, tmp_path / "sel")  # auto with the standard Inception: FID
    assert best["metric"] == "fid" and "standard weights" in best["why"]
    assert best["iteration"] == 3 and best["tied_on_fid"] == [2, 3]
    assert (tmp_path / "sel" / "generator.pt").read_bytes() == (train / "snapshots" / "snapshot_0000003.pt").read_bytes()
    # a damaged chosen snapshot is refused before it is published as generator.pt
    (train / "snapshots" / "snapshot_0000003.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(Exception, match="snapshot_0000003.pt"):
        select(params, sd, train, tmp_path / "sel_bad")
    assert not (tmp_path / "sel_bad" / "generator.pt").exists()
    evil = [{"iteration": 1, "fid": 1.0, "kid": 1.0, "snapshot": "../../etc/passwd"}]
    SC.write_csv(sd / "scores.csv", evil, SC.SCORE_COLUMNS)
    (sd / "scores.json").write_text(json.dumps({"rows": evil, "feature_extractor": {"standard": True}}))
    with pytest.raises(ValueError, match="escapes"):
        select(params, sd, train, tmp_path / "sel2")
    with pytest.raises(FileNotFoundError, match="fewgan score"):
        select(params, tmp_path / "nowhere", train, tmp_path / "sel3")


def test_score_skips_metrics_of_untrained_networks_when_asked(run_dir, params):
    """evaluation.score.untrained: false - the untrained-fallback Inception's FID/KID (they can neither select
    nor rank) are not computed per snapshot; scores.json says which and why; selection and the metrics that
    were computed are unchanged."""
    ev = params["evaluation"]
    ev["fid"].update(n_fake=4, batch_size=4)
    ev["score"].update(n_fake=4)
    ev["swd"].update(patches_per_image=8, directions=16, repeats=2)
    full = SC.run(params, "toy", "_metrics_test_tiny", run_dir / "train", run_dir / "c", run_dir / "s",
                  run_dir / "full", threads=1)
    ev["score"]["untrained"] = False
    lean = SC.run(params, "toy", "_metrics_test_tiny", run_dir / "train", run_dir / "c", run_dir / "s",
                  run_dir / "lean", threads=1)
    assert full["not_scored"] == {}
    assert set(lean["not_scored"]) == {"fid", "kid"}
    assert all("untrained fallback" in why and "evaluation.score.untrained" in why for why in lean["not_scored"].values())
    rows = {k: list(csv.DictReader(open(run_dir / k / "scores.csv"))) for k in ("full", "lean")}
    assert list(rows["lean"][0]) == SC.SCORE_COLUMNS  # the same columns; the skipped ones are empty
    for a, b in zip(rows["full"], rows["lean"]):
        assert a["fid"] != "" and b["fid"] == "" and b["kid"] == ""
        for c in ("swd", "fd_effnet", "kid_effnet"):  # same fakes, same seeds: the same numbers
            assert b[c] == a[c], c
    assert lean["selection"]["metric"] == full["selection"]["metric"] == "fd_effnet"
    # scores.json's real-feature record: the Inception's when it is scored, else the first scored extractor's
    assert lean["real_features"]["extractor"] != full["real_features"]["extractor"]


def test_evaluate_skips_metrics_of_untrained_networks_when_asked(run_dir, params):
    """evaluation.evaluate.untrained: false - the untrained-fallback Inception's FID/KID are not computed (its
    network is never built); metrics.json says which and why; every other number is unchanged."""
    ev = params["evaluation"]
    ev["fid"].update(n_fake=4, batch_size=4)
    ev["score"].update(n_fake=4)
    ev["swd"].update(patches_per_image=8, directions=16, repeats=2)
    ev["msssim"].update(pairs=3)
    ev["bootstrap"].update(samples=5)
    SC.run(params, "toy", "_metrics_test_tiny", run_dir / "train", run_dir / "c", run_dir / "s", run_dir / "score",
           threads=1)
    select(params, run_dir / "score", run_dir / "train", run_dir / "select")
    full = E.run(params, "toy", "_metrics_test_tiny", run_dir / "select", run_dir / "c", run_dir / "s",
                 run_dir / "full", threads=1)
    from fewgan.metrics import fid as F

    built = []
    real_net = F.InceptionExtractor.net

    def spy(self):
        built.append(self)
        return real_net.fget(self)

    ev["evaluate"]["untrained"] = False
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(F.InceptionExtractor, "net", property(spy))
        lean = E.run(params, "toy", "_metrics_test_tiny", run_dir / "select", run_dir / "c", run_dir / "s",
                     run_dir / "lean", threads=1)
    assert built == []  # the Inception network was never built
    assert full["not_computed"] == {} and set(lean["not_computed"]) == {"fid", "kid"}
    assert all("untrained fallback" in why and "evaluation.evaluate.untrained" in why
               for why in lean["not_computed"].values())
    for key in ("fid_train", "fid_test", "kid_train", "kid_test"):
        assert full[key] is not None and key not in lean, key
    def values(v):  # a bootstrap block also records its seconds
        return {k: x for k, x in v.items() if k != "bootstrap"} if isinstance(v, dict) else v

    for key in ("swd", "fd_effnet_train", "kid_effnet_train", "precision_effnet_train", "msssim_fake"):
        assert values(lean[key]) == values(full[key]), key  # the same fakes and seeds: the same numbers
    assert lean["swd"]["bootstrap"]["samples"] == full["swd"]["bootstrap"]["samples"] == 5
    assert lean["swd"]["mean_ci"] == full["swd"]["mean_ci"] and lean["swd"]["mean_ci"] is not None
    summary = read_json(run_dir / "lean" / "summary.json")
    assert summary.get("fid_train") is None and summary["fd_effnet_train"] == full["fd_effnet_train"]
