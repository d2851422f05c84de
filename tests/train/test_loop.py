"""The training loop end to end on a tiny model (CPU, 1 thread, a few iterations each)."""

from __future__ import annotations

import json
import logging
import shutil

import jsonschema
import pytest
import torch
import yaml

import fewgan_train_testkit as kit
from fewgan.io import torch_load
from fewgan.models.registry import load_snapshot
from fewgan.train import loop
from fewgan.train.data import Batches
from fewgan.train.loop import TrainingDivergedError, TrainingInterrupted
from fewgan.schemas.train import TRAIN_SCHEMA
from fewgan.train.state import RESUME_FORMAT


def _run(dirs, params=None, **kw):
    return loop.train(params or kit.make_params(**kw), kit.DATASET, kit.MODEL, threads=1, **dirs)


def _final_weights(dirs, iteration=6):
    """(G_ema state from the published snapshot, D state from the resume file)."""
    snap = torch_load(dirs["out_dir"] / "snapshots" / f"snapshot_{iteration:07d}.pt")
    resume = torch_load(dirs["work_dir"] / "resume.pt")
    D = {k[2:]: v for k, v in resume["model"].items() if k.startswith("D.")}
    assert resume["iteration"] == iteration and D
    return snap["G_ema"], D


def _assert_same(a: dict, b: dict):
    """Bit for bit: the run is deterministic (CPU, 1 thread, the same kernels in one process), so any difference
    is a resume bug, never rounding."""
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), f"tensor {k} differs"


def _sub(dirs, tmp_path, name):
    return {k: tmp_path / name / v.name for k, v in dirs.items()}


@pytest.fixture
def reference(toy_data, dirs):
    """An uninterrupted 6-iteration run (snapshots at 3 and 6)."""
    res = _run(dirs)
    return res, _final_weights(dirs)


def test_resume_is_bit_exact_after_crash_between_snapshots(reference, tmp_path, dirs):
    _, (G_ref, D_ref) = reference
    other = _sub(dirs, tmp_path, "crash")
    kit.TinyGAN.hooks = {"crash": 4}  # dies in the 5th step, after the snapshot at iteration 3
    with pytest.raises(RuntimeError, match="injected crash"):
        _run(other)
    assert torch_load(other["work_dir"] / "resume.pt")["iteration"] == 3
    assert not other["out_dir"].exists()
    kit.TinyGAN.hooks = {}
    res = _run(other)
    assert res.run["sessions_started_at"] == [0, 3]
    G, D = _final_weights(other)
    _assert_same(G, G_ref)
    _assert_same(D, D_ref)
    # the log of the resumed run is the log of the uninterrupted one (timings aside), exactly: log.jsonl keeps
    # the losses unrounded and both runs computed the same values
    timing = ("wall_s", "it_per_s", "img_per_s", "s_per_kimg", "peak_mem_mb")
    strip = lambda rows: [{k: v for k, v in r.items() if k not in timing} for r in rows]  # noqa: E731
    read = lambda d: [json.loads(s) for s in (d["out_dir"] / "log.jsonl").read_text().splitlines()]  # noqa: E731
    assert strip(read(other)) == strip(read(dirs))
    assert [r["iteration"] for r in read(other)] == [1, 2, 3, 4, 5, 6]
    # the live curves continue at the resumed step: each step once, with log.jsonl's values (DVCLive's TSVs,
    # TensorBoard's events read back with its own reader)
    rows = {r["iteration"]: r for r in read(other)}
    for name in ("loss_D", "loss_G", "kimg"):
        tsv = other["out_dir"] / "dvclive" / "plots" / "metrics" / "train" / f"{name}.tsv"
        lines = [ln.split("\t") for ln in tsv.read_text().splitlines()]
        assert lines[0] == ["step", name]
        assert [int(r[0]) for r in lines[1:]] == [1, 2, 3, 4, 5, 6]
        assert [float(r[1]) for r in lines[1:]] == pytest.approx([float(rows[i][name]) for i in range(1, 7)], rel=1e-6)
        ev = _tb_scalars(other["out_dir"] / "tensorboard", name)
        assert [e[0] for e in ev] == [1, 2, 3, 4, 5, 6]
        assert [e[1] for e in ev] == pytest.approx([float(rows[i][name]) for i in range(1, 7)], rel=1e-6)


