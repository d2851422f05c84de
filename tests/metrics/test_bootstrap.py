"""Percentile bootstrap intervals of evaluate's metrics (fewgan.metrics.bootstrap, issue 19 item 2):
coverage on synthetic data with a known answer, exactness of the resampled statistics, determinism, and
evaluate/summary/report keys (the point estimates do not move when the bootstrap is on)."""

from __future__ import annotations

import math
import shutil

import numpy as np
import pytest
import torch

from fewgan.io import read_json
from fewgan.metrics import bootstrap as B
from fewgan.metrics import evaluate as E
from fewgan.metrics import fid as F
from fewgan.metrics import swd as S
from fewgan.metrics.msssim import PairStream

from .test_stages import run_dir  # noqa: F401 (fixture: a tiny generator's snapshots and a toy split)

#: repeats of the FID coverage experiment: the coverage of a nominal 95% interval is then estimated with a
#: standard error of sqrt(0.95 * 0.05 / 200) = 1.5%; the tolerance, 4%, is 2.6 standard errors (measured over
#: 1,000 repeats: 93.7%). The mean's experiment is cheap: 2,000 repeats (standard error 0.5%) and a 3.5%
#: tolerance, which also allows for the percentile interval's known undercoverage at n = 100 (plug-in
#: variance, normal rather than t quantiles, 200 resamples; measured 92.9% and 93.3% over 1,000 repeats)
REPEATS = 200
RESAMPLES = 200
TOLERANCE = 0.04


def test_mean_interval_covers_the_population_mean():
    """MS-SSIM-style: the mean of i.i.d. per-pair values in [0, 1] (Beta(2, 5), skewed; population mean 2/7)."""
    beta = torch.distributions.Beta(torch.tensor(2.0, dtype=torch.float64), torch.tensor(5.0, dtype=torch.float64))
    torch.manual_seed(0)
    covered, repeats = 0, 2000
    for r in range(repeats):
        values = beta.sample((100,))
        lo, hi = B.interval(B.mean_samples(values, RESAMPLES, B.generator(r, "msssim")), 0.95)
        covered += lo <= 2 / 7 <= hi
    assert abs(covered / repeats - 0.95) <= 0.035, covered / repeats


def test_fid_interval_covers_the_expected_fid_not_the_population_value():
    """Gaussian features: fakes N(0, I), reals N(1, 1.5^2 I) in 4 dimensions, population FID
    |mu1 - mu2|^2 + sum (s1 - s2)^2 = 4 + 1 = 5. The sample FID is biased upwards (~tr(S1)/n1 + tr(S2)/n2) and
    the bootstrap replicates add that bias once more, so the percentile interval sits above the population
    value (to first order it is centred on the population value plus twice the bias). Here the bias is a third
    of the estimator's spread: the interval covers the estimator's expectation E[FID_n] (Monte Carlo below) at
    about the nominal rate (93.7% over 1,000 repeats; the population value: 91.4%), so that is the target."""
    d, n1, n2 = 4, 150, 100
    mu2, s2 = 1.0, 1.5
    theta = d * mu2 ** 2 + d * (1.0 - s2) ** 2
    g = torch.Generator().manual_seed(123)

    def draw():
        return (torch.randn(n1, d, generator=g, dtype=torch.float64),
                mu2 + s2 * torch.randn(n2, d, generator=g, dtype=torch.float64))

    with B._threads_for(0):  # 4 x 4 matrices: threads only wait for each other (x15 slower on a loaded 2-core box)
        expected, cov_expected, cov_theta = _fid_coverage(draw, theta, n1, n2)
    assert expected - theta > 0.15  # the bias: ~(4 + 9) / 100 - the cross term's share; 0.25 measured
    assert abs(cov_expected / REPEATS - 0.95) <= TOLERANCE, cov_expected / REPEATS
    assert cov_theta < cov_expected, (cov_theta, cov_expected)


def _fid_coverage(draw, theta: float, n1: int, n2: int) -> tuple[float, int, int]:
    expected = float(np.mean([F.fid_from_features(*draw()) for _ in range(1000)]))
    cov_expected = cov_theta = 0
    for r in range(REPEATS):
        x, y = draw()
        gen = B.generator(r, "fid")
        lo, hi = B.interval(B.fid_samples(x, y, B.indices(n1, RESAMPLES, gen), B.indices(n2, RESAMPLES, gen)), 0.95)
        cov_expected += lo <= expected <= hi
        cov_theta += lo <= theta <= hi
    return expected, cov_expected, cov_theta


