"""The metric registry: the built-in declarations, and a toy metric added as one file (docs/DESIGN.md "Add a
metric") that score, select, evaluate and the report pick up without any other change."""

from __future__ import annotations

import csv
import json
import sys
import textwrap

import pandas as pd
import pytest
import torch

import fewgan.metrics.defs as defs
from fewgan.metrics import registry as REG
from fewgan.metrics import evaluate as E
from fewgan.metrics import score as SC
from fewgan.select import choose_metric, select

from .test_stages import RES, run_dir  # noqa: F401 (fixture: a tiny generator's snapshots and a toy split)

#: the toy metric of docs/DESIGN.md "Add a metric": distance between the mean fake and the mean real image
TOY = '''
"""toy: mean absolute difference between the mean fake image and the mean real training image (0..255)."""

from fewgan.metrics.registry import Column, Metric, Shown, num, register_metric


class _Mean:
    """Accumulates the sum of the first n fakes (the one pass over the fakes feeds it batch by batch)."""

    def __init__(self, n):
        self.n, self.seen, self.total = n, 0, None

    def add(self, batch):
        batch = batch[:self.n - self.seen].double()
        if len(batch):
            s = batch.sum(0)
            self.total = s if self.total is None else self.total + s
            self.seen += len(batch)


@register_metric
class Toy(Metric):
    name = "toy"
    label = "toy distance (mean image)"
    needs = frozenset({"fakes", "reals"})
    order = 35
    selects = True  # no pretrained network: it may select with any Inception weights
    per_snapshot = True
    curve = "vs iteration (all models; toy)"
    curve_label = "toy (train)"
    curve_note = "toy: distance of the mean images; no pretrained network"
    summary = (Column("toy_train", lambda m: m.get("toy_train")),)
    report = (Column("toy_train", lambda m: num(m.get("toy_train"))),)
    shown = (Shown("toy train", lambda r, f: f.num(r["toy_train"])),)
    rank = ("toy_train", "toy (train)")

    def stream(self, x, state, n):
        return _Mean(n)

    def _value(self, x):
        acc = x.stream(self)
        return float((acc.total / acc.seen - x.reals.images("train").double().mean(0)).abs().mean())

    def score(self, x):
        return {"toy": self._value(x)}

    def evaluate(self, x):
        return {"toy_train": self._value(x)}
'''

#: a second toy computed from Inception features, declared pretrained: it may not select with fallback weights
PTOY = '''
"""ptoy: distance of the mean Inception features (pretrained: selects only with the standard weights)."""

from fewgan.metrics.registry import Metric, register_metric


@register_metric
class PToy(Metric):
    name = "ptoy"
    label = "ptoy (mean features)"
    needs = frozenset({"features"})
    extractor = "inception"
    order = 36
    selects, pretrained = True, True
    per_snapshot = True
    rank = ("ptoy_train", "ptoy (train)")

    def _value(self, x):
        fake, real = x.features(self.extractor), x.reals.features("train", self.extractor)
        return float((fake.double().mean(0) - real.double().mean(0)).abs().mean())

    def score(self, x):
        return {"ptoy": self._value(x)}

    def evaluate(self, x):
        return {"ptoy_train": self._value(x)}
'''


def test_builtin_registry_declarations():
    ms = {m.name: m for m in REG.registered_metrics()}
    assert list(ms) == ["fid", "kid", "fd_effnet", "kid_effnet", "prc_effnet", "swd", "msssim"]
    assert [m.name for m in REG.per_snapshot_metrics()] == ["fid", "kid", "fd_effnet", "kid_effnet", "swd"]
    assert [m.name for m in REG.selectable_metrics()] == ["fid", "kid", "fd_effnet", "kid_effnet", "swd"]
    assert ms["fid"].pretrained and ms["kid"].pretrained and not ms["swd"].pretrained
    assert ms["fid"].needs == {"features"} and ms["swd"].needs == {"fakes", "reals"}
    # the EfficientNet-Lite0 metrics: pretrained (only with the pinned weights), and auto's second choice
    assert all(ms[n].pretrained and ms[n].extractor == "effnet-lite0" for n in ("fd_effnet", "kid_effnet", "prc_effnet"))
    assert sorted((m.auto, m.name) for m in ms.values() if m.auto is not None) == [(0, "fid"), (1, "fd_effnet"),
                                                                                   (2, "swd")]
    assert SC.SCORE_COLUMNS == ["iteration", "fid", "kid", "kid_std", "fd_effnet", "kid_effnet", "kid_effnet_std",
                                "swd", "n_fake", "n_real", "seconds", "snapshot"]
    with pytest.raises(ValueError, match="already registered"):
        REG.register_metric(type("Other", (REG.Metric,), {"name": "fid", "label": "x"}))
    with pytest.raises(ValueError, match="needs"):
        REG.register_metric(type("Bad", (REG.Metric,), {"name": "bad", "label": "x", "needs": frozenset({"x"})}))
    assert "bad" not in {m.name for m in REG.registered_metrics()}