def _tb_scalars(logdir, tag):
    """(step, value) of `tag`, as TensorBoard shows them: its own event reader, purged steps dropped."""
    pytest.importorskip("tensorboard", reason="TensorBoard event checks need the tensorboard package (dev extra)")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(logdir), size_guidance={"scalars": 0})
    acc.Reload()
    return [(e.step, e.value) for e in acc.Scalars(tag)]


def test_resume_is_bit_exact_after_sigint_and_after_extending_iterations(reference, tmp_path, dirs):
    _, (G_ref, D_ref) = reference
    # SIGINT during step 1: the loop finishes that step, saves the resume state at iteration 2, stops
    sig = _sub(dirs, tmp_path, "sigint")
    kit.TinyGAN.hooks = {"signal": 1}
    with pytest.raises(TrainingInterrupted, match=r"SIGINT at iteration 2.*re-run"):
        _run(sig)
    assert torch_load(sig["work_dir"] / "resume.pt")["iteration"] == 2
    kit.TinyGAN.hooks = {}
    _run(sig)
    _assert_same(_final_weights(sig)[0], G_ref)
    _assert_same(_final_weights(sig)[1], D_ref)
    # 3 iterations, then the same run extended to 6 (iterations is not part of the params hash)
    ext = _sub(dirs, tmp_path, "extend")
    _run(ext, iterations=3)
    res = _run(ext)
    assert res.run["sessions_started_at"] == [0, 3]
    G, D = _final_weights(ext)
    _assert_same(G, G_ref)
    _assert_same(D, D_ref)


def test_changed_params_start_fresh_and_say_why(toy_data, dirs, caplog):
    _run(dirs, iterations=3)
    with caplog.at_level(logging.WARNING, logger="fewgan.train"):
        res = _run(dirs, params=kit.make_params({"lr": 1e-3}, iterations=3))
    assert res.run["sessions_started_at"] == [0]
    assert any("not resuming" in r.message and "model_cfg.{lr}" in r.message for r in caplog.records)
    assert (dirs["work_dir"] / "stale" / "resume.pt").exists()  # the old state is set aside, not lost


def test_finished_run_republishes_without_training(toy_data, dirs):
    first = _run(dirs, iterations=3).run
    shutil.rmtree(dirs["out_dir"])  # an engine deleting its declared output before a re-run
    again = _run(dirs, iterations=3).run
    assert again["sessions_started_at"] == [0, 3]
    assert again["snapshots"] == first["snapshots"]
    assert (dirs["out_dir"] / "snapshots" / "snapshot_0000003.pt").exists()
    assert (dirs["out_dir"] / "interpolation.png").read_bytes() == (dirs["work_dir"] / "interpolation.png").read_bytes()


def test_nan_guard_names_iteration_and_keeps_last_good_snapshot(toy_data, dirs):
    kit.TinyGAN.hooks = {"nan": 3}  # step 3 = the 4th iteration, after the snapshot at 3
    with pytest.raises(TrainingDivergedError) as err:
        _run(dirs, log_every=100, sample_every=100)
    msg = str(err.value)
    assert "non-finite loss at iteration 4" in msg
    assert "snapshot_0000003.pt" in msg and "resume.pt" in msg
    resume = torch_load(dirs["work_dir"] / "resume.pt")
    assert resume["iteration"] == 3
    assert all(torch.isfinite(v).all() for v in resume["model"].values() if v.is_floating_point())
    snap = torch_load(dirs["work_dir"] / "snapshots" / "snapshot_0000003.pt")
    assert all(torch.isfinite(v).all() for v in snap["G_ema"].values() if v.is_floating_point())
    assert sorted(p.name for p in (dirs["work_dir"] / "snapshots").iterdir()) == ["snapshot_0000003.pt"]
    assert not dirs["out_dir"].exists()