# ---- the resampled statistics are the metrics' own, recomputed ------------------------------------------
def test_resampled_fid_and_kid_equal_the_statistics_on_the_resampled_rows():
    g = torch.Generator().manual_seed(0)
    for d, n1, n2 in ((2048, 40, 17), (6, 30, 20)):  # the cross-Gram form (n <= d) and the d x d one
        x = torch.rand(n1, d, generator=g)
        y = torch.rand(n2, d, generator=g) + 0.05
        i1, i2 = B.indices(n1, 4, g), B.indices(n2, 4, g)
        i1[0], i2[0] = torch.arange(n1), torch.arange(n2)  # the identity resample: the point estimate
        got = B.fid_samples(x, y, i1, i2)
        want = [F.fid_from_features(x[a], y[b]) for a, b in zip(i1, i2)]
        assert got == pytest.approx(want, rel=1e-9)
        got = B.kid_samples(x, y, i1, i2, subsets=7, size=min(n1, n2), seed=3)
        want = [F.kid_from_features(x[a], y[b], subsets=7, max_subset_size=1000, seed=3)["kid"] for a, b in zip(i1, i2)]
        assert got == pytest.approx(want, rel=1e-9, abs=1e-9)


def test_resampled_swd_keeps_images_whole_and_the_directions():
    g = torch.Generator().manual_seed(0)
    real = (torch.rand(5, 3, 32, 32, generator=g) * 255).to(torch.uint8)
    fake = (torch.rand(7, 3, 32, 32, generator=g) * 255).to(torch.uint8)
    st = S.SWDStream(real, 7, {"patches_per_image": 8, "directions": 16, "repeats": 2}, seed=4)
    st.add(fake)
    point = st.result()["mean"]
    # descriptors of whole images: image i's rows are contiguous, and every resample draws whole images
    counts = st.fake.counts
    start = [0, *counts.cumsum(0).tolist()]
    want = [r for i in (2, 0, 2) for r in range(start[i], start[i + 1])]
    assert B._rows_of(counts, torch.tensor([2, 0, 2])).tolist() == want
    # every image once, in order, and every set renormalised: the point estimate (renormalising a normalised
    # set moves it by float32 rounding only)
    ident = [S.normalize_descriptors(d.view(d.shape[0], -1, 7, 7)) for d in st.real_desc]
    fake_n = [S.normalize_descriptors(d.view(d.shape[0], -1, 7, 7)) for d in st.fake_desc]
    again = S.distances(ident, fake_n, st.res, 2, 16, st.seed)["mean"]
    assert again == pytest.approx(point, rel=1e-5)
    assert B._distance(ident, fake_n, 2, 16, st.seed) == pytest.approx(again, rel=1e-5)  # torch projections
    reps = B.swd_samples(st.real_desc, st.real_counts, st.fake_desc, st.fake.counts, res=st.res, cfg=st.cfg,
                         seed=st.seed, samples=6, gen=B.generator(0, "swd"))
    assert reps.shape == (6,) and np.isfinite(reps).all() and len(set(reps.tolist())) == 6


def test_swd_resamples_from_projections_kept_equal_the_definition():
    """The CPU path (each set projected once per colour channel; a resample gathers, reweights and shifts its rows)
    gives each resample's SWD as the definition computes it (renormalise the resampled rows, project, sort), to
    float32 rounding; also when the directions come in several blocks, and with a constant channel (sd 0)."""
    g = torch.Generator().manual_seed(5)
    real = (torch.rand(6, 3, 32, 32, generator=g) * 255).to(torch.uint8)
    fake = (torch.rand(9, 3, 32, 32, generator=g) * 255).to(torch.uint8)
    fake[:, 2] = 77  # a blue channel with no spread at all
    st = S.SWDStream(real, 9, {"patches_per_image": 8, "directions": 16, "repeats": 2}, seed=2)
    st.add(fake)
    st.result()
    draws = B.swd_draws(st.real_counts, st.fake.counts, 5, B.generator(1, "swd"))
    want = [B._swd_resample(st.real_desc, st.fake_desc, rr, rf, 7, st.cfg, st.seed) for rr, rf in draws]
    got = B.swd_samples(st.real_desc, st.real_counts, st.fake_desc, st.fake.counts, res=st.res, cfg=st.cfg,
                        seed=st.seed, samples=5, gen=B.generator(1, "swd"))
    assert got == pytest.approx(want, rel=2e-5)
    assert len(set(got.tolist())) == 5
    old = B._PROJECTED_BYTES
    B._PROJECTED_BYTES = 4 * 3 * (st.real_desc[0].shape[0] + st.fake_desc[0].shape[0]) * 5  # blocks of 5 directions
    try:
        blocked = B.swd_samples(st.real_desc, st.real_counts, st.fake_desc, st.fake.counts, res=st.res, cfg=st.cfg,
                                seed=st.seed, samples=5, gen=B.generator(1, "swd"))
    finally:
        B._PROJECTED_BYTES = old
    assert blocked == pytest.approx(got, rel=1e-6)


