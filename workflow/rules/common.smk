# Names shared by all rules: the experiment matrix and the output layout (docs/DESIGN.md).
import glob


DATASETS = config["experiment"]["datasets"]
MODELS = config["experiment"]["models"]
THREADS = config["resources"]["threads"]


wildcard_constraints:
    dataset="[A-Za-z0-9_.-]+",
    model="[A-Za-z0-9_.-]+",


def code(package):
    """The fewgan sources a stage runs (a change re-runs the stage, as DVC's deps do)."""
    return sorted(glob.glob(f"src/fewgan/{package}/**/*.py", recursive=True))
