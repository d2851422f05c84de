# Shared by all rules: the experiment matrix and helpers that read the stage table
# (src/fewgan/stages.py), so that each rule file only names its stage. No logic about the pipeline
# lives here: inputs, outputs, params keys, commands and code dependencies all come from the table,
# the same table dvc.yaml is generated from.
import glob
import os

from fewgan.dag import command
from fewgan.names import NAME_PATTERN
from fewgan.stages import BY_NAME, code_deps, expand_matrix, snakemake_threads


DATASETS = config["experiment"]["datasets"]
MODELS = config["experiment"]["models"]
SEEDS = config["experiment"]["seeds"]
THREADS = config["resources"]["threads"]


wildcard_constraints:
    dataset=NAME_PATTERN.strip("^$"),
    model=NAME_PATTERN.strip("^$"),
    seed=r"\d+",


def _files(path):
    """A code dependency (a package folder or a module) as the files Snakemake compares."""
    return sorted(glob.glob(f"{path}/**/*.py", recursive=True)) if not path.endswith(".py") else [path]


def _matrix(templates):
    """Scope 'all': every template expanded over the cells that have its stage (fewgan.stages.expand_matrix)."""
    return expand_matrix(templates, DATASETS, MODELS, SEEDS)


def stage_input(name):
    s = BY_NAME[name]
    code = [f for dep in code_deps(s) for f in _files(dep)]
    data = _matrix(s.data_deps) if s.scope == "all" else list(s.data_deps)
    return {"code": code, "data": data}


def _key(path):
    """An output's name in the rule: its file name with '.' and '-' as '_' (scores.csv -> scores_csv)."""
    return os.path.basename(os.path.normpath(path)).replace(".", "_").replace("-", "_")


def stage_output(name):
    outs = {}
    for o in BY_NAME[name].outs:
        if o.dvc_only:
            continue
        value = directory(o.path) if o.kind == "dir" else o.path
        if o.caption:
            labels = {"dataset": "{dataset}", "model": "{model}", "seed": "{seed}"} if BY_NAME[name].scope == "cell" else None
            extra = {"htmlindex": o.htmlindex} if o.htmlindex else {}  # a directory: the page that opens it
            value = report(value, caption=f"../report/{o.caption}", category=o.category, labels=labels, **extra)
        outs[_key(o.path)] = value
    return outs


def _lookup(key, wildcards):
    node = config
    for part in key.split("."):
        node = node[part.format(**dict(wildcards.items()))]
    return node


def stage_params(name):
    """Every params key of the stage, so that Snakemake re-runs a job whose params changed."""
    return {k.replace(".", "__").replace("{", "").replace("}", ""): (lambda w, k=k: _lookup(k, w))
            for k in BY_NAME[name].params}


def _cores():
    """Snakemake's --cores; none for runs that schedule nothing locally (--report, cluster executors)."""
    try:
        return workflow.cores or 4096
    except Exception:  # WorkflowError: no --cores given
        return 4096


def _threads(name):
    """(reserved, real): see fewgan.stages.snakemake_threads (no two torch jobs share too few cores)."""
    s = BY_NAME[name]
    return snakemake_threads(s, THREADS.get(name, 1) if s.threads else 1, _cores(), os.cpu_count() or 1)


def stage_threads(name):
    return _threads(name)[0]


def stage_resources(name):
    """`gpu` for the cluster executors; `torch_threads`, the threads the job runs with (a resource, not part
    of the shell command's text, so that another --cores never makes Snakemake think the code changed)."""
    gpu = BY_NAME[name].gpu and str(config["device"]).startswith("cuda")
    return {"gpu": 1 if gpu else 0, "torch_threads": _threads(name)[1]}


def stage_log(name):
    s = BY_NAME[name]
    return {"dataset": "logs/%s/{dataset}.log", "cell": "logs/%s/{dataset}/{model}/s{seed}.log",
            "all": "logs/%s.log"}[s.scope] % name


def stage_shell(name):
    s = BY_NAME[name]
    wild = lambda t: (t.replace("{dataset}", "{wildcards.dataset}").replace("{model}", "{wildcards.model}")
                      .replace("{seed}", "{wildcards.seed}"))
    threads = " --threads {resources.torch_threads}" if s.threads else ""
    return command(s, wild) + threads + " 2>&1 | tee {log}"