def test_swd_resamples_do_not_depend_on_the_tile_of_directions(monkeypatch):
    """The CPU path runs tiles of directions side by side, one per torch thread, each passing every resample
    over its tile: any tile size (one row, a few rows that do not divide the directions, all of them in one tile)
    and any number of threads give the same draws and the same bits (a row's arithmetic is the same whatever its
    tile and thread)."""
    g = torch.Generator().manual_seed(8)
    real = (torch.rand(5, 3, 32, 32, generator=g) * 255).to(torch.uint8)
    st = S.SWDStream(real, 7, {"patches_per_image": 8, "directions": 16, "repeats": 2}, seed=6)
    st.add((torch.rand(7, 3, 32, 32, generator=g) * 255).to(torch.uint8))
    st.result()
    n = max(st.real_desc[0].shape[0], st.fake_desc[0].shape[0])
    old = torch.get_num_threads()

    def reps(tile_rows: int, threads: int) -> np.ndarray:
        monkeypatch.setattr(B, "_TILE_BYTES", 4 * n * tile_rows)
        torch.set_num_threads(threads)
        try:
            return B.swd_samples(st.real_desc, st.real_counts, st.fake_desc, st.fake.counts, res=st.res,
                                 cfg=st.cfg, seed=st.seed, samples=4, gen=B.generator(2, "swd"))
        finally:
            torch.set_num_threads(old)

    whole = reps(32, 1)
    assert len(set(whole.tolist())) == 4
    for tile_rows, threads in ((1, 2), (5, 2), (7, 1), (32, 2)):
        assert np.array_equal(reps(tile_rows, threads), whole), (tile_rows, threads)
    assert torch.get_num_threads() == old
    none = B.swd_samples(st.real_desc, st.real_counts, st.fake_desc, st.fake.counts, res=st.res, cfg=st.cfg,
                         seed=st.seed, samples=0, gen=B.generator(2, "swd"))
    assert none.shape == (0,)


# ---- determinism ----------------------------------------------------------------------------------------------
def test_the_same_seed_gives_the_same_interval():
    s = B.Settings(samples=50, level=0.9, seed=7)
    values = torch.linspace(0, 1, 40, dtype=torch.float64) ** 2

    def ci(settings, cls=None):
        return B.Intervals(settings, "msssim", cls).run("msssim_fake", float(values.mean()),
                                                        lambda n, gen: B.mean_samples(values, n, gen))

    assert ci(s) == ci(s) and ci(s) != ci(B.Settings(samples=50, level=0.9, seed=8))
    assert ci(s) != ci(s, cls="cat")  # each class draws its own resamples
    assert ci(B.Settings(samples=0, level=0.9, seed=7)) is None  # off
    # the interval level: the (1-level)/2 and (1+level)/2 quantiles
    assert B.interval(np.arange(101.0), 0.9) == pytest.approx([5.0, 95.0])
    assert B.settings({"seed": 3, "evaluation": {"bootstrap": {"samples": 9, "level": 0.8, "per_metric": {"swd": 2}}}}
                      ).samples_for("swd") == 2
    with pytest.raises(ValueError, match="level"):
        B.settings({"seed": 0, "evaluation": {"bootstrap": {"samples": 9, "level": 1.0, "per_metric": {}}}})


def test_pair_stream_keeps_the_per_pair_values():
    ps = PairStream(3)
    g = torch.Generator().manual_seed(0)
    ps.add((torch.rand(7, 3, 32, 32, generator=g) * 255).to(torch.uint8))
    assert ps.values().shape == (3,) and float(ps.values().mean()) == ps.result()["msssim"]


# ---- evaluate: the keys, summary.json, summary.csv, the results table -------------------------------------------
POINT_KEYS = ("fid_train", "fid_test", "kid_train", "kid_train_std", "kid_test", "kid_test_std", "msssim_fake",
              "msssim_real", "swd_real_floor", "n_generated")


