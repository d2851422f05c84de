"""params/: resolution of profiles, validation errors that name the file and the key."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from fewgan.params import ParamsError, load_active, model_cfg, profiles, resolve, validate, write_active

REPO = Path(__file__).resolve().parents[1]
PROFILES = profiles(REPO / "params")


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
          lambda d: d.setdefault("experiment", {}).update(models=["fastgan", "stylegan_xl"]))
    params, origin = resolve("smoke", params_dir)
    with pytest.raises(ParamsError, match=r"profiles/smoke.yaml.*unknown model 'stylegan_xl'"):
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
    with pytest.raises(ParamsError, match=rf"datasets.yaml: key 'datasets.celebahq_stargan_v2.resolution': {res} is "
                                          r"not one of \[32, 64, 128, 256, 512, 1024\]") as e:
        validate(params, origin)
    assert str(e.value).count("\n  - ") == 1  # one line for one problem


@pytest.mark.parametrize("ratio", [0.0, 1.0, 1.5])
def test_split_ratio_outside_open_interval(params_dir, ratio):
    _edit(params_dir / "datasets.yaml", lambda d: d["demo_faces"].setdefault("split", {}).update(ratio=ratio))
    params, origin = resolve("paper", params_dir)
    with pytest.raises(ParamsError, match=r"datasets.yaml: key 'datasets.demo_faces.split.ratio'") as e:
        validate(params, origin)
    assert str(e.value).count("\n  - ") == 1  # one line for one problem


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


# ---- one source of defaults, names, profiles as files ----------------------------------------------------
def test_profiles_are_the_files_and_a_users_own_profile_works(params_dir):
    assert {"smoke", "demo", "paper", "celebahq128"} <= set(profiles(params_dir))
    (params_dir / "profiles" / "mine.yaml").write_text("train: {iterations: 7}\n")
    assert "mine" in profiles(params_dir)
    params, origin = resolve("mine", params_dir)
    validate(params, origin)
    assert params["profile"] == "mine" and params["train"]["iterations"] == 7
    assert origin["train.iterations"].endswith("profiles/mine.yaml")
    with pytest.raises(ParamsError, match=r"profile name '\.\./x' is not allowed"):
        resolve("../x", params_dir)


def test_a_profile_extends_another_and_its_own_keys_win(params_dir, monkeypatch):
    (params_dir / "profiles" / "mine.yaml").write_text(
        "train: {iterations: 7, batch_size: 3}\nexperiment: {models: [dcgan, fastgan]}\n")
    (params_dir / "profiles" / "mine_b.yaml").write_text(
        "extends: mine\ntrain: {iterations: 9}\nexperiment: {models: [dcgan]}\n")
    params, origin = resolve("mine_b", params_dir)
    validate(params, origin)
    assert "extends" not in params
    assert params["train"]["iterations"] == 9 and params["train"]["batch_size"] == 3
    assert params["experiment"]["models"] == ["dcgan"]
    assert origin["train.iterations"].endswith("profiles/mine_b.yaml")
    assert origin["train.batch_size"].endswith("profiles/mine.yaml")
    # both files are sources: editing the parent makes an active file of the child stale
    assert {Path(f).name for f in params["_meta"]["sources"]} >= {"mine.yaml", "mine_b.yaml"}
    # the committed StyleGAN3-R variant differs from afhq64_rest only in its model list and config
    base, _ = resolve("afhq64_rest", params_dir)
    variant, _ = resolve("afhq64_rest_stylegan3r", params_dir)
    assert variant["models"]["stylegan3"] == {**base["models"]["stylegan3"], "config": "r"}
    assert variant["train"] == base["train"] and variant["datasets"] == base["datasets"]
    # the active file of a variant loads (the run's stages check its profile), and goes stale with its parent
    monkeypatch.chdir(params_dir.parent)
    write_active("afhq64_rest_stylegan3r", Path("params"))
    assert load_active(Path("params/active.yaml"))["models"]["stylegan3"]["config"] == "r"
    _edit(Path("params/profiles/afhq64_rest.yaml"), lambda d: d["train"].update(iterations=7))
    with pytest.raises(ParamsError, match=r"stale: params/profiles/afhq64_rest.yaml changed"):
        load_active(Path("params/active.yaml"))
    (params_dir / "profiles" / "mine.yaml").write_text("extends: mine_b\n")
    with pytest.raises(ParamsError, match=r"extends: mine_b makes a cycle"):
        resolve("mine_b", params_dir)
    (params_dir / "profiles" / "mine.yaml").write_text("extends: nothere\n")
    with pytest.raises(ParamsError, match=r"mine.yaml: extends: 'nothere' is not a profile"):
        resolve("mine_b", params_dir)


def test_dataset_entries_are_completed_from_the_defaults_file(params_dir):
    params, origin = resolve("paper", params_dir)
    entry = params["datasets"]["celebahq_stargan_v2"]
    defaults = yaml.safe_load((params_dir / "dataset_defaults.yaml").read_text())
    assert entry["split"] == defaults["split"] and entry["max_pixels"] == defaults["max_pixels"]
    assert entry["source"]["kind"] == "folder" and entry["source"]["url"] is None  # merged key by key
    assert origin["datasets.celebahq_stargan_v2.split.ratio"].endswith("dataset_defaults.yaml")
    assert origin["datasets.celebahq_stargan_v2.resolution"].endswith("datasets.yaml")
    # an entry that overrides a nested key keeps the other defaults of that block
    assert params["datasets"]["demo_faces"]["dedup"] == {"exact": True, "phash_max_distance": None}
    # a key missing from both files is an error naming the key
    _edit(params_dir / "dataset_defaults.yaml", lambda d: d.pop("min_images"))
    params, origin = resolve("paper", params_dir)
    with pytest.raises(ParamsError, match=r"datasets.*'min_images' is a required property"):
        validate(params, origin)


def test_every_section_key_is_required(params_dir):
    _edit(params_dir / "invert.yaml", lambda d: d.pop("grid_images"))
    params, origin = resolve("smoke", params_dir)
    with pytest.raises(ParamsError, match=r"invert.yaml: key 'invert': 'grid_images' is a required property"):
        validate(params, origin)


@pytest.mark.parametrize("name", ["../../../escaped_outside", "<script>alert(1)</script>", "a..b", "-lead", "",
                                  "trailing_newline\n"])
def test_bad_dataset_names_are_refused_with_file_key_and_rule(params_dir, name):
    _edit(params_dir / "datasets.yaml", lambda d: d.update({name: d["demo_faces"]}))
    params, origin = resolve("smoke", params_dir)
    with pytest.raises(ParamsError) as e:
        validate(params, origin)
    msg = str(e.value)
    assert "datasets.yaml" in msg and repr(name) in msg and "starting with a letter or digit" in msg


def test_typo_in_an_overridden_experiment_list_is_still_an_error(params_dir):
    _edit(params_dir / "base.yaml", lambda d: d["experiment"].update(models=["fastgna", "dcgan"]))
    params, origin = resolve("smoke", params_dir)  # the smoke profile sets its own model list
    assert params["experiment"]["models"] == ["fastgan", "stylegan2", "dcgan", "progan", "biggan", "projected_gan"]
    with pytest.raises(ParamsError, match=r"base.yaml: experiment.models names unknown model 'fastgna' \(did you mean 'fastgan'\?\)"):
        validate(params, origin)


def test_command_line_experiment_override(params_dir, tmp_path):
    out = tmp_path / "active.yaml"
    p = write_active("smoke", params_dir, out, datasets=["celebahq_stargan_v2"], models=["dcgan"])
    stages = {"score": ["dcgan"], "select": ["dcgan"], "invert": ["dcgan"], "evaluate": ["dcgan"]}
    assert p["experiment"] == {"datasets": ["celebahq_stargan_v2"], "models": ["dcgan"], "seeds": [0],
                               "stage_models": stages}
    assert load_active(out, check_fresh=False)["_meta"]["experiment_override"] == {"datasets": ["celebahq_stargan_v2"], "models": ["dcgan"]}
    with pytest.raises(ParamsError, match=r"fewgan params \(command line\): experiment.datasets names unknown dataset 'nope'"):
        write_active("smoke", params_dir, out, datasets=["nope"])


def test_model_cfg_is_the_yaml_with_overrides(params_dir):
    cfg = model_cfg("fastgan", {"ngf": 16}, params_dir)
    assert cfg["ngf"] == 16 and cfg["nz"] == yaml.safe_load((params_dir / "models/fastgan.yaml").read_text())["nz"]
    with pytest.raises(ParamsError, match=r"fastgan.yaml: no key\(s\) \['ngff'\]"):
        model_cfg("fastgan", {"ngff": 16}, params_dir)


def test_every_registered_model_has_a_schema_module_and_a_yaml():
    from fewgan.models.base import registered_models
    from fewgan.models.registry import import_all_models
    from fewgan.models.specs import model_schemas

    import_all_models()
    builtin = {n for n, c in registered_models().items() if c.__module__.startswith("fewgan.models.")}
    assert builtin == set(model_schemas())
    assert builtin == {p.stem for p in (REPO / "params" / "models").glob("*.yaml")}


def test_fewgan_params_imports_no_torch(tmp_path):
    """`fewgan params` only validates YAML: no torch, no model code (fast; bench: `fewgan params` < 1 s). It reads
    the models' specs (fewgan.models.<m>.spec, plain data), never their model.py / nets.py."""
    import subprocess
    import sys

    shutil.copytree(REPO / "params", tmp_path / "params")
    code = ("import sys; from fewgan.cli import main; rc = main(['params', '--profile', 'smoke']); "
            "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'numpy', 'PIL', 'pandas') "
            "or (m.startswith('fewgan.models') and m.rsplit('.', 1)[-1] in ('model', 'nets', 'base', 'registry'))); "
            "print(rc, heavy)")
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "0 []", out.stdout + out.stderr