@pytest.fixture
def toy_files(tmp_path, monkeypatch):
    """toy.py and ptoy.py dropped into the metric package (its search path extended to a temporary folder):
    discovery finds them like any built-in metric file. Undone afterwards."""
    folder = tmp_path / "more_defs"
    folder.mkdir()
    (folder / "toy.py").write_text(textwrap.dedent(TOY))
    (folder / "ptoy.py").write_text(textwrap.dedent(PTOY))
    monkeypatch.setattr(defs, "__path__", [*defs.__path__, str(folder)])
    monkeypatch.setattr(REG, "_DISCOVERED", set())
    yield folder
    for name in ("toy", "ptoy"):
        REG.unregister(name)
        sys.modules.pop(f"fewgan.metrics.defs.{name}", None)


def test_a_toy_metric_in_one_file_is_scored_selected_evaluated_and_reported(toy_files, run_dir, params, tmp_path):  # noqa: F811
    names = [m.name for m in REG.registered_metrics()]
    assert names == ["fid", "kid", "fd_effnet", "kid_effnet", "prc_effnet", "swd", "toy", "ptoy",
                     "msssim"]  # registered by dropping the files in
    ev = params["evaluation"]
    ev["fid"].update(n_fake=4, batch_size=4)
    ev["score"].update(n_fake=4)
    ev["swd"].update(patches_per_image=8, directions=16, repeats=2)
    ev["msssim"].update(pairs=3)

    # score: one column each, after the built-in ones, computed from the same fakes
    SC.run(params, "toy", "_metrics_test_tiny", run_dir / "train", run_dir / "c", run_dir / "s", run_dir / "score",
           threads=1)
    rows = list(csv.DictReader(open(run_dir / "score" / "scores.csv")))
    assert list(rows[0]) == ["iteration", "fid", "kid", "kid_std", "fd_effnet", "kid_effnet", "kid_effnet_std",
                             "swd", "toy", "ptoy", "n_fake", "n_real", "seconds", "snapshot"]
    from fewgan.metrics import fid as F
    from fewgan.models.registry import load_snapshot
    import fewgan.data.loading as loading

    reals = loading.load_images(None, None, "train")[0]
    for r in rows:
        gan, G, _ = load_snapshot(run_dir / "train" / r["snapshot"])
        fakes = torch.cat(list(F.fake_batches(gan, G, 4, batch_size=4, seed=0)))
        want = float((fakes.double().mean(0) - reals.double().mean(0)).abs().mean())
        # scores.csv stores 6 decimals (score.write_csv: f"{v:.6f}"): within 5e-7, plus a small relative term
        assert abs(float(r["toy"]) - want) <= 5e-7 + 1e-9 * abs(want), (r["toy"], want)
        assert float(r["ptoy"]) > 0

    # select: toy may select (no pretrained network); ptoy is pretrained and the Inception here is a fallback
    assert choose_metric("auto", False)[0] == "swd"  # auto is unchanged: toy declares no `auto` preference
    assert choose_metric("auto", {"inception": False, "effnet-lite0": True})[0] == "fd_effnet"
    ev["select"]["metric"] = "toy"
    best = select(params, run_dir / "score", run_dir / "train", run_dir / "select")
    assert best["metric"] == "toy" and best["rule"] == "lowest toy distance (mean image), then the later snapshot"
    assert best["iteration"] == int(min(rows, key=lambda r: (float(r["toy"]), -int(r["iteration"])))["iteration"])
    assert best["toy"] == pytest.approx(float(min(float(r["toy"]) for r in rows)))
    ev["select"]["metric"] = "ptoy"
    with pytest.raises(ValueError, match=r"ptoy needs the standard Inception weights.*auto or swd or toy"):
        select(params, run_dir / "score", run_dir / "train", run_dir / "select_ptoy")
    assert choose_metric("ptoy", True)[0] == "ptoy"  # with the standard weights it could

    # evaluate: metrics.json and summary.json carry the toy's keys
    ev["select"]["metric"] = "toy"
    m = E.run(params, "toy", "_metrics_test_tiny", run_dir / "select", run_dir / "c", run_dir / "s",
              run_dir / "evaluate", threads=1)
    assert m["toy_train"] > 0 and m["ptoy_train"] > 0 and m["fid_train"] > 0
    summary = json.loads((run_dir / "evaluate" / "summary.json").read_text())
    assert [k for k in summary if not k.endswith(("_ci_low", "_ci_high"))] == [
        "fid_train", "fid_test", "kid_train", "fd_effnet_train", "fd_effnet_test", "effnet_features",
        "kid_effnet_train", "precision_effnet_train", "recall_effnet_train", "swd_mean", "toy_train", "msssim_fake",
        "msssim_real", "best_iteration", "feature_extractor_standard"]  # each built-in value is followed by its bootstrap interval

    # report: the toy's column in summary.csv and the results table, its curve, and the ranking by it
    from fewgan.report import run as report

    runs = tmp_path / "runs"
    cell = runs / "toy" / "_metrics_test_tiny" / "s0"
    cell.mkdir(parents=True)
    for stage in ("train", "score", "select", "evaluate"):
        (cell / stage).symlink_to(run_dir / stage, target_is_directory=True)
    rparams = {"profile": "smoke", "seed": 0,
               "experiment": {"datasets": ["toy"], "models": ["_metrics_test_tiny"], "seeds": [0]},
               "datasets": {"toy": {}}, "evaluation": {"select": {"metric": "toy"}},
               "report": {"title": "toy", "include_paper_table": False, "image_grid_max": 4, "decimals": 2,
                          "flops_budget": None}}
    res = report(rparams, runs, tmp_path / "data", tmp_path / "report")
    s = pd.read_csv(tmp_path / "report" / "summary.csv")
    cols = list(s.columns)
    assert cols.index("swd_real_floor_x1e3") < cols.index("toy_train") < cols.index("msssim_fake")
    assert s["toy_train"][0] == pytest.approx(m["toy_train"])  # summary.csv: full precision (pandas repr)
    assert res["ranking"]["column"] == "toy_train" and str(s["rank"][0]) == "1" and s["ranked_by"][0] == "toy (train)"
    md = (tmp_path / "report" / "README.md").read_text()
    results = md.split("## Results", 1)[1]  # (the Verdicts section before it has a rank table of its own)
    header = next(ln for ln in results.splitlines() if ln.startswith("| rank"))
    cells = [c.strip() for c in header.strip("|").split("|")]
    assert cells.index("SWD×10³ mean") + 1 == cells.index("toy train") < cells.index("MS-SSIM fake (real)")
    assert any("figures/toy_" in f for f in res["figures"]["toy"])  # its curve vs iteration


def test_registry_leaves_no_toy_behind():
    assert [m.name for m in REG.registered_metrics()] == ["fid", "kid", "fd_effnet", "kid_effnet", "prc_effnet",
                                                          "swd", "msssim"]


def test_params_schema_lists_the_selecting_metrics():
    """The params schemas import nothing from fewgan (every stage validates params), so the enum of
    evaluation.select.metric is kept by hand: it must name exactly the registered selecting metrics."""
    from fewgan.schemas.evaluation import EVALUATION_SCHEMA

    enum = EVALUATION_SCHEMA["properties"]["select"]["properties"]["metric"]["enum"]
    assert enum == ["auto", *(m.name for m in REG.selectable_metrics())]
