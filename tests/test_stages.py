"""The stage table: the CLI, dvc.yaml and the Snakemake rules come from it, and what it declares is what
the stages really read (params keys, traced while the smoke pipeline runs in-process) and write."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from fewgan.cli import build_parser, main
from fewgan.dag import check_dvc_yaml, dvc_yaml_text
from fewgan.stages import BOOKKEEPING_PARAMS, BY_NAME, STAGES, code_deps, fill, import_closure

REPO = Path(__file__).resolve().parents[1]


def test_committed_dvc_yaml_is_what_the_table_generates():
    check_dvc_yaml(REPO / "dvc.yaml")  # raises with a diff and the command to fix it
    assert dvc_yaml_text().count("cmd: fewgan ") == len(STAGES)


def test_committed_dvc_yaml_check_fails_on_drift(tmp_path):
    from fewgan.dag import DagMismatchError

    drifted = tmp_path / "dvc.yaml"
    drifted.write_text(dvc_yaml_text().replace("- src/fewgan/metrics\n", "", 1))
    with pytest.raises(DagMismatchError, match=r"fewgan dag --write"):
        check_dvc_yaml(drifted)


def test_cli_has_one_command_per_stage_with_the_tables_options():
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    for s in STAGES:
        p = sub.choices[s.name]
        opts = {o for a in p._actions for o in a.option_strings}
        want = {"--params", "--out"} | {"--" + n.replace("_", "-") for n in {**s.args, **s.scratch}}
        want |= {"--dataset"} if s.scope in ("dataset", "cell") else set()
        want |= {"--model", "--seed"} if s.scope == "cell" else set()
        want |= {"--threads"} if s.threads else set()
        assert opts - {"-h", "--help"} == want, s.name


def test_code_dependencies_follow_the_imports():
    train = code_deps(BY_NAME["train"])
    # the loop builds models by name (discovery: every model folder's model.py and what it imports)
    assert {"src/fewgan/train", "src/fewgan/models/base.py", "src/fewgan/models/registry.py",
            "src/fewgan/models/fastgan/model.py", "src/fewgan/models/fastgan/nets.py",
            "src/fewgan/models/biggan/spec.py", "src/fewgan/nets", "src/fewgan/schemas",
            "src/fewgan/weights"} <= set(train)
    score = code_deps(BY_NAME["score"])
    assert {"src/fewgan/metrics", "src/fewgan/models/dcgan/model.py", "src/fewgan/weights",
            "src/fewgan/data"} <= set(score)
    assert "src/fewgan/cli.py" not in score  # routing only
    assert "fewgan.models.fastgan.model" in import_closure("fewgan.train.loop")
    # stages that only validate params depend on the models' specs, not on their code
    for light in ("curate", "split", "select", "report"):
        deps = code_deps(BY_NAME[light])
        assert "src/fewgan/models/fastgan/spec.py" in deps, light
        assert not [d for d in deps if d.endswith(("/model.py", "/nets.py", "models/base.py"))], (light, deps)
    assert code_deps(BY_NAME["report"]) == sorted(set(code_deps(BY_NAME["report"])))


def test_capabilities_decide_the_stages_of_a_cell(monkeypatch):
    from fewgan.models import specs
    from fewgan.stages import expand_matrix, stage_models

    real = specs.model_specs()
    # a model that can do neither (no latents, no translation): its cell is train only
    fake = dict(real, painter=specs.ModelSpec("painter", {}, frozenset({"conditional"}), "x"))
    monkeypatch.setattr(specs, "model_specs", lambda: fake)
    got = stage_models(["fastgan", "painter"])
    assert got == {"score": ["fastgan"], "select": ["fastgan"], "invert": ["fastgan"], "evaluate": ["fastgan"]}
    paths = expand_matrix(("runs/{dataset}/{model}/s{seed}/train", "runs/{dataset}/{model}/s{seed}/invert/inversion.json"),
                          ["d"], ["fastgan", "painter"], [0, 1])
    assert paths == ["runs/d/fastgan/s0/invert/inversion.json", "runs/d/fastgan/s0/train",
                     "runs/d/fastgan/s1/invert/inversion.json", "runs/d/fastgan/s1/train",
                     "runs/d/painter/s0/train", "runs/d/painter/s1/train"]
    with pytest.raises(KeyError, match="no folder"):
        stage_models(["nope"])


class Tracked(dict):
    """A params tree that records every key path read (for the params-declaration test)."""

    def __init__(self, data=(), path: str = "", seen: set | None = None):
        super().__init__()
        self._path, self._seen = path, seen if seen is not None else set()
        for k, v in dict(data).items():
            super().__setitem__(k, Tracked(v, f"{path}{k}.", self._seen) if isinstance(v, dict) else v)

    def _mark(self, key):
        self._seen.add(f"{self._path}{key}")

    def __getitem__(self, key):
        self._mark(key)
        return super().__getitem__(key)

    def get(self, key, default=None):
        self._mark(key)
        return super().get(key, default)

    def items(self):
        for k in self.keys():
            self._mark(k)
        return super().items()

    def values(self):
        return [v for _, v in self.items()]

    def __deepcopy__(self, memo):
        import copy

        return {k: copy.deepcopy(v, memo) for k, v in self.items()}


def _declared(stage, dataset, model) -> list[str]:
    return [fill(k, dataset, model) for k in stage.params] + list(BOOKKEEPING_PARAMS)


def _covered(path: str, declared: list[str]) -> bool:
    # reading a declared key or anything under it, or passing through a container on the way to one
    return any(path == k or path.startswith(k + ".") or k.startswith(path + ".") for k in declared)


@pytest.mark.slow
def test_smoke_pipeline_in_process_reads_only_declared_params_and_writes_declared_outputs(tmp_path, monkeypatch):
    import fewgan.cli as cli

    shutil.copytree(REPO / "params", tmp_path / "params")
    monkeypatch.chdir(tmp_path)
    # one model keeps this in budget (the Snakemake and DVC smoke runs cover all five); every stage runs
    assert main(["params", "--profile", "smoke", "--models", "fastgan"]) == 0
    active = json.loads(json.dumps(__import__("yaml").safe_load((tmp_path / "params/active.yaml").read_text())))
    seen_by_job: dict[str, set] = {}
    real_params = cli._params

    def tracked_params(args):
        seen: set = set()
        seen_by_job[" ".join(cli._ARGV)] = seen
        return Tracked(real_params(args), "", seen)

    monkeypatch.setattr(cli, "_params", tracked_params)
    d = "demo_faces"
    jobs = [(BY_NAME["curate"], d, None), (BY_NAME["split"], d, None)]
    for m in active["experiment"]["models"]:
        jobs += [(BY_NAME[s], d, m) for s in ("train", "score", "select", "invert", "evaluate")]
    jobs.append((BY_NAME["report"], None, None))
    for stage, ds, m in jobs:
        argv = [stage.name] + (["--dataset", ds] if ds else []) + (["--model", m, "--seed", "0"] if m else [])
        assert main(argv) == 0, argv
        seen = seen_by_job[" ".join(argv)]
        undeclared = sorted(p for p in seen if not _covered(p, _declared(stage, ds, m)))
        assert not undeclared, f"{stage.name} read params keys its table entry does not declare: {undeclared}"
        for o in stage.outs:
            assert (tmp_path / fill(o.path, ds, m, 0)).exists(), (stage.name, o.path)
        assert (tmp_path / fill(stage.out, ds, m, 0) / "stage.json").is_file()
    # the report stage times itself (it used to record a no-op)
    rec = json.loads((tmp_path / "reports/benchmark/stage.json").read_text())
    assert rec["stage"] == "report" and rec["wall_s"] > 0.05


def test_snakemake_threads_never_oversubscribe_the_cpus():
    from fewgan.stages import snakemake_threads

    train, report = BY_NAME["train"], BY_NAME["report"]
    for cores in (1, 2, 3, 8, 16, 32, 64):
        for cpus in (1, 2, 4, 32):
            for wanted in (1, 2, 8):
                reserve, real = snakemake_threads(train, wanted, cores, cpus)
                parallel = cores // reserve  # compute jobs Snakemake can run at once
                assert real <= min(wanted, cpus, cores) and parallel * real <= max(cpus, 1), (cores, cpus, wanted)
                assert parallel >= 1
    assert snakemake_threads(train, 8, 8, 2) == (8, 2)      # --cores 8 on this 2-core machine: one job, 2 threads
    assert snakemake_threads(train, 8, 32, 32) == (8, 8)    # a 32-core workstation: four 8-thread jobs
    assert snakemake_threads(report, 8, 8, 2) == (1, 1)
    assert snakemake_threads(train, 8, 2**31, 2) == (8, 8)  # cluster: the job's own node
