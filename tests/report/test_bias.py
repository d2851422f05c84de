"""The bias rule (issue 21, Kynkäänniemi et al. 2023): a metric computed in the feature network a model's
discriminator trains on (spec.py FEATURE_NETWORK) never selects that model's snapshots and never ranks it;
`auto` passes to the next allowed metric and says why, and the report leaves the model unranked with a
sentence and marks each such number of it. The model here is a toy spec (model_specs monkeypatched)."""

from __future__ import annotations

import dataclasses
import json
import logging

import pandas as pd
import pytest

import fewgan.models.specs as specs
from fewgan.io import atomic_torch_save
from fewgan.metrics import score as SC
from fewgan.models.specs import SNAPSHOT_FORMAT
from fewgan.report.tables import BIAS_MARK
from fewgan.select import choose_metric, select

from .conftest import build_tree

EFF = "pretrained ImageNet features (EfficientNet-Lite0), not comparable to published FID"
BOTH = {"inception": False, "effnet-lite0": True}


@pytest.fixture
def projected(monkeypatch):
    """`dcgan` declares FEATURE_NETWORK = "effnet-lite0" (as Projected GAN's spec.py will)."""
    real = specs.model_specs()

    def fake():
        out = dict(real)
        out["dcgan"] = dataclasses.replace(real["dcgan"], feature_network="effnet-lite0")
        return out

    monkeypatch.setattr(specs, "model_specs", fake)
    return "dcgan"


def test_auto_passes_over_the_models_own_feature_network(caplog):
    assert choose_metric("auto", BOTH)[0] == "fd_effnet"
    name, why = choose_metric("auto", BOTH, feature_network="effnet-lite0", model="pgan")
    assert name == "swd"
    assert "FD-EffNet is computed in effnet-lite0 features, the network pgan's discriminator trains on" in why
    assert "Kynkäänniemi et al. 2023" in why and "SWD decides" in why
    # with the standard Inception, FID decides for every model (it is not the model's feature network)
    assert choose_metric("auto", {"inception": True, "effnet-lite0": True}, feature_network="effnet-lite0")[0] == "fid"
    # asked for by name: the next allowed metric, said and logged
    with caplog.at_level(logging.WARNING, logger="fewgan.select"):
        name, why = choose_metric("fd_effnet", BOTH, feature_network="effnet-lite0", model="pgan")
    assert name == "swd" and why.startswith("evaluation.select.metric = fd_effnet, but FD-EffNet is computed")
    assert any("never selects or ranks it" in r.message for r in caplog.records)
    # a metric that was not scored is passed over too
    name, why = choose_metric("auto", BOTH, available={"fid", "kid", "swd"})
    assert name == "swd" and "FD-EffNet was not scored (evaluation.score.effnet is false)" in why


def test_select_never_picks_by_the_models_own_feature_network(tmp_path, params_select, projected):
    train, sd = params_select["train"], params_select["scores"]
    params = params_select["params"]
    best = select(params, sd, train, tmp_path / "sel_dcgan", model=projected)
    assert best["metric"] == "swd" and best["feature_network"] == "effnet-lite0"
    assert "Kynkäänniemi" in best["why"] and best["iteration"] == 1  # lowest SWD, not lowest FD-EffNet (3)
    other = select(params, sd, train, tmp_path / "sel_fastgan", model="fastgan")
    assert other["metric"] == "fd_effnet" and other["iteration"] == 3 and other["feature_network"] is None


@pytest.fixture
def params_select(tmp_path):
    train = tmp_path / "train"
    (train / "snapshots").mkdir(parents=True)
    for it in (1, 2, 3):
        atomic_torch_save(train / "snapshots" / f"snapshot_{it:07d}.pt", {"format": SNAPSHOT_FORMAT, "iteration": it})
    sd = tmp_path / "score"
    sd.mkdir()
    rows = [{"iteration": it, "fid": 10.0, "kid": 5.0, "fd_effnet": 30.0 - it, "kid_effnet": 1.0,
             "kid_effnet_std": 0.1, "swd": 20.0 + it, "snapshot": f"snapshots/snapshot_{it:07d}.pt"} for it in (1, 2, 3)]
    SC.write_csv(sd / "scores.csv", rows, SC.SCORE_COLUMNS)
    blocks = {"inception": {"standard": False, "label": "untrained"}, "effnet-lite0": {"standard": True, "label": EFF}}
    (sd / "scores.json").write_text(json.dumps({"rows": rows, "feature_extractor": blocks["inception"],
                                                "feature_extractors": blocks}))
    params = {"seed": 0, "profile": "smoke", "evaluation": {"select": {"metric": "auto", "budget": None}}}
    return {"train": train, "scores": sd, "params": params}


