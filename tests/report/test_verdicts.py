"""Verdicts as evidence: intervals over seeds, pairwise verdicts, rank ranges (fewgan.report.verdicts), and the
report's verdict sections and equal-compute table built from a multi-seed tree."""

from __future__ import annotations

import random
from pathlib import Path

import pandas as pd
import pytest

from fewgan.report import run
from fewgan.report import verdicts as V
from fewgan.report.verdicts import spread

from .conftest import EVIL_DATASET, build_tree


def test_t_interval_reaches_its_coverage_on_data_with_known_truth():
    """3 seeds from N(mu, sigma): the 95% t interval of the mean covers mu in ~95% of 2000 repeats (binomial
    standard error 0.5%: a tolerance of 1.5% is 3 of them); Welch's interval of a difference likewise."""
    rng = random.Random(0)
    repeats, mu = 2000, 40.0
    hits = sum(lo <= mu <= hi for lo, hi in (V.spread([rng.gauss(mu, 5.0) for _ in range(3)]).ci
                                             for _ in range(repeats)))
    assert abs(hits / repeats - 0.95) < 0.015, hits / repeats
    hits = 0
    for _ in range(repeats):
        c = V.compare("a", [rng.gauss(10.0, 2.0) for _ in range(3)], "b", [rng.gauss(13.0, 6.0) for _ in range(4)])
        hits += c.ci[0] <= -3.0 <= c.ci[1]
    assert abs(hits / repeats - 0.95) < 0.02, hits / repeats  # Welch is approximate: a little slack


def test_spread_by_hand():
    s = V.spread([1.0, 2.0, 3.0])
    assert s.n == 3 and s.mean == 2.0 and s.std == pytest.approx(1.0)
    assert s.ci == pytest.approx((2.0 - 4.302652729911275 / 3 ** 0.5, 2.0 + 4.302652729911275 / 3 ** 0.5))  # t(0.975, 2)
    assert V.spread([5.0]) == V.Spread(1, 5.0, None, None) and V.spread([]).mean is None
    assert V.spread([1.0, float("nan"), 3.0]).n == 2  # a failed seed is left out, not averaged as NaN


@pytest.mark.parametrize("xs, ys, lower, verdict", [
    ([10.0, 11.0, 12.0], [30.0, 31.0, 29.0], True, "better"),    # clearly lower SWD: better
    ([10.0, 11.0, 12.0], [30.0, 31.0, 29.0], False, "worse"),    # the same numbers where higher is better
    ([30.0, 31.0, 29.0], [10.0, 11.0, 12.0], True, "worse"),
    ([10.0, 20.0, 30.0], [12.0, 22.0, 28.0], True, "tied"),      # the interval contains 0
    ([10.0], [30.0, 31.0, 29.0], True, "not tested"),            # one seed: no interval exists
])
def test_verdicts_on_constructed_inputs(xs, ys, lower, verdict):
    c = V.compare("a", xs, "b", ys, lower_is_better=lower)
    assert c.verdict == verdict
    if verdict != "not tested":
        assert c.ci[0] <= c.delta <= c.ci[1] and (c.ci[0] <= 0 <= c.ci[1]) == (verdict == "tied")


def test_ranks_group_models_that_cannot_be_separated():
    values = {"fastgan": [10.0, 11.0, 12.0], "biggan": [11.0, 12.5, 10.5], "dcgan": [40.0, 41.0, 39.0]}
    ranges = V.rank_ranges(values)
    assert ranges == {"fastgan": (1, 2), "biggan": (1, 2), "dcgan": (3, 3)}
    assert V.rank_text(ranges["fastgan"]) == "1–2" and V.rank_text(ranges["dcgan"]) == "3"
    # one seed each: nothing is separable
    assert V.rank_ranges({"a": [1.0], "b": [2.0]}) == {"a": (1, 2), "b": (1, 2)}
    pairs, lines = V.dataset_verdicts(values, "SWD")
    assert "fastgan and biggan tied (ΔSWD" in lines[0] and "3 seeds)" in lines[0]
    assert lines[1].startswith("fastgan better than dcgan (ΔSWD -29.0 [") and lines[2].startswith("biggan better than dcgan")
    _, single = V.dataset_verdicts({"a": [1.0], "b": [2.0]}, "SWD")
    assert single == ["a, b: fewer than 2 training seeds, so ranks across models are not significance-tested "
                      "(set experiment.seeds, e.g. [0, 1, 2])"]


