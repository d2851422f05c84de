"""params/: resolution of profiles, validation errors that name the file and the key."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from fewgan.params import PROFILES, ParamsError, load_active, resolve, validate, write_active

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def params_dir(tmp_path: Path) -> Path:
    dst = tmp_path / "params"
    shutil.copytree(REPO / "params", dst)
    return dst


def _edit(path: Path, fn) -> None:
    data = yaml.safe_load(path.read_text()) or {}
    fn(data)
    path.write_text(yaml.safe_dump(data, sort_keys=False))


@pytest.mark.parametrize("profile", PROFILES)
def test_every_profile_resolves_and_validates(params_dir, profile):
    params, origin = resolve(profile, params_dir)
    validate(params, origin)
    assert params["profile"] == profile
    for d in params["experiment"]["datasets"]:
        assert d in params["datasets"]
    for m in params["experiment"]["models"]:
        assert m in params["models"]


def test_committed_active_file_is_the_demo_profile_and_fresh(monkeypatch):
    monkeypatch.chdir(REPO)
    params = load_active(Path("params/active.yaml"))
    assert params["profile"] == "demo"


def test_profiles_differ_in_scale(params_dir):
    smoke, _ = resolve("smoke", params_dir)
    demo, _ = resolve("demo", params_dir)
    paper, _ = resolve("paper", params_dir)
    assert smoke["train"]["iterations"] < demo["train"]["iterations"] < paper["train"]["iterations"]
    assert paper["evaluation"]["fid"]["n_fake"] == 5000  # DiffAugment protocol (REFERENCE §2)
    res = lambda p: max(p["datasets"][d]["resolution"] for d in p["experiment"]["datasets"])  # noqa: E731
    assert res(paper) >= 256


def test_typo_in_a_model_key_names_file_and_suggests(params_dir):
    f = params_dir / "models" / "fastgan.yaml"
    _edit(f, lambda d: d.update(ngff=d.pop("ngf")))
    params, origin = resolve("paper", params_dir)
    with pytest.raises(ParamsError) as e:
        validate(params, origin)
    msg = str(e.value)
    assert "fastgan.yaml" in msg and "models.fastgan.ngff" in msg and "did you mean 'ngf'" in msg


def test_unknown_model_in_experiment(params_dir):
    _edit(params_dir / "profiles" / "smoke.yaml",
          lambda d: d.setdefault("experiment", {}).update(models=["fastgan", "stylegan3"]))
    params, origin = resolve("smoke", params_dir)
    with pytest.raises(ParamsError, match=r"profiles/smoke.yaml.*unknown model 'stylegan3'"):
        validate(params, origin)


def test_unknown_dataset_in_experiment(params_dir):
    _edit(params_dir / "profiles" / "paper.yaml", lambda d: d["experiment"].update(datasets=["demo_facez"]))
    params, origin = resolve("paper", params_dir)
    with pytest.raises(ParamsError, match=r"unknown dataset 'demo_facez' \(did you mean 'demo_faces'\?\)"):
        validate(params, origin)


@pytest.mark.parametrize("res", [48, 16, 2048])
def test_resolution_must_be_power_of_two_in_range(params_dir, res):
    _edit(params_dir / "datasets.yaml", lambda d: d["celebahq_stargan_v2"].update(resolution=res))
    params, origin = resolve("paper", params_dir)
    with pytest.raises(ParamsError, match=rf"datasets.yaml.*datasets.celebahq_stargan_v2.resolution = {res}"):
        validate(params, origin)


@pytest.mark.parametrize("ratio", [0.0, 1.0, 1.5])
def test_split_ratio_outside_open_interval(params_dir, ratio):
    _edit(params_dir / "datasets.yaml", lambda d: d["demo_faces"].setdefault("split", {}).update(ratio=ratio))
    params, origin = resolve("paper", params_dir)
    with pytest.raises(ParamsError, match=r"datasets.demo_faces.split.ratio"):
        validate(params, origin)


def test_unknown_profile_and_broken_yaml(params_dir):
    with pytest.raises(ParamsError, match="unknown profile 'huge'"):
        resolve("huge", params_dir)
    (params_dir / "train.yaml").write_text("iterations: [1,\n")
    with pytest.raises(ParamsError, match=r"train.yaml: not valid YAML"):
        resolve("demo", params_dir)


def test_stale_active_file_is_refused(params_dir, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_active("smoke", Path("params"))
    load_active(Path("params/active.yaml"))  # fresh: fine
    _edit(Path("params/train.yaml"), lambda d: d.update(iterations=d["iterations"] + 1))
    with pytest.raises(ParamsError, match=r"stale: params/train.yaml changed.*fewgan params --profile smoke"):
        load_active(Path("params/active.yaml"))