def test_outputs_logs_and_run_json(toy_data, dirs):
    res = _run(dirs)
    out = dirs["out_dir"]
    assert sorted(p.name for p in out.iterdir()) == ["dvclive", "interpolation.png", "log.csv", "log.jsonl", "run.json",
                                                     "samples", "snapshots", "tensorboard"]
    # the sample grids went live too: DVCLive images per sampled iteration, TensorBoard images
    assert sorted(p.name for p in (out / "dvclive" / "plots" / "images" / "samples").iterdir()) == [
        "0000003.png", "0000006.png"]
    live_metrics = json.loads((out / "dvclive" / "metrics.json").read_text())
    assert live_metrics["step"] == 6 and live_metrics["train"]["kimg"] == pytest.approx(6 * 4 / 1000)
    run = json.loads((out / "run.json").read_text())
    assert run["iterations"] == 6 and run["batch_size"] == 4 and run["resolution"] == kit.RES
    assert run["params_G"] == sum(p.numel() for p in res.model.G.parameters())
    assert run["params_D"] == sum(p.numel() for p in res.model.D.parameters())
    assert [{k: e[k] for k in ("iteration", "path")} for e in run["snapshots"]] == [
        {"iteration": 3, "path": "snapshots/snapshot_0000003.pt"}, {"iteration": 6, "path": "snapshots/snapshot_0000006.pt"}]
    # the compute axis: images shown, training seconds and FLOPs so far, per snapshot
    s3, s6 = run["snapshots"]
    assert (s3["kimg"], s6["kimg"]) == (3 * 4 / 1000, 6 * 4 / 1000) and s3["device"] == "cpu"
    per_it = run["compute"]["flops_per_iteration"]["None"]  # TinyGAN: one cost class
    assert per_it > 0 and (s3["flops"], s6["flops"]) == (3 * per_it, 6 * per_it) == (run["compute"]["flops"] // 2, run["compute"]["flops"])
    assert 0 < s3["train_seconds"] <= s6["train_seconds"] <= run["wall_seconds"]
    assert run["samples"] == ["iter_0000003.png", "iter_0000006.png"]
    assert run["device"] == "cpu" and run["fallbacks"] == [] and run["n_train_images"] == 12
    assert run["augment_policy"] == "color,translation,cutout" and run["augment_policy_source"] == "train.augment_policy"
    assert run["wall_seconds"] > 0 and 0 < run["seconds_per_iteration"] < run["wall_seconds"]  # 1 ms, 1 us steps: far apart
    assert "git" in run["provenance"]
    rows = [json.loads(s) for s in (out / "log.jsonl").read_text().splitlines()]
    assert [r["iteration"] for r in rows] == [1, 2, 3, 4, 5, 6]
    assert {"loss_D", "loss_G", "D/real", "D/fake", "G/g", "it_per_s", "wall_s", "kimg", "img_per_s", "s_per_kimg",
            "peak_mem_mb"} <= rows[0].keys()
    assert rows[0]["img_per_s"] == pytest.approx(rows[0]["it_per_s"] * 4, rel=1e-2) and rows[0]["peak_mem_mb"] > 0
    assert rows[-1]["loss_G"] == rows[-1]["G/g"]
    assert len((out / "log.csv").read_text().splitlines()) == 7
    # snapshots load through the consumers' reader and hold the EMA generator
    gan, G, meta = load_snapshot(out / "snapshots" / "snapshot_0000006.pt")
    assert meta["iteration"] == 6 and meta["dataset"] == kit.DATASET and meta["model"] == kit.MODEL
    for k, v in res.trainer.emas["G"].module.state_dict().items():
        assert torch.equal(G.state_dict()[k], v), k
    # sample grids: grid_size^2 images of R x R; interpolation: interpolation_steps in a row
    from PIL import Image

    assert Image.open(out / "samples" / "iter_0000006.png").size == (2 * kit.RES, 2 * kit.RES)
    assert Image.open(out / "interpolation.png").size == (3 * kit.RES, kit.RES)
    # everything in the resume file loads with weights_only=True (torch_load) and has the documented keys
    resume = torch_load(dirs["work_dir"] / "resume.pt")
    assert resume["format"] == RESUME_FORMAT
    assert {"model", "G_ema", "optim", "rng", "data", "params_hash", "iteration"} <= resume.keys()
    assert resume["data"] == {"with_replacement": False, "epoch": 2, "batch_in_epoch": 0, "steps_per_epoch": 3,
                              "n_images": 12}


def test_publish_replaces_old_output_whole_and_failure_leaves_it_intact(toy_data, dirs, monkeypatch):
    dirs["out_dir"].mkdir(parents=True)
    (dirs["out_dir"] / "leftover.txt").write_text("from an older run")
    _run(dirs, iterations=3)
    assert not (dirs["out_dir"] / "leftover.txt").exists()
    before = sorted(p.relative_to(dirs["out_dir"]) for p in dirs["out_dir"].rglob("*"))
    from fewgan.train import checkpoint

    real_write = checkpoint.atomic_write_json

    def failing(path, obj):
        if path.name == "run.json":
            raise OSError("disk full (injected)")
        return real_write(path, obj)

    monkeypatch.setattr(checkpoint, "atomic_write_json", failing)
    with pytest.raises(OSError, match="injected"):
        _run(dirs, iterations=6)
    assert sorted(p.relative_to(dirs["out_dir"]) for p in dirs["out_dir"].rglob("*")) == before
    assert [p.name for p in dirs["out_dir"].parent.iterdir()] == ["train"]  # no temp dirs left behind


def test_too_few_images_sample_with_replacement_and_record_it(monkeypatch, dirs):
    images, names = kit.toy_images(n=3)
    monkeypatch.setattr(loop, "load_train_images", lambda c, s, r: (images, names))
    monkeypatch.setattr(loop, "load_train_labels", lambda split_dir, names: (None, {}))
    run = _run(dirs, iterations=2, snapshot_every=2).run
    assert any("with replacement" in f for f in run["fallbacks"])
    assert json.loads((dirs["out_dir"] / "run.json").read_text())["fallbacks"] == run["fallbacks"]


def test_model_augment_policy_overrides_train_policy(toy_data, dirs):
    run = _run(dirs, params=kit.make_params({"augment_policy": "color"}, iterations=1)).run
    assert run["augment_policy"] == "color" and run["augment_policy_source"] == "models.tiny_test.augment_policy"
    with pytest.raises(ValueError, match=r"models.tiny_test.augment_policy.*'flip'"):
        _run(dirs, params=kit.make_params({"augment_policy": "flip"}, iterations=1))


def test_batches_cover_each_image_once_per_epoch_and_shard_across_ranks():
    images, _ = kit.toy_images(n=10)
    b = Batches(images, 2, seed=0, rank=0, world=1, xflip=False, device=torch.device("cpu"), channels_last=False)
    assert b.steps_per_epoch == 5
    epoch0 = torch.cat([b.indices(s) for s in range(5)])
    assert sorted(epoch0.tolist()) == list(range(10))
    assert not torch.equal(epoch0, torch.cat([b.indices(s) for s in range(5, 10)]))  # reshuffled
    assert torch.equal(b.indices(7), Batches(images, 2, 0, 0, 1, False, torch.device("cpu"), False).indices(7))
    r0 = Batches(images, 2, 0, 0, 2, False, torch.device("cpu"), False)
    r1 = Batches(images, 2, 0, 1, 2, False, torch.device("cpu"), False)
    seen0 = torch.cat([r0.indices(s) for s in range(2)])
    seen1 = torch.cat([r1.indices(s) for s in range(2)])
    assert not set(seen0.tolist()) & set(seen1.tolist())  # disjoint shards within an epoch
    x, labels = b(0)
    assert labels is None
    assert x.dtype == torch.float32 and x.min() >= -1 and x.max() <= 1
    assert torch.equal(((x + 1) * 127.5).round().to(torch.uint8), images[b.indices(0)])  # exact inverse


def test_params_file_matches_schema_and_schema_catches_mistakes(toy_data, dirs):
    train = yaml.safe_load((kit.REPO / "params" / "train.yaml").read_text())
    jsonschema.validate(train, TRAIN_SCHEMA)
    assert train["iterations"] == 50000 and train["batch_size"] == 8 and train["snapshot_every"] == 5000
    params = kit.make_params()
    params["train"]["snapshot_evry"] = 5
    with pytest.raises(jsonschema.ValidationError, match=r"snapshot_evry"):
        jsonschema.validate(params["train"], TRAIN_SCHEMA)
    del params["train"]["snapshot_evry"], params["train"]["grid_size"]
    with pytest.raises(jsonschema.ValidationError, match=r"'grid_size' is a required property"):
        jsonschema.validate(params["train"], TRAIN_SCHEMA)
    params = kit.make_params(augment_policy="color, cutout")
    with pytest.raises(jsonschema.ValidationError, match=r"does not match"):
        jsonschema.validate(params["train"], TRAIN_SCHEMA)


def test_training_reads_only_train_images_through_the_loader(dirs, monkeypatch):
    """Real fewgan.data.loading: the held-out files are deleted and PIL is watched; training still runs and
    decodes exactly the train rows."""
    import csv

    from PIL import Image

    from fewgan.io import sha256_file

    images, _ = kit.toy_images(n=10)
    cur, spl = dirs["curated_dir"], dirs["split_dir"]
    (cur / "images").mkdir(parents=True)
    spl.mkdir(parents=True)
    rows = []
    for i in range(10):
        p = cur / "images" / f"im{i}.png"
        Image.fromarray(images[i].permute(1, 2, 0).numpy()).save(p)
        rows.append({"file": f"images/im{i}.png", "sha256": sha256_file(p), "split": "test" if i >= 8 else "train",
                     "source": "toy", "pixels_sha256": "", "u": ""})
    with open(spl / "split.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    for i in (8, 9):
        (cur / "images" / f"im{i}.png").unlink()  # a test image that is read would now fail loudly
    opened = []
    real_open = Image.open
    monkeypatch.setattr(Image, "open", lambda fp, *a, **k: (opened.append(str(fp)), real_open(fp, *a, **k))[1])
    run = _run(dirs, iterations=1).run
    assert run["n_train_images"] == 8
    assert sorted(opened) == sorted(str(cur / "images" / f"im{i}.png") for i in range(8))


def test_xflip_flips_some_images_deterministically():
    images, _ = kit.toy_images(n=8)
    mk = lambda: Batches(images, 8, 0, 0, 1, True, torch.device("cpu"), False)  # noqa: E731
    plain = Batches(images, 8, 0, 0, 1, False, torch.device("cpu"), False)(0)[0]
    a, b = mk()(0)[0], mk()(0)[0]
    assert torch.equal(a, b)
    flipped = [not torch.equal(a[i], plain[i]) for i in range(8)]
    assert any(flipped) and not all(flipped)
    for i in range(8):
        assert torch.equal(a[i], plain[i].flip(2) if flipped[i] else plain[i])


def test_bf16_autocast_and_channels_last_switches_run_on_cpu(toy_data, dirs):
    run = _run(dirs, iterations=2, snapshot_every=2, precision="bf16", channels_last=True).run
    assert run["precision"] == "bf16" and run["channels_last"] is True
    snap = torch_load(dirs["out_dir"] / "snapshots" / "snapshot_0000002.pt")
    assert all(v.is_contiguous() for v in snap["G_ema"].values())  # stored in the standard layout