def test_report_opens_each_dataset_with_verdicts_over_seeds_and_at_equal_compute(tmp_path):
    tree = build_tree(tmp_path, seeds=(0, 1, 2), swd_by_model={"fastgan": [10.0, 11.0, 12.0], "dcgan": [30.0, 31.0, 29.0]})
    result = run(tree["params"], tree["runs"], tree["data"], tree["out"])
    out = tree["out"]
    summary = pd.read_csv(out / "summary.csv")
    assert len(summary) == 2 * 2 * 3 and sorted(summary["seed"].unique()) == [0, 1, 2]
    assert set(summary[summary["model"] == "fastgan"]["rank"].astype(str)) == {"1"}
    assert set(summary[summary["model"] == "dcgan"]["rank"].astype(str)) == {"2"}
    seeds = pd.read_csv(out / "seeds.csv")
    fg = seeds[(seeds["dataset"] == "faces") & (seeds["model"] == "fastgan")].iloc[0]
    assert fg["seeds"] == 3 and fg["mean"] == pytest.approx(11.0) and fg["std"] == pytest.approx(1.0)
    verdicts = pd.read_csv(out / "verdicts.csv")
    row = verdicts[verdicts["dataset"] == "faces"].iloc[0]
    assert (row["model_a"], row["model_b"], row["verdict"]) == ("fastgan", "dcgan", "better")
    assert row["delta"] == pytest.approx(-19.0) and row["ci_high"] < 0
    md = (out / "README.md").read_text()
    # the dataset's section opens with its verdict: the winner, then every pair with its interval and seeds
    verdict_section = md.split("## faces (synthetic)\n", 1)[1].split("\n## ", 1)[0]
    opening = verdict_section.strip().splitlines()
    assert opening[0].startswith("Winner: fastgan, better than every other model by SWD×10³")
    assert "3 seeds each" in opening[0] and "11.0 [" in opening[0]
    assert opening[2].startswith("- fastgan better than dcgan (ΔSWD×10³") and "3 seeds)" in opening[2]
    assert md.index("## faces (synthetic)") < md.index("## Results")
    # the compact table: rank, and the ranking metric's mean with its 95% interval over the seeds
    table = [ln for ln in verdict_section.split("### At equal compute")[0].splitlines() if ln.startswith("|")]
    assert "rank" in table[0] and "SWD×10³ (mean over levels, vs train) [95% interval]" in table[0]
    assert table[2].split("|")[1:3] == [" 1      ", " fastgan "] and "11.00 [8.52, 13.48]" in table[2]
    assert "- seeds: 3" in verdict_section  # the same for both models: said once
    html = (out / "index.html").read_text()
    assert '<p class="headline">Winner: fastgan' in html and "fastgan better than dcgan" in html
    # equal compute: dcgan's runs report 2x the FLOPs per iteration, so the budget is fastgan's total and dcgan
    # is compared at its snapshot of iteration 100 (2e11 FLOPs <= 3e11)
    eq = pd.read_csv(out / "equal_compute.csv")
    assert set(eq["budget_flops"]) == {3e11}
    dc = eq[(eq["dataset"] == "faces") & (eq["model"] == "dcgan")]
    assert set(dc["iteration"]) == {100} and set(eq[eq["model"] == "fastgan"]["iteration"]) == {300}
    assert result["equal_compute"]["faces"]["budget"] == 3e11
    assert "### At equal compute" in verdict_section
    assert "Each run's best snapshot among those trained with at most 300 GFLOPs" in verdict_section
    assert "95% interval of the mean" in verdict_section
    assert any(r.endswith(".png") and "flops_" in r for r in result["figures"]["faces"])
    assert EVIL_DATASET in result["equal_compute"]


def test_headline_names_the_winner_the_ties_or_why_there_is_no_verdict():
    clear = {"fastgan": [10.0, 11.0, 12.0], "dcgan": [30.0, 31.0, 29.0]}
    assert V.headline(clear, "SWD") == ("Winner: fastgan, better than every other model by SWD (11.0 [8.5, 13.5]; "
                                        "95% Welch intervals of the differences exclude 0; 3 seeds each).")
    assert V.headline(clear, "recall", lower_is_better=False).startswith("Winner: dcgan")
    tied = {"fastgan": [10.0, 11.0, 12.0], "biggan": [11.0, 12.5, 10.5], "dcgan": [40.0, 41.0, 39.0]}
    assert V.headline(tied, "SWD").startswith("No single winner: fastgan has the best mean SWD (11.0 [")
    assert "is tied with biggan (their 95% interval of the difference contains 0; 3 seeds each)" in V.headline(tied, "SWD")
    one = V.headline({"a": [2.0], "b": [1.0]}, "SWD")
    assert one.startswith("No verdict yet: b has the best SWD (1.0), but with 1 seed each")
    assert "not significance-tested" in one and "[" not in one  # no interval where none exists
    assert V.headline({"a": [1.0, 2.0], "b": [3.0]}, "SWD").startswith("No verdict yet")
    assert "1–2 seeds" in V.headline({"a": [1.0, 2.0], "b": [3.0]}, "SWD")
    assert V.headline({"a": [1.0]}, "SWD") == "Only a has a SWD value (1.0, 1 seed): nothing to compare."
    assert V.headline({"a": [float("nan")]}, "SWD") == "No verdict: no model has a SWD value."


