"""`fewgan bench`: what each stage costs on this machine, and what each profile will cost.

Prints (medians of `--repeats` timed runs after one warm-up):
  1. seconds per training iteration of every registered model at 64/128/256 px (512/1024 on GPU),
     with the demo profile's widths and the train batch of the active params, through the same
     D-step / G-step / EMA sequence as `fewgan.train.loop`;
  2. the FID extractor's images/s as torch-fidelity ships it and as fewgan runs it (channels_last),
     with the largest feature difference between the two;
  3. SWD and MS-SSIM wall time at 256 px, and inversion seconds per image per step; with training's
     (1.), the EfficientNet-Lite0 extractor's and the inversion's FLOP rates as fractions of this
     machine's measured matmul peak: how close training and evaluation come to the limit;
  4. an estimate of every profile's total time (smoke, demo, paper) from those figures;
  5. with `--compare DIR`: the estimate for the active profile next to the stage.json costs of a
     finished run in DIR (a project directory after `snakemake all` / `dvc repro`).
"""

from __future__ import annotations

import copy
import json
import os
import statistics
import time
from pathlib import Path
from typing import Any, Callable

import torch

from fewgan.io import atomic_write_json


def _median_time(fn: Callable[[], Any], repeats: int, warmup: int = 1) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _peak_rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


# --------------------------------------------------------------------------------------------------
# 1. training step
# --------------------------------------------------------------------------------------------------
def train_step_seconds(params: dict, model_name: str, resolution: int, batch: int, repeats: int,
                       device: str = "cpu") -> dict:
    """Median seconds of one training iteration: `Trainer.step` (fewgan.train.trainer), as the loop runs it,
    averaged over the run's cost classes (a growing ProGAN's levels, a lazy regulariser's steps)."""
    from fewgan.models.base import TrainContext
    from fewgan.train.diffaugment import augment
    from fewgan.train.record import augment_policy
    from fewgan.train.trainer import build_trainer

    torch.manual_seed(0)
    cfg = copy.deepcopy(params["models"][model_name])
    ctx = TrainContext(batch_size=batch, iterations=int(params["train"]["iterations"]), device=device,
                       weights=params["evaluation"]["weights"])
    trainer = build_trainer(model_name, cfg, resolution, ctx)
    gan = trainer.gan
    fallbacks = list(gan.fallbacks())
    policy, _ = augment_policy(params, model_name)
    real = torch.rand(batch, 3, resolution, resolution, device=device) * 2 - 1
    gen = torch.Generator().manual_seed(0)

    def step(at: int) -> None:
        trainer.step(at, reals=lambda j: (real, None),
                     latents=lambda: gan.sample_latents(batch, generator=gen).to(device),
                     augment=lambda x: augment(x, policy))
        if device != "cpu":
            torch.cuda.synchronize()

    # the run's iterations by cost class (GANModel.cost_key: ProGAN's level and fade, StyleGAN2's lazy
    # regularisers): each class timed at its first iteration, weighted by its share of the run
    from fewgan.train.flops import StepFlops

    iterations = int(params["train"]["iterations"])
    classes = cost_classes(gan, iterations)
    count_flops = StepFlops(trainer, batch, resolution, lambda x: augment(x, policy))
    seconds = flops = 0.0
    for its in classes.values():
        share = len(its) / iterations
        seconds += share * _median_time(lambda: step(its[0]), repeats)
        flops += share * count_flops(its[0])
    gen_time = _median_time(lambda: _generate_batch(gan, trainer.sampling_network(), batch, device), repeats)
    return {"model": model_name, "resolution": resolution, "batch": batch, "s_per_iter": seconds,
            "gflop_per_iter": flops / 1e9, "gflop_s": flops / 1e9 / seconds if seconds else float("nan"),
            "generate_s_per_image": gen_time / batch,
            "params_G": sum(p.numel() for p in gan.network(gan.primary).parameters()),
            "peak_rss_mb": _peak_rss_mb(), "fallbacks": fallbacks}