def test_report_leaves_the_model_unranked_and_marks_its_numbers(tmp_path, projected):
    from fewgan.report import run as report

    t = build_tree(tmp_path)
    for path in t["runs"].rglob("metrics.json"):
        m = json.loads(path.read_text())
        model = path.parts[-4]
        m |= {"fd_effnet_train": {"fastgan": 150.0, "dcgan": 90.0}[model], "fd_effnet_test": 200.0,
              "kid_effnet_train": 3.0, "kid_effnet_train_std": 1.0, "effnet_features": EFF,
              "precision_effnet_train": 0.5, "recall_effnet_train": 0.25,
              "feature_extractors": {"inception": m["feature_extractor"],
                                     "effnet-lite0": {"standard": True, "label": EFF}}}
        path.write_text(json.dumps(m))
    res = report(t["params"], t["runs"], t["data"], t["out"])
    rk = res["ranking"]
    assert rk["name"] == "fd_effnet" and rk["unranked"] == ["dcgan"]
    s = pd.read_csv(t["out"] / "summary.csv", dtype={"rank": str})
    dc, fg = s[s["model"] == "dcgan"], s[s["model"] == "fastgan"]
    assert dc["rank"].isna().all() and set(fg["rank"]) == {"1"}  # dcgan's lower FD does not win
    assert set(dc["biased_metrics"]) == {"fd_effnet, kid_effnet, prc_effnet"} and fg["biased_metrics"].isna().all()
    assert set(dc["feature_network"]) == {"effnet-lite0"}
    sentences = rk["datasets"]["faces"]["sentences"]
    assert any(x.startswith("dcgan is not ranked: FD-EffNet is computed in effnet-lite0 features") for x in sentences)
    md = (t["out"] / "README.md").read_text()
    assert "† computed in the features of the network this model's discriminator trains on" in md
    assert f"FD-EffNet, KID-EffNet and precision/recall (EffNet): {EFF}." in md
    results = md.split("## Results", 1)[1].split("## Datasets", 1)[0]
    results = "\n".join(part.split("\n####", 1)[0] for part in results.split("#### metrics in EfficientNet-Lite0")[1:])
    cells = lambda ln: [c.strip() for c in ln.strip("|").split("|")]  # noqa: E731
    lines = [ln for ln in results.splitlines() if ln.startswith("|") and "dcgan" in cells(ln)]
    assert lines and all(f"90.00 {BIAS_MARK}" in ln for ln in lines)  # FD-EffNet train of dcgan, marked
    fg_lines = [ln for ln in results.splitlines() if ln.startswith("|") and "fastgan" in cells(ln)]
    assert fg_lines and not any(BIAS_MARK in ln for ln in fg_lines)
    html = (t["out"] / "index.html").read_text()
    assert "Kynkäänniemi et al. 2023" in html
    # the compact table under the verdict: precision / recall where computed, dcgan's marked, dcgan last and
    # not ranked; the EffNet label and the † footnote said once above it
    faces = md.split("## faces (synthetic)\n", 1)[1].split("### At equal compute", 1)[0]
    rows = [[c.strip() for c in ln.strip("|").split("|")] for ln in faces.splitlines() if ln.startswith("|")]
    head, body = rows[0], rows[2:]
    pr = head.index("precision / recall (EffNet, train)")
    assert [r[head.index("model")] for r in body] == ["fastgan", "dcgan"]
    assert body[1][head.index("rank")] == "not ranked" and body[1][pr] == f"0.500 / 0.250 {BIAS_MARK}"
    assert body[0][pr] == "0.500 / 0.250" and body[1][head.index("FD-EffNet (train; EfficientNet-Lite0 ImageNet "
                                                                 "features, not FID) [95% interval]")].endswith(BIAS_MARK)
    above = faces.split("| ", 1)[0]
    assert f"FD-EffNet, KID-EffNet and precision/recall (EffNet): {EFF}." in above and "† computed in" in above