def _cells_with_scores(values_by_seed):
    import pandas as pd

    from fewgan.report.collect import Cell

    cells = []
    for seed, vals in enumerate(values_by_seed):
        c = Cell(dataset="faces", model="fastgan", metrics={}, metrics_path=Path("x"), seed=seed)
        c.scores = pd.DataFrame({"iteration": [100, 200, 300], "swd": vals})
        c.best = {"iteration": 300, "swd": vals[-1], "metric": "swd"}
        c.inversion = pd.DataFrame({"iteration": [100, 200, 300] * 2, "split": ["test"] * 3 + ["train"] * 3,
                                    "msssim_mean": [v / 100 for v in vals] * 2, "lpips_mean": [0.3] * 6})
        c.inversion_meta = {"headline": {"metric": "msssim"}}
        cells.append(c)
    return cells


def test_curves_of_several_seeds_show_the_mean_and_its_interval(tmp_path, monkeypatch):
    from fewgan.report import figures as figs

    seeds = [[30.0, 20.0, 10.0], [34.0, 22.0, 12.0], [32.0, 27.0, 8.0]]
    cells = _cells_with_scores(seeds)
    it, mean, lo, hi = figs._seed_band(cells, "swd")
    assert it == [100, 200, 300]
    for k, i in enumerate(it):
        sp = spread([s[k] for s in seeds])
        assert mean[k] == pytest.approx(sp.mean) and (lo[k], hi[k]) == pytest.approx(sp.ci)
    drawn = {}
    monkeypatch.setattr(figs, "_save", lambda fig, path: drawn.setdefault(path.name, fig))
    assert figs.score_curves("faces", cells, ["untrained"], tmp_path / "swd.png", "swd") is None
    assert figs.inversion_curves("faces", cells, tmp_path / "inv.png") is None
    for name in ("swd.png", "inv.png"):
        ax = drawn[name].axes[0]
        labels = [t.get_text() for t in ax.get_legend().get_texts()]
        assert any("mean of 3 seeds" in t for t in labels), labels
        bands = [c for c in ax.collections if c.get_paths()]
        assert bands, f"{name}: no interval band"
        ys = bands[0].get_paths()[0].vertices[:, 1]
        want_lo, want_hi = (lo, hi) if name == "swd.png" else ([v / 100 for v in lo], [v / 100 for v in hi])
        assert min(ys) == pytest.approx(min(want_lo)) and max(ys) == pytest.approx(max(want_hi))
        footer = " ".join(t.get_text() for t in drawn[name].texts)
        assert "t interval of the mean over training seeds" in footer


def test_equal_compute_leaves_out_near_constant_snapshots_like_select():
    """At equal compute, a snapshot whose fakes have less than evaluation.select.min_spread of the real feature
    variance (scores.json <metric>_spread) does not compete, as in `fewgan select`: the run's collapsed early
    snapshot with the lowest FD-EffNet is passed over for the best one that is not collapsed."""
    from fewgan.report.collect import Cell
    from fewgan.report.compute import equal_compute

    def cell(model, fd, spread):
        its = [100, 200, 300]
        return Cell(dataset="d", model=model, metrics={}, metrics_path=Path("x"),
                    run={"snapshots": [{"iteration": i, "flops": i * 1e9, "kimg": i * 0.008} for i in its]},
                    scores=pd.DataFrame({"iteration": its, "fd_effnet": fd}),
                    scores_meta={"rows": [{"iteration": i, "fd_effnet_spread": s} for i, s in zip(its, spread)]})

    cells = [cell("a", [176.6, 290.0, 268.0], [1e-8, 0.16, 0.2]), cell("b", [300.0, 280.0, 250.0], [0.3, 0.3, 0.3])]
    on = equal_compute(cells, "fd_effnet", "FD-EffNet", True, min_spread=0.1)
    rows = {r["model"]: r for r in on["rows"]}
    assert rows["a"]["iteration"] == 300 and rows["a"]["fd_effnet"] == 268.0
    assert rows["a"]["left_out_low_spread"] == [100] and rows["b"]["left_out_low_spread"] is None
    off = {r["model"]: r for r in equal_compute(cells, "fd_effnet", "FD-EffNet", True)["rows"]}
    assert off["a"]["iteration"] == 100  # min_spread 0: the collapsed snapshot wins, as before the guard
