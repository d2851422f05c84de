"""Snakemake and DVC run the same DAG: parity of planned outputs, lint, full smoke runs."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from fewgan.params import profiles
from fewgan.stages import BY_NAME, STAGES, code_deps, import_closure

REPO = Path(__file__).resolve().parents[1]
PROFILES = profiles(REPO / "params")
BIN = Path(sys.executable).parent
ENV = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", "DVC_NO_ANALYTICS": "1",
       "PYTHONUNBUFFERED": "1"}


def sh(cmd: list[str], cwd: Path, check: bool = True, timeout: int = 900,
       env: dict | None = None) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, cwd=cwd, env={**ENV, **(env or {})}, capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-6000:]}")
    return proc


def make_project(dst: Path, profile: str) -> Path:
    """A copy of the pipeline definition (not the outputs) with the profile selected."""
    for name in ("workflow", "params", "src"):
        shutil.copytree(REPO / name, dst / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    shutil.copy(REPO / "dvc.yaml", dst / "dvc.yaml")
    sh(["fewgan", "params", "--profile", profile], dst)
    return dst


def snakemake_jobs(project: Path) -> dict[str, dict]:
    """Every job of the planned DAG, keyed by each of its outputs, from `snakemake -n -p` (dry):
    {output: {"rule", "inputs", "cmd"}}."""
    text = sh(["snakemake", "--cores", "1", "-n", "-p", "all"], project).stdout
    jobs: dict[str, dict] = {}
    for block in text.split("\nrule ")[1:]:
        lines = block.splitlines()
        job = {"rule": lines[0].rstrip(":"), "inputs": set(), "cmd": "", "outputs": []}
        for line in lines[1:]:
            key, _, value = line.strip().partition(": ")
            if key == "input":
                job["inputs"] = {v.strip() for v in value.split(",") if v.strip()}
            elif key == "output":
                job["outputs"] = [v.strip().rstrip("/") for v in value.split(",") if v.strip()]
            elif line.startswith("Shell command:"):
                job["cmd"] = line.partition(": ")[2]
        for o in job["outputs"]:
            jobs[o] = job
    return jobs


def snakemake_params(project: Path) -> dict[str, list[str]]:
    """{rule: params names} from the loaded workflow (Snakemake's API; names are dotted keys with '__')."""
    code = ("import json; from pathlib import Path; from snakemake.api import SnakemakeApi; "
            "from snakemake.settings.types import OutputSettings, ResourceSettings\n"
            "with SnakemakeApi(OutputSettings(quiet=True)) as api:\n"
            "    wf = api.workflow(resource_settings=ResourceSettings(cores=1), snakefile=Path('workflow/Snakefile'), "
            "workdir=Path('.'))\n"
            "    print(json.dumps({r.name: list(r.params._names) for r in wf._workflow.rules}))")
    return json.loads(sh([sys.executable, "-c", code], project).stdout.strip().splitlines()[-1])


def dvc_stages(project: Path) -> list[dict]:
    code = ("import json,sys; from dvc.repo import Repo; from dvc.dependency.param import ParamsDependency; "
            "r = Repo(sys.argv[1]); print(json.dumps([{'name': s.addressing, 'cmd': s.cmd, "
            "'deps': [d.def_path for d in s.deps if not isinstance(d, ParamsDependency)], "
            "'params': sorted(k for d in s.deps if isinstance(d, ParamsDependency) for k in d.params), "
            "'outs': [o.def_path for o in s.outs]} for s in r.index.stages]))")
    if not (project / ".dvc").exists():
        sh(["dvc", "init", "--no-scm", "-q"], project)
    return json.loads(sh([sys.executable, "-c", code, str(project)], project).stdout)


def _code_dir(path: str) -> str:
    """src/fewgan/<pkg>/x.py -> src/fewgan/<pkg> (DVC tracks code packages as folders), except in the packages
    whose dependencies are module files (fewgan.stages.FILE_GRANULAR: the models)."""
    from fewgan.stages import FILE_GRANULAR

    parts = path.split("/")
    if any(path.startswith("src/" + p.replace(".", "/") + "/") for p in FILE_GRANULAR):
        return path
    return "/".join(parts[:3]) if len(parts) > 3 and parts[:2] == ["src", "fewgan"] else path


#: the profiles `make test-fast` plans with both engines (~8 s each); `make test` plans every profile
FAST_PROFILES = ("smoke", "demo", "translate_smoke")


@pytest.mark.parametrize("profile", [p if p in FAST_PROFILES else pytest.param(p, marks=pytest.mark.slow)
                                     for p in PROFILES])
def test_snakemake_and_dvc_plan_the_same_jobs_deps_commands_and_params(tmp_path, profile):
    project = make_project(tmp_path, profile)
    smk, dvc = snakemake_jobs(project), dvc_stages(project)
    smk_outs = set(smk)
    dvc_outs = {o for s in dvc for o in s["outs"]}
    # outputs the stage table declares to DVC only (Out.dvc_only: the live DVCLive plots, one per train job)
    import re

    live = [re.compile(re.sub(r"\\\{(dataset|model|seed)\\\}", "[^/]+", re.escape(o.path)))
            for st in STAGES for o in st.outs if o.dvc_only]
    dvc_only = {o for o in dvc_outs if any(rx.fullmatch(o) for rx in live)}
    assert len(dvc_only) == sum(1 for s in dvc if s["name"].startswith("train@")), sorted(dvc_only)
    dvc_outs -= dvc_only
    assert smk_outs == dvc_outs, f"only Snakemake: {sorted(smk_outs - dvc_outs)}\nonly DVC: {sorted(dvc_outs - smk_outs)}"
    assert "reports/benchmark" in smk_outs and any(p.endswith("evaluate/metrics.json") for p in smk_outs)
    rule_params = snakemake_params(project)
    for stage in dvc:
        job = smk[stage["outs"][0]]
        name = stage["name"].split("@")[0]
        assert job["rule"] == name
        # the same command (Snakemake adds its thread count and the log tee)
        cmd = job["cmd"].split(" 2>&1 | tee ")[0]
        cmd = " ".join(w for i, w in enumerate(cmd.split()) if w != "--threads" and cmd.split()[i - 1] != "--threads")
        assert cmd == stage["cmd"], name
        # the same dependencies: Snakemake's files fall under DVC's code folders and data paths
        smk_deps = {_code_dir(p) for p in job["inputs"]}
        covered = lambda p: any(p == d or p.startswith(d.rstrip("/") + "/") for d in stage["deps"])  # noqa: E731
        assert all(covered(p) for p in smk_deps), (name, sorted(p for p in smk_deps if not covered(p)))
        code = {d for d in stage["deps"] if d.startswith("src/")}
        assert code == {p for p in smk_deps if p.startswith("src/")}, name
        if BY_NAME[name].scope != "all":  # DVC's report deps are the folders that hold Snakemake's files
            assert {d for d in stage["deps"] if not d.startswith("src/")} == {p for p in smk_deps if not p.startswith("src/")}
        # the same params keys (Snakemake's names are the dotted keys with '__' and no wildcards)
        want = sorted(k.replace(".", "__").replace("{", "").replace("}", "") for k in BY_NAME[name].params)
        assert sorted(rule_params[name]) == want, name
        assert len(stage["params"]) == len(want), (name, stage["params"])


def test_snakemake_lint_is_clean(tmp_path):
    project = make_project(tmp_path, "smoke")
    proc = sh(["snakemake", "--lint"], project, check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0 and "Lints for" not in out, out


def _job_resources(plan: str) -> dict[str, set[str]]:
    """{rule: the set of its jobs' `gpu=` values} from a dry run's job blocks."""
    out: dict[str, set[str]] = {}
    for block in plan.split("\nrule ")[1:]:
        rule = block.split(":")[0]
        res = next((line.strip() for line in block.splitlines() if line.strip().startswith("resources:")), "")
        gpu = next((r.strip() for r in res.split(",") if r.strip().startswith("gpu=")), "gpu=?")
        out.setdefault(rule, set()).add(gpu)
    return out


@pytest.mark.parametrize("profile, device", [("paper", "cuda"), ("smoke", "auto")])
def test_slurm_profile_plans_without_a_cluster_and_asks_gpus_only_for_cuda(tmp_path, profile, device):
    import importlib.util

    if importlib.util.find_spec("snakemake_executor_plugin_slurm") is None:
        pytest.skip("snakemake-executor-plugin-slurm is not installed (it is in the `dev` and `cluster` extras: "
                    "pip install -e '.[dev]'), so `--profile workflow/profiles/slurm` cannot load")
    project = make_project(tmp_path, profile)
    assert str(yaml.safe_load((project / "params" / "active.yaml").read_text())["device"]) == device
    plan = sh(["snakemake", "--profile", "workflow/profiles/slurm", "-n", "all"], project).stdout
    assert "This was a dry-run" in plan
    want_gpu = "gpu=1" if device.startswith("cuda") else "gpu=0"
    for rule, gpus in _job_resources(plan).items():
        if rule == "all":
            continue
        if BY_NAME[rule].gpu:
            assert gpus == {want_gpu}, (rule, gpus)
        else:  # no gpu resource at all ("?") or 0
            assert gpus <= {"gpu=?", "gpu=0"}, (rule, gpus)
    assert "--gres" not in (REPO / "workflow/profiles/slurm/config.yaml").read_text().split("executor:")[1]


def _check_report(project: Path) -> dict:
    report = project / "reports" / "benchmark"
    assert (report / "index.html").is_file() and (report / "README.md").is_file()
    text = (report / "README.md").read_text()
    assert "not comparable to published FID" in text  # the untrained-extractor label
    metrics = json.loads(next(project.glob("runs/*/fastgan/s0/evaluate/metrics.json")).read_text())
    assert metrics["feature_extractor"]["standard"] is False
    _check_in_chromium(report)
    return metrics


def _check_in_chromium(report: Path) -> None:
    """The smoke report in headless Chromium at 1280 px (tests/report/browser.py): every image loads and has
    alt text, nothing is wider than the viewport, each dataset opens with its verdict; the screenshot stays in
    the test's temp folder. Said and skipped where selenium, chromium or chromedriver is missing."""
    sys.path.insert(0, str(REPO / "tests" / "report"))
    try:
        from browser import find_chromium, open_report, problems
    finally:
        sys.path.pop(0)
    browser, driver, why = find_chromium()
    try:
        import selenium  # noqa: F401
    except ImportError:
        why = why or "selenium is not installed"
    if why:
        print(f"smoke report not checked in a browser: {why}")
        return
    res = open_report(report / "index.html", report.parent / "smoke-report-1280.png", width=1280, browser=browser,
                      driver=driver)
    assert problems(res) == [] and res["images"] and res["sections"], problems(res)


def _check_snakemake_report(project: Path) -> None:
    """`snakemake --report report.zip` (default target): every captioned output of the stage table, each
    cell's figures with their rendered captions, and the benchmark report folder opened at its index."""
    import zipfile

    from fewgan.stages import STAGES, fill

    sh(["snakemake", "--report", "report.zip"], project, timeout=600)
    with zipfile.ZipFile(project / "report.zip") as z:
        names = z.namelist()
        html = z.read("report/report.html").decode("utf-8")
    exp = yaml.safe_load((project / "params" / "active.yaml").read_text())["experiment"]
    cells = [(d, m) for d in exp["datasets"] for m in exp["models"]]
    raw = [n for n in names if n.startswith("report/data/raw/")]
    for stage in STAGES:
        for o in stage.outs:
            if not o.caption:
                continue
            caption = (REPO / "workflow" / "report" / o.caption).read_text().split("**")[0].strip()
            assert caption and caption.split("(")[0] in html, (o.caption, caption)
            if stage.scope == "cell":  # one file per cell, its caption rendered with the cell's names
                base = Path(o.path).name
                assert len([n for n in raw if n.endswith("/" + base)]) == len(cells), (base, raw)
            elif o.kind == "dir":  # the folder travels whole: its index page and every figure in it
                folder = project / fill(o.path)
                figures = sorted(p.name for p in folder.rglob("*.png"))
                assert figures, folder
                held = {n.rsplit("/", 1)[1] for n in raw if n.endswith(".png")}
                assert set(figures) <= held, sorted(set(figures) - held)
                assert any(n.endswith("/" + o.htmlindex) for n in raw), o.htmlindex
    # the captions name each cell (rendered from snakemake.wildcards): once per captioned per-cell output
    per_cell = sum(1 for s in STAGES if s.scope == "cell" for o in s.outs if o.caption)
    for d, m in cells:
        assert html.count(f"<strong>{m}</strong>") >= per_cell and f"<strong>{d}</strong>" in html, (d, m)
    pngs = [n for n in raw if n.endswith(".png")]
    want = per_cell * len(cells) + len(list((project / "reports" / "benchmark").rglob("*.png")))
    assert len(pngs) == want, (len(pngs), want, pngs)


def _edit_active(project: Path, fn) -> None:
    """An experiment's hand edit of params/active.yaml (what `dvc exp run -S` does)."""
    import yaml

    f = project / "params" / "active.yaml"
    data = yaml.safe_load(f.read_text())
    fn(data)
    f.write_text(yaml.safe_dump(data, sort_keys=False))


@pytest.mark.slow
def test_smoke_run_with_snakemake_then_nothing_to_do(tmp_path):
    project = make_project(tmp_path, "smoke")
    record = tmp_path / "modules.jsonl"
    sh(["snakemake", "--cores", "2", "all"], project, timeout=1200, env={"FEWGAN_RECORD_MODULES": str(record)})
    metrics = _check_report(project)
    assert metrics["fid_train"] is not None and metrics["fid_train"] >= 0
    again = sh(["snakemake", "--cores", "2", "-n", "all"], project)
    assert "Nothing to be done" in again.stdout + again.stderr
    _check_snakemake_report(project)
    # every fewgan module a stage really loaded is among its declared code dependencies, except what the
    # door loads before any stage: the CLI's parser (every sub-command's options), load_active (validation:
    # io, names, schemas, whose model schemas are imported by name) and the C allocator of the compute
    # stages (fewgan.allocator; results do not depend on it)
    def path_of(module: str) -> str:
        from fewgan.stages import FILE_GRANULAR, _module_file

        if any(module == p or module.startswith(p + ".") for p in FILE_GRANULAR):  # the models: per file
            return str(_module_file(module).relative_to(REPO))
        top = module.split(".")[1]
        return f"src/fewgan/{top}" + ("" if (REPO / "src/fewgan" / top).is_dir() else ".py")

    door = ("import json, sys; from pathlib import Path; from fewgan.cli import build_parser; build_parser(); "
            "from fewgan.params import load_active; load_active(Path('params/active.yaml')); import fewgan.allocator; "
            "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] == 'fewgan')))")
    routing = set(json.loads(sh([sys.executable, "-c", door], project).stdout.strip().splitlines()[-1]))
    params_loading = {path_of(m) for m in import_closure("fewgan.params") if m != "fewgan"}
    for line in record.read_text().splitlines():
        rec = json.loads(line)
        deps = code_deps(BY_NAME[rec["stage"]])
        for m in rec["modules"]:
            if m in routing or m == "fewgan.dag" or path_of(m) in params_loading:
                continue
            path = path_of(m)
            assert path in deps, f"{rec['stage']} loaded {m} ({path}) but declares {deps}"
    # a params change re-runs exactly the jobs that declare the key (and the report after them)
    _edit_active(project, lambda p: p["invert"].update(steps=p["invert"]["steps"] + 1))
    plan = sh(["snakemake", "--cores", "1", "-n", "all"], project).stdout
    stats = plan.split("Job stats:")[1].split("total")[0].splitlines()
    jobs = {line.split()[0] for line in stats if line.strip() and not line.lstrip().startswith(("job", "-"))}
    assert jobs == {"invert", "report", "all"}, plan
