"""DVC from a fresh clone: the committed DVC config, experiments (`dvc exp run -S`) against the stale check,
`dvc metrics show` / `dvc plots show` / `dvc exp show` over every dataset x model.

The slow test clones the repository with `git clone`: it checks the COMMITTED state (commit first)."""

from __future__ import annotations

import configparser
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from fewgan.dag import dvc_yaml_text
from fewgan.metrics.summary import KEYS, summarize, write_summary
from fewgan.params import ParamsError, load_active, write_active
from fewgan.provenance import experiment_overrides
from fewgan.stages import STAGES, fill

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
ENV = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", "DVC_NO_ANALYTICS": "1",
       "PYTHONUNBUFFERED": "1"}


def sh(cmd: list[str], cwd: Path, env: dict | None = None, timeout: int = 900, check: bool = True):
    proc = subprocess.run(cmd, cwd=cwd, env={**ENV, **(env or {})}, capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-6000:]}")
    return proc


def _git_tracked(*paths: str) -> set[str]:
    proc = subprocess.run(["git", "ls-files", "--", *paths], cwd=REPO, capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip(f"{REPO} is not a git checkout: {proc.stderr.strip()}")
    return set(proc.stdout.split())


# ---- what DVC needs is committed ------------------------------------------------------------------------
def test_dvc_repository_files_are_committed_with_analytics_off():
    tracked = _git_tracked(".dvc", ".dvcignore")
    assert {".dvc/config", ".dvc/.gitignore", ".dvcignore"} <= tracked, (
        f"commit what `dvc init` wrote (.dvc/config, .dvc/.gitignore, .dvcignore); tracked: {sorted(tracked)}")
    cfg = configparser.ConfigParser()
    cfg.read_string((REPO / ".dvc" / "config").read_text())
    assert cfg.get("core", "analytics", fallback=None) == "false", "set `dvc config core.analytics false`"
    # the venv and scratch folders are never walked by DVC; no stage output lies under them
    lines = [line.strip() for line in (REPO / ".dvcignore").read_text().splitlines()
             if line.strip() and not line.startswith("#")]
    assert "/.venv/" in lines
    import pathspec  # DVC's own dependency; gitwildmatch semantics, negations included

    spec = pathspec.PathSpec.from_lines("gitwildmatch", lines)
    outs = [fill(o.path, "d", "m").replace("{seed}", "0") + "/x.tsv" for s in STAGES for o in s.outs]
    assert not [o for o in outs if spec.match_file(o)]
    # the scratch tree stays ignored, all but the live curves
    assert spec.match_file("work/d/m/s0/resume.pt") and spec.match_file("work/d/m/s0/snapshots/snapshot_0000001.pt")


# ---- experiments: the stale check and edits of params/active.yaml ---------------------------------------
@pytest.fixture
def project(tmp_path, monkeypatch) -> Path:
    shutil.copytree(REPO / "params", tmp_path / "params")
    monkeypatch.chdir(tmp_path)
    write_active("smoke", Path("params"))
    return tmp_path


def _edit(fn) -> None:
    """What `dvc exp run -S 'params/active.yaml:KEY=VALUE'` does: rewrite one value of the active file."""
    f = Path("params/active.yaml")
    data = yaml.safe_load(f.read_text())
    fn(data)
    f.write_text(yaml.safe_dump(data, sort_keys=False))


def test_fresh_active_file_has_no_overrides(project):
    params = load_active(Path("params/active.yaml"))
    assert params["_meta"]["overrides"] == {}
    assert experiment_overrides(params) == []


def test_edited_values_are_accepted_and_recorded_as_overrides(project):
    # experiment.stage_models is derived from experiment.models: an experiment that edits one edits both
    stages = {"score": ["fastgan"], "select": ["fastgan"], "invert": ["fastgan"], "evaluate": ["fastgan"]}
    _edit(lambda p: (p["train"].update(iterations=800), p["experiment"].update(models=["fastgan"], stage_models=stages)))
    params = load_active(Path("params/active.yaml"))  # sources unchanged: not stale
    assert params["train"]["iterations"] == 800
    assert params["_meta"]["overrides"] == {"train.iterations": 800, "experiment.models": ["fastgan"],
                                            **{f"experiment.stage_models.{k}": ["fastgan"] for k in stages}}
    assert experiment_overrides(params)[0] == 'experiment.models=["fastgan"]' and "train.iterations=800" in experiment_overrides(params)


def test_provenance_collect_carries_the_overrides(project):
    from fewgan.provenance import collect

    _edit(lambda p: p["invert"].update(steps=p["invert"]["steps"] + 1))
    params = load_active(Path("params/active.yaml"))
    steps = params["invert"]["steps"]
    assert collect(params)["experiment_overrides"] == [f"invert.steps={steps}"]
    assert collect(load_active(Path("params/active.yaml")) | {"_meta": {}})["experiment_overrides"] is None


def test_datasets_chosen_on_the_command_line_are_not_overrides(project):
    write_active("smoke", Path("params"), datasets=["demo_faces"], models=["dcgan"])
    assert load_active(Path("params/active.yaml"))["_meta"]["overrides"] == {}


@pytest.mark.parametrize("edit, message", [
    (lambda p: p["train"].update(iterations="many"), r"params/active.yaml: key 'train.iterations': 'many' is not"),
    (lambda p: p["invert"].update(stepz=3), r"params/active.yaml: unknown key 'invert.stepz' \(did you mean 'steps'"),
    (lambda p: p["experiment"].update(models=["fastgann"]), r"params/active.yaml: experiment.models names unknown "
                                                            r"model 'fastgann' \(did you mean 'fastgan'"),
    (lambda p: p.update(profile="paper"), r"key 'profile' is 'paper' but the file was generated from "
                                          r"params/profiles/smoke.yaml"),
])
def test_bad_edits_are_refused_naming_the_file_and_the_key(project, edit, message):
    _edit(edit)
    with pytest.raises(ParamsError, match=message) as err:
        load_active(Path("params/active.yaml"))
    assert "fewgan params --profile" in str(err.value)


def test_a_changed_source_still_makes_the_edited_file_stale(project):
    _edit(lambda p: p["train"].update(iterations=800))
    f = Path("params/train.yaml")
    f.write_text(f.read_text() + "\n# touched\n")
    with pytest.raises(ParamsError, match=r"stale: params/train.yaml changed"):
        load_active(Path("params/active.yaml"))
    assert load_active(Path("params/active.yaml"), check_fresh=False)["_meta"]["overrides"] is None


# ---- metrics: one small flat file per cell ------------------------------------------------------------
def test_summary_holds_the_headline_numbers(tmp_path):
    metrics = {"iteration": 8, "fid_train": 12.5, "fid_test": None, "kid_train": 3.25, "swd": {"mean": 7.0},
               "msssim_fake": 0.4, "msssim_real": 0.3, "feature_extractor": {"standard": False}, "provenance": {}}
    written = write_summary(tmp_path, metrics)
    assert json.loads((tmp_path / "summary.json").read_text()) == written
    assert list(written) == list(KEYS)
    assert {k: v for k, v in written.items() if "_ci_" not in k} == {
        "fid_train": 12.5, "fid_test": None, "kid_train": 3.25, "swd_mean": 7.0, "msssim_fake": 0.4,
        "msssim_real": 0.3, "best_iteration": 8, "feature_extractor_standard": False,
        # the EfficientNet-Lite0 metrics are absent from these metrics: null, never a guess
        "fd_effnet_train": None, "fd_effnet_test": None, "effnet_features": None, "kid_effnet_train": None,
        "precision_effnet_train": None, "recall_effnet_train": None}
    assert written["fid_train_ci_low"] is None  # no bootstrap interval in these metrics
    assert summarize({})["fid_train"] is None


def test_dvc_metrics_are_only_the_summaries():
    stages = yaml.safe_load(dvc_yaml_text())["stages"]
    metrics = {m for s in stages.values() for m in (s.get("do", s).get("metrics") or [])}
    assert metrics == {"runs/${item.dataset}/${item.model}/s${item.seed}/evaluate/summary.json"}
    plots = {next(iter(p)) for s in stages.values() for p in (s.get("do", s).get("plots") or [])}
    assert plots == {"runs/${item.dataset}/${item.model}/s${item.seed}/score/scores.csv",
                     "runs/${item.dataset}/${item.model}/s${item.seed}/invert/inversion.csv",
                     "work/${item.dataset}/${item.model}/s${item.seed}/dvclive/plots/metrics"}
    # the live training curves: kept across resumes, not cached (the scratch tree under work/)
    (live,) = [p for s in stages.values() for p in (s.get("do", s).get("plots") or []) if "dvclive" in next(iter(p))]
    spec = next(iter(live.values()))
    assert (spec["x"], spec["cache"], spec["persist"]) == ("step", False, True)


def test_no_stage_tracks_the_whole_params_file():
    """`params/active.yaml: []` means every key to DVC: such a stage would re-run on any experiment."""
    stages = yaml.safe_load(dvc_yaml_text())["stages"]
    for name, s in stages.items():
        for entry in s.get("do", s).get("params") or []:
            for keys in (entry.values() if isinstance(entry, dict) else [[entry]]):
                assert keys, f"dvc.yaml stage {name} tracks all of params/active.yaml"


# ---- the whole path, from a fresh clone --------------------------------------------------------------
def _cells(project: Path) -> list[tuple[str, str]]:
    exp = yaml.safe_load((project / "params" / "active.yaml").read_text())["experiment"]
    return [(d, m) for d in exp["datasets"] for m in exp["models"]]


def _ran(output: str) -> set[str]:
    """Stage names (without the @item) that `dvc repro` / `dvc exp run` ran."""
    return {line.split("'")[1].split("@")[0] for line in output.splitlines() if line.startswith("Running stage '")}


DVC_MODELS = ("dcgan", "fastgan")


@pytest.mark.slow
def test_fresh_clone_dvc_repro_metrics_plots_and_an_experiment(tmp_path):
    if not (REPO / ".git").exists():
        pytest.skip(f"{REPO} is not a git checkout")
    clone = tmp_path / "clone"
    sh(["git", "clone", "-q", str(REPO), str(clone)], tmp_path)
    # the clone runs its own code; FEWGAN_SHARED_DATA: no dependence on ../shared/data (smoke is synthetic)
    env = {"PYTHONPATH": str(clone / "src"), "FEWGAN_SHARED_DATA": str(tmp_path / "no-shared-data")}
    status = sh(["dvc", "status"], clone, env)
    assert "not inside of a DVC repository" not in status.stdout + status.stderr

    # the README's command: make dvc-demo (this interpreter's venv stands in for the one `make` would build).
    # Two of the smoke profile's models: DVC's side (matrix stages, locks, metrics/plots/exp) is the same for
    # every model, and tests/test_workflow.py runs all of them through Snakemake (a third of the suite's time)
    venv = BIN.parent
    if shutil.which("make"):
        repro = sh(["make", "dvc-demo", "PROFILE=smoke", f"MODELS={' '.join(DVC_MODELS)}", f"VENV={venv}", "-o",
                    f"{venv}/.installed"], clone, env, timeout=1500)
    else:
        sh(["fewgan", "params", "--profile", "smoke", "--models", *DVC_MODELS], clone, env)
        repro = sh(["dvc", "repro"], clone, env, timeout=1500)
    assert {"curate", "split", "train", "score", "select", "invert", "evaluate", "report"} <= _ran(repro.stdout)
    assert (clone / "dvc.lock").is_file()
    # nothing changed: DVC sees every stage up to date and a second repro does no work
    status = sh(["dvc", "status"], clone, env).stdout
    assert "up to date" in status.lower() or status.strip() == "", status
    again = sh(["dvc", "repro"], clone, env)
    assert "didn't change, skipping" in again.stdout and "Running stage" not in again.stdout
    cells = _cells(clone)
    assert sorted(m for _, m in cells) == sorted(DVC_MODELS)

    # dvc metrics show: one row per cell, the summary's columns
    shown = json.loads(sh(["dvc", "metrics", "show", "--json"], clone, env).stdout)
    (data,) = [rev["data"] for rev in shown.values()]  # the workspace only (its key: "" or "workspace")
    for d, m in cells:
        path = f"runs/{d}/{m}/s0/evaluate/summary.json"
        written = json.loads((clone / path).read_text())
        assert list(written) == list(KEYS), (path, written)
        summary = data[path]["data"]  # DVC leaves out null values
        assert summary == {k: v for k, v in written.items() if v is not None}, (path, summary)
        assert summary["fid_train"] >= 0 and summary["best_iteration"] >= 0
        assert summary["feature_extractor_standard"] is False  # smoke: untrained extractor
    assert len(data) == len(cells), sorted(data)
    table = sh(["dvc", "metrics", "show"], clone, env).stdout
    assert all(f"runs/{d}/{m}/s0/evaluate/summary.json" in table for d, m in cells) and "provenance" not in table

    # dvc plots show: the FID and inversion curves of every cell
    plots = json.loads(sh(["dvc", "plots", "show", "--json"], clone, env).stdout)
    assert not plots.get("errors"), plots["errors"]
    ids = set(plots["data"])
    for d, m in cells:
        assert f"runs/{d}/{m}/s0/score/scores.csv" in ids and f"runs/{d}/{m}/s0/invert/inversion.csv" in ids, sorted(ids)
    sh(["dvc", "plots", "show", "-o", "dvc_plots"], clone, env)
    html = (clone / "dvc_plots" / "index.html").read_text()
    for d, m in cells:
        assert f"FID per snapshot: {d} / {m}" in html and f"Inversion of held-out test images: {d} / {m}" in html
        # the training curves DVCLive wrote while each model trained
        live = f"work/{d}/{m}/s0/dvclive/plots/metrics/train/"
        assert any(i.startswith(live) and i.endswith("loss_G.tsv") for i in ids), sorted(ids)

    # an experiment: one params key changed -> only the stages that declare it (and the report) re-run
    for key, value in (("user.email", "ci@fewgan"), ("user.name", "ci")):  # dvc exp run commits too
        if not sh(["git", "config", key], clone, env, check=False).stdout.strip():
            sh(["git", "config", key, value], clone, env)
    sh(["git", "add", "-A"], clone, env)
    sh(["git", "commit", "-q", "-m", "smoke baseline"], clone, env)
    steps = yaml.safe_load((clone / "params" / "active.yaml").read_text())["invert"]["steps"]
    run = sh(["dvc", "exp", "run", "-S", f"params/active.yaml:invert.steps={steps + 1}"], clone, env, timeout=1200)
    assert _ran(run.stdout) == {"invert", "report"}, run.stdout
    assert run.stdout.count("Running stage 'invert@") == len(cells), run.stdout
    # every re-run stage's provenance names the edit; the others' do not
    for d, m in cells:
        inv = json.loads((clone / f"runs/{d}/{m}/s0/invert/inversion.json").read_text())
        assert inv["provenance"]["experiment_overrides"] == [f"invert.steps={steps + 1}"]
        ev = json.loads((clone / f"runs/{d}/{m}/s0/evaluate/metrics.json").read_text())
        assert ev["provenance"]["experiment_overrides"] == []
    report = json.loads((clone / "reports/benchmark/report.json").read_text())
    assert report["provenance"]["experiment_overrides"] == [f"invert.steps={steps + 1}"]

    # dvc exp show: the baseline and the experiment, with the params and every cell's metrics
    rows = json.loads(sh(["dvc", "exp", "show", "--json"], clone, env).stdout)
    exps = [e for row in rows for e in (row.get("experiments") or []) for e in (e.get("revs") or [])]
    assert exps, json.dumps(rows)[:3000]
    exp = exps[0]["data"]
    assert exp["params"]["params/active.yaml"]["data"]["invert"]["steps"] == steps + 1
    assert {f"runs/{d}/{m}/s0/evaluate/summary.json" for d, m in cells} <= set(exp["metrics"]), sorted(exp["metrics"])
    csv = sh(["dvc", "exp", "show", "--csv"], clone, env).stdout
    assert "fid_train" in csv.splitlines()[0] and len(csv.splitlines()) >= 3