def test_hand_edited_active_file_with_a_wrong_type_gets_the_schema_error_not_a_crash(params_dir):
    for bad in (None, ["demo_faces"]):
        params, origin = resolve("smoke", params_dir)
        params["datasets"] = bad
        with pytest.raises(ParamsError, match=r"datasets.yaml: key 'datasets': .* is not of type 'object'"):
            validate(params, origin)


def test_a_name_with_a_trailing_newline_is_not_a_name():
    """A regex "$" also matches before a final newline: the check must not let "x\\n" become a folder name."""
    from fewgan.names import InvalidNameError, check_name, is_valid_name

    assert is_valid_name("celebahq") and not is_valid_name("celebahq\n")
    with pytest.raises(InvalidNameError, match="celebahq"):
        check_name("celebahq\n", "dataset", "--dataset")


def test_stage_models_are_derived_and_an_edit_that_breaks_them_is_refused(params_dir, tmp_path):
    """experiment.stage_models follows from experiment.models and the models' capabilities (spec.py); an
    active file edited so that they disagree (e.g. `dvc exp run -S` on experiment.models alone) is refused."""
    out = tmp_path / "active.yaml"
    write_active("smoke", params_dir, out)
    data = yaml.safe_load(out.read_text())
    assert data["experiment"]["stage_models"]["invert"] == data["experiment"]["models"]
    data["experiment"]["models"] = ["dcgan"]
    out.write_text(yaml.safe_dump(data))
    with pytest.raises(ParamsError, match=r"experiment.stage_models = .* does not follow from experiment.models"):
        load_active(out, check_fresh=False)