def cost_classes(gan, iterations: int) -> dict[Any, list[int]]:
    """{cost class (GANModel.cost_key): the iterations of a run of `iterations` in it}, in order of first use."""
    classes: dict[Any, list[int]] = {}
    for it in range(int(iterations)):
        classes.setdefault(gan.cost_key(it), []).append(it)
    return classes


@torch.no_grad()
def _generate_batch(gan, G, n: int, device: str) -> torch.Tensor:
    G.eval()
    return gan.generate(G, gan.sample_latents(n).to(device))


# --------------------------------------------------------------------------------------------------
# 2. FID extractor
# --------------------------------------------------------------------------------------------------
def extractor_images_per_second(params: dict, n: int, repeats: int) -> dict:
    """torch-fidelity's InceptionV3 as shipped vs fewgan's channels_last module, same weights."""
    from fewgan.metrics.fid import InceptionExtractor
    from fewgan.weights import resolve

    info = resolve("inception-v3-compat", params)
    images = torch.randint(0, 256, (n, 3, 64, 64), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    shipped = InceptionExtractor(info, channels_last=False, batch_size=n)
    fast = InceptionExtractor(info, channels_last=True, batch_size=n)
    t_shipped = _median_time(lambda: shipped(images), repeats)
    t_fast = _median_time(lambda: fast(images), repeats)
    diff = float((shipped(images) - fast(images)).abs().max())
    return {"n": n, "shipped_img_s": n / t_shipped, "fewgan_img_s": n / t_fast, "speedup": t_shipped / t_fast,
            "max_abs_feature_diff": diff, "weights": info.label, "standard_weights": info.standard}


def effnet_images_per_second(params: dict, n: int, repeats: int) -> dict:
    """The EfficientNet-Lite0 extractor (fewgan.metrics.effnet, 224 px) on 64 px images."""
    from fewgan.metrics.effnet import EffNetExtractor
    from fewgan.train.flops import count_flops
    from fewgan.weights import resolve

    info = resolve("effnet-lite0", params)
    images = torch.randint(0, 256, (n, 3, 64, 64), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    ex = EffNetExtractor(info, batch_size=n)
    seconds = _median_time(lambda: ex(images), repeats)
    # an untimed pass of the network itself: the counter's dispatch costs time, and it sees nothing of a call
    # under inference_mode (the extractor's)
    flops = count_flops(lambda: ex.net(images))
    return {"n": n, "img_s": n / seconds, "gflop_per_image": flops / n / 1e9, "gflop_s": flops / seconds / 1e9,
            "weights": info.label}


# --------------------------------------------------------------------------------------------------
# 3. SWD, MS-SSIM, inversion
# --------------------------------------------------------------------------------------------------
def swd_msssim_seconds(n_images: int, pairs: int, resolution: int, repeats: int) -> dict:
    from fewgan.metrics.msssim import msssim_set
    from fewgan.metrics.swd import swd

    g = torch.Generator().manual_seed(0)
    real = torch.randint(0, 256, (n_images, 3, resolution, resolution), dtype=torch.uint8, generator=g)
    fake = torch.randint(0, 256, (n_images, 3, resolution, resolution), dtype=torch.uint8, generator=g)
    t_swd = _median_time(lambda: swd(real, fake), repeats, warmup=0)
    t_ms = _median_time(lambda: msssim_set(fake, pairs), repeats, warmup=0)
    return {"resolution": resolution, "swd_images": n_images, "swd_s": t_swd, "msssim_pairs": pairs,
            "msssim_s": t_ms, "msssim_s_per_pair": t_ms / pairs}


def inversion_seconds(params: dict, model_name: str, resolution: int, n_images: int, steps: int) -> dict:
    """One `invert` call (backtrack recipe, `steps` steps of `n_images`, a random-init generator): its seconds and
    its FLOPs (fewgan.train.flops). G and LPIPS are frozen, so a step's backward computes input gradients only:
    a step costs twice the forward FLOPs of G and LPIPS (tests/invert/test_invert.py)."""
    from fewgan.invert.core import invert
    from fewgan.nets.lpips import build_lpips
    from fewgan.models.registry import build_model
    from fewgan.train.flops import count_flops

    torch.manual_seed(0)
    gan = build_model(model_name, params["models"][model_name], resolution)
    G = gan.G.eval().requires_grad_(False)
    lpips, _ = build_lpips(params["invert"]["lpips_net"], params, "cpu")
    target = torch.rand(n_images, 3, resolution, resolution) * 2 - 1
    inv = params["invert"]

    def run():
        invert(gan, G, target, lpips, recipe="backtrack", steps=steps, lr=inv["lr"], mse_weight=inv["mse_weight"],
               log_every=max(steps, 1))

    flops = count_flops(run)  # untimed (the counter's dispatch costs time); it also warms oneDNN's primitive cache
    t0 = time.perf_counter()
    run()
    seconds = time.perf_counter() - t0
    return {"model": model_name, "resolution": resolution, "n_images": n_images, "steps": steps,
            "s_per_step": seconds / steps, "s_per_image_per_step": seconds / steps / n_images,
            "gflop": flops / 1e9, "gflop_s": flops / seconds / 1e9}


def process_start_seconds(repeats: int) -> float:
    """Cost of starting one `fewgan` stage process (python + torch import), paid by every job."""
    import subprocess
    import sys

    code = "import torch, fewgan.cli, fewgan.metrics, fewgan.models"
    return _median_time(lambda: subprocess.run([sys.executable, "-c", code], check=True), repeats, warmup=1)


# --------------------------------------------------------------------------------------------------
# 4. profile estimates
# --------------------------------------------------------------------------------------------------
def serialisable(figures: dict) -> dict:
    """The figures with their (profile, model) keys as 'profile/model' (JSON; what fewgan.plan reads)."""
    return {k: ({f"{a}/{b}": v for (a, b), v in val.items()} if k in ("train_profile", "invert_profile") else val)
            for k, val in figures.items()}


def estimate_profile(p: dict, figures: dict) -> dict[str, float]:
    """Seconds per stage (summed over the experiment matrix, run one after the other): fewgan.plan.estimate, the
    same estimate `fewgan params` prints; models without a figure (translation models) are left out."""
    from fewgan.plan import estimate

    est = estimate(p, serialisable(figures))["stages"]
    est["total"] = sum(est.values())
    return est


def measured_costs(project: Path) -> dict[str, float]:
    """Sum of stage.json wall times per stage in a finished run."""
    totals: dict[str, float] = {}
    for f in list(project.glob("data/*/*/stage.json")) + list(project.glob("runs/*/*/*/*/stage.json")) + \
            list(project.glob("reports/*/stage.json")):
        rec = json.loads(f.read_text())
        totals[rec["stage"]] = totals.get(rec["stage"], 0.0) + float(rec["wall_s"])
    totals["total"] = sum(totals.values())
    return totals


# --------------------------------------------------------------------------------------------------
def _table(rows: list[dict], cols: list[str]) -> str:
    import pandas as pd

    return pd.DataFrame(rows, columns=cols).to_string(index=False, float_format=lambda v: f"{v:.4g}")


def main(args) -> dict:
    from fewgan.params import load_active, profiles as profile_names, resolve

    threads = os.cpu_count() or 1
    torch.set_num_threads(threads)
    active = load_active(Path(args.params), check_fresh=False)
    profiles = {name: resolve(name)[0] for name in profile_names()}
    repeats = 1 if args.quick else args.repeats
    models = args.models.split(",") if args.models else list(active["experiment"]["models"])
    resolutions = [int(r) for r in args.resolutions.split(",")]
    if torch.cuda.is_available():
        resolutions += [r for r in (512, 1024) if r not in resolutions]
    device = "cuda" if torch.cuda.is_available() else "cpu"
    print(f"fewgan bench on {torch.cuda.get_device_name(0) if device == 'cuda' else f'CPU ({threads} threads)'}; "
          f"medians of {repeats} run(s) after a warm-up\n")

    import datetime as _dt

    from fewgan.provenance import cpu_name

    figures: dict[str, Any] = {"device": device, "threads": threads, "repeats": repeats,
                               "machine": torch.cuda.get_device_name(0) if device == "cuda" else cpu_name(),
                               "measured_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                               "quick": bool(args.quick)}
    demo = profiles["demo"]
    batch = active["train"]["batch_size"]
    rows = []
    for m in models:
        for r in resolutions:
            rows.append(train_step_seconds(demo, m, r, batch, repeats, device))
    figures["train"] = rows
    peak = machine_peak_gflops(device)
    figures["peak_gflop_s"] = peak
    for row in rows:
        for kind, value in peak.items():
            row[f"of_{kind}_peak"] = row["gflop_s"] / value if value else float("nan")
    print(f"1. training iteration (demo widths, batch {batch}, every phase + EMA); FLOPs by "
          "torch.utils.flop_counter (fewgan.train.flops); this machine's measured peak: "
          + ", ".join(f"{k} {v:.0f} GFLOP/s" for k, v in peak.items()))
    print(_table(rows, ["model", "resolution", "batch", "s_per_iter", "gflop_per_iter", "gflop_s",
                        *(f"of_{k}_peak" for k in peak), "generate_s_per_image", "params_G", "peak_rss_mb"]))

    ex = extractor_images_per_second(active, 16 if args.quick else 32, repeats)
    figures["extractor"] = ex
    print(f"\n2. FID extractor (Inception 299 px, 2048-d; {ex['weights']})")
    print(_table([ex], ["n", "shipped_img_s", "fewgan_img_s", "speedup", "max_abs_feature_diff"]))
    eff = effnet_images_per_second(active, 16 if args.quick else 32, repeats)
    figures["effnet"] = eff
    print(f"   EfficientNet-Lite0 extractor (224 px, 1280-d; {eff['weights']}): {eff['img_s']:.3g} img/s, "
          f"{eff['gflop_per_image']:.3g} GFLOP/image, {eff['gflop_s']:.0f} GFLOP/s = "
          + ", ".join(f"{eff['gflop_s'] / v:.0%} of the {k} peak" for k, v in peak.items() if v))

    sw = swd_msssim_seconds(64 if args.quick else 256, 100 if args.quick else 500, 256, repeats)
    figures["swd"] = sw
    print("\n3. SWD and MS-SSIM at 256 px (fewgan, vectorised torch)")
    print(_table([sw], ["resolution", "swd_images", "swd_s", "msssim_pairs", "msssim_s"]))

    # per-profile figures at each profile's own widths and resolution
    figures["process_start_s"] = process_start_seconds(repeats)
    figures["curate_s_per_image"] = _curate_seconds_per_image()
    figures["train_profile"], figures["invert_profile"] = {}, {}
    inv_rows = []
    if args.quick:  # the paper profile's full-width networks take minutes per CPU iteration
        profiles.pop("paper")
    from fewgan.metrics.translation import translates

    not_measured = []
    for name, p in profiles.items():
        res = max(p["datasets"][d]["resolution"] for d in p["experiment"]["datasets"])
        for m in p["experiment"]["models"]:
            if translates(m):  # trained on paired/unpaired batches of two domains, which this step does not build
                not_measured.append(f"{name}/{m}")
                continue
            if name == "paper" and device == "cpu":
                figures["train_profile"][(name, m)] = train_step_seconds(p, m, res, p["train"]["batch_size"], 1, device)
            else:
                figures["train_profile"][(name, m)] = train_step_seconds(p, m, res, p["train"]["batch_size"], repeats, device)
            if name != "paper" or device != "cpu":
                # the profile's own batch of targets (at most 8: the demo's), where the FLOP rate is measured
                inv = inversion_seconds(p, m, res, min(8, int(p["invert"]["max_images"]) or 8), 3)
                inv_rows.append({"profile": name, **inv, **{f"of_{k}_peak": inv["gflop_s"] / v if v else float("nan")
                                                            for k, v in peak.items()}})
                figures["invert_profile"][(name, m)] = inv
    print(f"\n   inversion (backtrack recipe, LPIPS + 0.2 MSE); one stage process starts in "
          f"{figures['process_start_s']:.2f} s; curation {figures['curate_s_per_image'] * 1e3:.1f} ms/image (synthetic faces)")
    print(_table(inv_rows, ["profile", "model", "resolution", "n_images", "s_per_image_per_step", "gflop", "gflop_s",
                            *(f"of_{k}_peak" for k in peak)]))
    if not_measured:
        print("   not measured (translation models; their CPU s/iteration is in params/models/<model>.yaml): "
              + ", ".join(not_measured))
    figures["not_measured"] = not_measured

    est_rows = []
    for name, p in profiles.items():
        if all(f"{name}/{m}" in not_measured for m in p["experiment"]["models"]):
            continue
        est = estimate_profile(p, figures)
        est_rows.append({"profile": name, **{k: v / 60 for k, v in est.items()}})
    print("\n4. estimated minutes per stage, jobs run one after another on this machine")
    print(_table(est_rows, ["profile", "curate", "split", "train", "score", "select", "invert", "evaluate", "report", "total"]))
    if device == "cpu":
        print("   (paper on CPU: estimated from single iterations; it is meant for a GPU)")

    if getattr(args, "compare", None):
        measured = measured_costs(Path(args.compare))
        est = estimate_profile(profiles[active["profile"]], figures)
        cmp_rows = [{"stage": k, "estimated_s": est.get(k, 0.0), "measured_s": measured.get(k, 0.0),
                     "ratio": (measured.get(k, 0.0) / est[k]) if est.get(k) else float("nan")} for k in est]
        print(f"\n5. profile {active['profile']}: estimate vs the stage.json costs under {args.compare}")
        print(_table(cmp_rows, ["stage", "estimated_s", "measured_s", "ratio"]))
        figures["compare"] = cmp_rows
    if args.json:
        atomic_write_json(args.json, serialisable(figures))
    return figures


def machine_peak_gflops(device: str = "cpu", n: int = 2048, repeats: int = 5) -> dict[str, float]:
    """This machine's measured matmul throughput in GFLOP/s (median of `repeats` n x n x n products): fp32
    always, bf16 where the CPU has AVX512-BF16 or AMX (lscpu flags avx512_bf16 / amx_bf16) or on CUDA. The
    training steps' GFLOP/s divided by these is how close they come to the machine's limit."""
    kinds = {"fp32": torch.float32}
    flags = ""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        pass
    if device != "cpu" or "avx512_bf16" in flags or "amx_bf16" in flags:
        kinds["bf16"] = torch.bfloat16
    out = {}
    for name, dtype in kinds.items():
        a = torch.randn(n, n, device=device, dtype=dtype)
        b = torch.randn(n, n, device=device, dtype=dtype)

        def mm():
            a @ b
            if device != "cpu":
                torch.cuda.synchronize()

        out[name] = 2 * n ** 3 / _median_time(mm, repeats) / 1e9
    return out


def _curate_seconds_per_image() -> float:
    """Curation cost per image, measured on 24 synthetic faces (face mode, 64 px)."""
    import tempfile

    from fewgan.data import curate

    from fewgan.params import dataset_entry

    params = {"seed": 0, "datasets": {"bench": dataset_entry({
        "source": {"kind": "synthetic", "count": 24}, "mode": "face", "resolution": 64,
        "dedup": {"exact": True, "phash_max_distance": None}})}}
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        curate.run(params, "bench", Path(tmp) / "out")
        return (time.perf_counter() - t0) / 24