def test_evaluate_writes_intervals_and_leaves_the_point_estimates_alone(run_dir, params):  # noqa: F811
    from fewgan.report import tables as T

    ev = params["evaluation"]
    ev["fid"].update(n_fake=6, batch_size=6)
    ev["swd"].update(patches_per_image=8, directions=16, repeats=2)
    ev["msssim"].update(pairs=3)
    (run_dir / "select").mkdir()
    shutil.copy(run_dir / "train" / "snapshots" / "snapshot_0002000.pt", run_dir / "select" / "generator.pt")

    def evaluate(samples, out):
        ev["bootstrap"].update(samples=samples, level=0.9)
        return E.run(params, "toy", "_metrics_test_tiny", run_dir / "select", run_dir / "c", run_dir / "s",
                     run_dir / out, threads=1)

    off, on = evaluate(0, "ev_off"), evaluate(40, "ev_on")
    for key in POINT_KEYS:
        assert on[key] == off[key], key
    assert on["swd"]["levels"] == off["swd"]["levels"] and on["swd"]["mean"] == off["swd"]["mean"]

    m = read_json(run_dir / "ev_on" / "metrics.json")
    for key in ("fid_train", "fid_test", "kid_train", "kid_test", "msssim_fake", "msssim_real"):
        lo, hi = m[f"{key}_ci"]
        assert math.isfinite(lo) and lo <= hi, key
        assert off[f"{key}_ci"] is None
    lo, hi = m["swd"]["mean_ci"]
    assert lo <= hi and off["swd"]["mean_ci"] is None
    for block in (m["fid_bootstrap"], m["kid_bootstrap"], m["msssim_bootstrap"], m["swd"]["bootstrap"]):
        assert block["samples"] == 40 and block["level"] == 0.9 and block["method"] == B.METHOD
        assert block["seed"] == params["seed"] and block["seconds"] >= 0 and block["resampled"]
        assert set(block["bias"]) and block["point_outside"] == []  # bias-corrected: the point lies inside
    assert off["fid_bootstrap"]["samples"] == 0 and off["fid_bootstrap"]["method"] == "off"
    # the same params give the same intervals
    again = evaluate(40, "ev_again")
    assert again["fid_train_ci"] == on["fid_train_ci"] and again["swd"]["mean_ci"] == on["swd"]["mean_ci"]

    summary = read_json(run_dir / "ev_on" / "summary.json")
    for key in ("fid_train", "fid_test", "kid_train", "swd_mean", "msssim_fake", "msssim_real"):
        assert summary[f"{key}_ci_low"] <= summary[f"{key}_ci_high"], key
    assert summary["swd_mean_ci_low"] == m["swd"]["mean_ci"][0] and summary["fid_train"] == m["fid_train"]
    assert read_json(run_dir / "ev_off" / "summary.json")["fid_train_ci_low"] is None

    # summary.csv / per_class.csv: <key>_ci_low, <key>_ci_high after each reported value
    cols = T.summary_columns()
    for key in ("fid_train", "fid_test", "kid_train_x1e3", "kid_test_x1e3", "swd_mean_x1e3", "msssim_fake",
                "msssim_real"):
        assert cols.index(f"{key}_ci_low") == cols.index(f"{key}_ci_high") - 1, key
        assert f"{key}_ci_low" in T.per_class_columns()
    row = T.metric_values(m)
    assert row["fid_train_ci_low"] == m["fid_train_ci"][0] and row["kid_test_x1e3_ci_high"] == m["kid_test_ci"][1]
    assert row["swd_mean_x1e3_ci_high"] == m["swd"]["mean_ci"][1]
    # the results table: "value [lo, hi]"; just the value without an interval
    f = T._Fmt(2)
    shown = {s.header: s.show(row, f) for mt in T.registered_metrics() for s in mt.shown}
    flo, fhi = m["fid_train_ci"]
    assert shown["FID train"] == f"{f.num(m['fid_train'])} [{f.num(flo)}, {f.num(fhi)}]"
    assert shown["SWD×10³ mean"].endswith(f"[{f.num(lo)}, {f.num(hi)}]")
    assert " ± " in shown["KID×10³ train"] and shown["KID×10³ train"].endswith("]")
    assert shown["MS-SSIM fake (real)"].count("[") == 2
    plain = T.metric_values(off)
    assert {s.header: s.show(plain, f) for mt in T.registered_metrics() for s in mt.shown}["FID train"] == \
        f.num(off["fid_train"])
