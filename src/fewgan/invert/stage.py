"""`fewgan invert`: reconstruct held-out test images through every snapshot of a run (FastGAN Table 5).

Outputs in `out_dir` (runs/D/M/invert/):
* inversion.csv   - one row per (snapshot, split): iteration, lpips_mean, lpips_std, mse_mean, mse_std,
                    n_images, steps, then split, psnr_mean, psnr_std, msssim_mean, msssim_std,
                    effnet_deep_mean, effnet_deep_std (EfficientNet-Lite0 deep-feature distance), loss_initial,
                    loss_final, seconds, snapshot, measure (`inversion`; a translator's rows say which
                    reconstruction they measure: cycle_AB, cycle_BA, paired_AB; fewgan.invert.translation).
* inversion.json  - the same rows, per-image values, loss curves, settings, fallbacks, provenance.
* reconstructions.png - targets (first row) and the reconstruction at each snapshot (one row each).

Class-conditional generators invert each target with its own class fixed (`inversion_start(labels=...)`,
the class from split.csv); only z is optimised. inversion.json then lists the class of every image.
"""

from __future__ import annotations

import csv
import io
import logging
import math
import re
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fewgan.images import labelled_rows_png, to_uint8
from fewgan.invert.core import BACKTRACK_BETAS, PROJECTOR_BETAS, Distance, invert, reconstruction_metrics
from fewgan.io import atomic_write_bytes, atomic_write_json, atomic_write_text, sha256_file, torch_load

log = logging.getLogger(__name__)

CSV_COLUMNS = ["iteration", "lpips_mean", "lpips_std", "mse_mean", "mse_std", "n_images", "steps",
               "split", "psnr_mean", "psnr_std", "msssim_mean", "msssim_std", "effnet_deep_mean", "effnet_deep_std",
               "loss_initial", "loss_final", "seconds", "snapshot", "measure"]
#: the inversion headline (figure y-axis, report): LPIPS with the pretrained backbone; without it the
#: EfficientNet-Lite0 deep-feature distance (pretrained, installed from PyPI; fewgan.nets.perceptual); MS-SSIM
#: (no pretrained network) only when neither can be had
HEADLINES = {"lpips": ("lpips_mean", "LPIPS (lower = closer)"),
             "effnet_deep": ("effnet_deep_mean", "EfficientNet-Lite0 deep-feature distance (lower = closer; "
                                                 "Zhang et al. 2018 baseline, not LPIPS)"),
             "msssim": ("msssim_mean", "MS-SSIM of reconstruction vs target (higher = closer)")}
# ---- indirections (tests replace these; the real ones live in other fewgan packages) -------------
def _build_lpips(net: str, params: dict, device: torch.device) -> tuple[Distance, dict]:
    from fewgan.nets.lpips import build_lpips

    return build_lpips(net, params, device)


def _build_deep(params: dict, device: torch.device) -> tuple[Distance | None, dict]:
    from fewgan.nets.perceptual import build_deep_features

    return build_deep_features(params, device)


def _load_images(curated_dir: Path, split_dir: Path, which: str, resolution: int) -> tuple[Any, list[str]]:
    from fewgan.data.loading import load_images

    return load_images(curated_dir, split_dir, which=which, resolution=resolution)


def _load_labels(split_dir: Path, names: list[str]) -> tuple[torch.Tensor | None, dict[str, int]]:
    from fewgan.data.loading import labels_of

    return labels_of(split_dir, names)


def _provenance(params: dict, device: str) -> dict:
    from fewgan.provenance import collect

    return collect(params, device=device)


# ---- helpers ----------------------------------------------------------------------------------------
def select_snapshots(found: list[tuple[int, Path]], spec: Any, train_dir: Path) -> list[tuple[int, Path]]:
    """Apply invert.snapshots: 'all', a list of iterations, 'last_k: N' or {'last_k': N}."""
    if spec == "all":
        return found
    if isinstance(spec, dict) and "last_k" in spec:
        return found[-int(spec["last_k"]):]
    if isinstance(spec, str):
        m = re.fullmatch(r"\s*last_k\s*:\s*(\d+)\s*", spec)
        if m and int(m.group(1)) > 0:
            return found[-int(m.group(1)):]
        raise ValueError(f"invert.snapshots = {spec!r}: use 'all', a list of iterations or 'last_k: N'")
    if isinstance(spec, (list, tuple)):
        by_it = dict(found)
        missing = [int(i) for i in spec if int(i) not in by_it]
        if missing:
            raise ValueError(f"invert.snapshots lists iterations {missing} that have no snapshot in "
                             f"{Path(train_dir) / 'snapshots'} (available: {sorted(by_it)})")
        return [(int(i), by_it[int(i)]) for i in sorted(int(i) for i in spec)]
    raise ValueError(f"invert.snapshots = {spec!r}: use 'all', a list of iterations or 'last_k: N'")


def resolve_device(requested: str, fallbacks: list[str]) -> torch.device:
    from fewgan.device import resolve_device as _resolve

    return _resolve(requested, "inversion", fallbacks)


def _as_uint8_images(images: Any, names: list[str], which: str, curated_dir: Path) -> torch.Tensor:
    x = torch.as_tensor(np.asarray(images) if not isinstance(images, torch.Tensor) else images)
    if x.dtype != torch.uint8 or x.ndim != 4 or x.shape[1] != 3:
        raise ValueError(f"{curated_dir}: load_images(which={which!r}) returned {tuple(x.shape)} {x.dtype}; "
                         "expected uint8 N x 3 x R x R")
    if len(names) != x.shape[0]:
        raise ValueError(f"{curated_dir}: {x.shape[0]} {which} images but {len(names)} names")
    return x


def _latent_std(model: Any, G: Any, latent_shape: torch.Size, cfg: dict, fallbacks: list[str]) -> tuple[float, str]:
    """Reference scale of the projector's latent noise (stylegan2-ada: RMS distance of w samples to w_avg)."""
    setting = cfg["projector"]["latent_std"]
    if setting != "auto":
        return float(setting), "params invert.projector.latent_std"
    hook = getattr(model, "inversion_latent_std", None)
    if callable(hook):
        return float(hook(G)), f"{type(model).__name__}.inversion_latent_std"
    # W+ latents (n, num_ws, C): the projector's scale refers to one C-dim w vector
    dim = int(latent_shape[-1]) if len(latent_shape) > 2 else int(np.prod(latent_shape[1:]))
    if getattr(model, "conditional", False):
        dim -= 1  # the class column is not part of the optimised latent
    msg = (f"projector latent_std: model {type(model).__name__} has no inversion_latent_std(G); using "
           f"sqrt({dim}) (the value for a standard-normal latent of that size)")
    if msg not in fallbacks:
        log.warning(msg)
        fallbacks.append(msg)
    return math.sqrt(dim), "sqrt(latent dim) assumption"


def _mean_std(values: torch.Tensor) -> tuple[float, float]:
    v = values.double()
    return float(v.mean()), float(v.std(unbiased=False)) if v.numel() > 1 else 0.0


def _csv_text(rows: list[dict]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if isinstance(row[k], float) and not math.isfinite(row[k]) else row[k])
                         for k in CSV_COLUMNS})
    return buf.getvalue()


# ---- the stage ------------------------------------------------------------------------------------------
def run(params: dict, dataset: str, model: str, train_dir: Path, curated_dir: Path, split_dir: Path,
        out_dir: Path, threads: int) -> dict:
    """Invert the test images (and optionally `include_train` train images) through the selected snapshots
    of runs/<dataset>/<model>/train; write inversion.csv, inversion.json and reconstructions.png to out_dir.
    Returns the inversion.json content."""
    from fewgan.models.registry import load_snapshot

    from fewgan.models.registry import list_snapshots

    cfg = params["invert"]
    train_dir, out_dir = Path(train_dir), Path(out_dir)
    torch.set_num_threads(max(1, int(threads)))
    fallbacks: list[str] = []
    device = resolve_device(params["device"], fallbacks)

    snaps = select_snapshots(list_snapshots(train_dir), cfg["snapshots"], train_dir)
    # the generator's resolution decides the target size (profiles may train below the curated size)
    first = torch_load(snaps[0][1], map_location="cpu")
    if not isinstance(first, dict) or not isinstance(first.get("resolution"), int):
        raise ValueError(f"{snaps[0][1]}: not a fewgan snapshot (no resolution); re-run `fewgan train`")
    resolution = int(first["resolution"])
    del first

    images, names = _load_images(Path(curated_dir), Path(split_dir), "test", resolution)
    test_u8 = _as_uint8_images(images, list(names), "test", Path(curated_dir))
    names = list(names)
    if test_u8.shape[0] == 0:
        raise ValueError(f"{split_dir}: the split has no test images; inversion needs a held-out set "
                         "(set datasets.<name>.split.ratio below 1)")
    if cfg["max_images"] and cfg["max_images"] < test_u8.shape[0]:
        test_u8, names = test_u8[: cfg["max_images"]], names[: cfg["max_images"]]
    sets: list[tuple[str, torch.Tensor, list[str]]] = [("test", test_u8, names)]
    if cfg["include_train"]:
        tr_images, tr_names = _load_images(Path(curated_dir), Path(split_dir), "train", resolution)
        tr_u8 = _as_uint8_images(tr_images, list(tr_names), "train", Path(curated_dir))
        k = int(cfg["include_train"])
        if k > tr_u8.shape[0]:
            msg = f"include_train = {k} but the split has only {tr_u8.shape[0]} train images: using all of them"
            log.warning(msg)
            fallbacks.append(msg)
            k = tr_u8.shape[0]
        # a seeded random subset, so the train images are not biased towards the first files
        idx = torch.randperm(tr_u8.shape[0], generator=torch.Generator().manual_seed(int(cfg["seed"])))[:k]
        idx = idx.sort().values
        sets.append(("train", tr_u8[idx], [list(tr_names)[i] for i in idx.tolist()]))

    lpips, lpips_info = _build_lpips(cfg["lpips_net"], params, device)
    if lpips_info["note"]:
        msg = f"LPIPS-{cfg['lpips_net']}: {lpips_info['note']}"
        log.warning(msg)
        fallbacks.append(msg)
    try:
        deep, deep_info = _build_deep(params, device)
    except Exception as exc:  # the package is a dependency; say so loudly if it is broken or missing
        deep, deep_info = None, {"fallback": f"EfficientNet-Lite0 deep-feature distance unavailable ({exc}); "
                                             "effnet_deep columns left empty"}
        log.warning(deep_info["fallback"])
        fallbacks.append(deep_info["fallback"])

    rows: list[dict] = []
    per_image: list[dict] = []
    curves: list[dict] = []
    grid_rows: list[tuple[str, torch.Tensor]] = []
    snapshot_meta: list[dict] = []
    latent_std_source = None
    set_labels: dict[str, torch.Tensor] = {}  # split -> class index per image (conditional generators only)
    class_index: dict[str, int] = {}
    for iteration, path in snaps:
        net, G, meta = load_snapshot(path, device)
        if int(meta.get("iteration", iteration)) != iteration:
            raise ValueError(f"{path}: file name says iteration {iteration} but the snapshot holds "
                             f"{meta.get('iteration')}; the snapshots folder is inconsistent - re-run training")
        if meta.get("dataset") not in (None, dataset):
            raise ValueError(f"{path}: snapshot of dataset {meta.get('dataset')!r}, expected {dataset!r}")
        if test_u8.shape[-1] != int(meta.get("resolution", test_u8.shape[-1])):
            raise ValueError(f"{path}: generator resolution {meta.get('resolution')} differs from that "
                             f"of the first snapshot ({test_u8.shape[-1]} px); all snapshots of a run must share "
                             "one resolution - re-train")
        for fb in meta.get("fallbacks", []) or []:
            note = f"snapshot: {fb}"
            if note not in fallbacks:
                fallbacks.append(note)
        snapshot_meta.append({"iteration": iteration, "path": str(path), "sha256": sha256_file(path)})
        if net.conditional and not set_labels:
            for split, _, split_names in sets:
                y, class_index = _load_labels(Path(split_dir), split_names)
                if y is None or len(class_index) != net.num_classes:
                    raise ValueError(f"{path}: the generator is class-conditional ({net.num_classes} classes) but "
                                     f"{split_dir} has {len(class_index)} class(es); re-run `fewgan train` on this split")
                set_labels[split] = y
        for split, u8, split_names in sets:
            t0 = time.perf_counter()
            recon_parts, metric_parts, init_losses, final_losses = [], [], [], []
            curve_sum: dict[int, float] = {}
            latent_std = None
            for start in range(0, u8.shape[0], int(cfg["batch_size"])):
                target = u8[start:start + int(cfg["batch_size"])].to(device).float() / 127.5 - 1.0
                if cfg["recipe"] == "projector" and latent_std is None:
                    probe = net.inversion_start(G, 1, generator=torch.Generator().manual_seed(0), device=device)
                    latent_std, latent_std_source = _latent_std(net, G, probe.shape, cfg, fallbacks)
                y = (set_labels[split][start:start + int(cfg["batch_size"])].to(device)
                     if net.conditional else None)
                res = invert(net, G, target, lpips, recipe=cfg["recipe"], steps=int(cfg["steps"]),
                             lr=float(cfg["lr"]), mse_weight=float(cfg["mse_weight"]), seed=int(cfg["seed"]),
                             log_every=int(cfg["log_every"]), projector=cfg["projector"], latent_std=latent_std,
                             labels=y)
                nb = target.shape[0]
                recon_parts.append(to_uint8(res.images).cpu())
                metric_parts.append(reconstruction_metrics(lpips, res.images, target, deep))
                init_losses.append(res.loss_initial * nb)
                final_losses.append(res.loss_final * nb)
                for step, value in res.loss_curve:
                    curve_sum[step] = curve_sum.get(step, 0.0) + value * nb
            n = u8.shape[0]
            keys = ("lpips", "mse", "psnr", "msssim") + (("effnet_deep",) if deep is not None else ())
            metrics = {k: torch.cat([m[k].cpu() for m in metric_parts]) for k in keys}
            lp_m, lp_s = _mean_std(metrics["lpips"])
            mse_m, mse_s = _mean_std(metrics["mse"])
            ps_m, ps_s = _mean_std(metrics["psnr"])
            ms_m, ms_s = _mean_std(metrics["msssim"])
            dp_m, dp_s = _mean_std(metrics["effnet_deep"]) if deep is not None else (None, None)
            seconds = time.perf_counter() - t0
            rows.append({"iteration": iteration, "lpips_mean": lp_m, "lpips_std": lp_s, "mse_mean": mse_m,
                         "mse_std": mse_s, "n_images": n, "steps": int(cfg["steps"]), "split": split,
                         "psnr_mean": ps_m, "psnr_std": ps_s, "msssim_mean": ms_m, "msssim_std": ms_s,
                         "effnet_deep_mean": dp_m, "effnet_deep_std": dp_s, "loss_initial": sum(init_losses) / n,
                         "loss_final": sum(final_losses) / n, "seconds": round(seconds, 3),
                         "snapshot": path.name, "measure": "inversion"})
            per_image.append({"iteration": iteration, "split": split, "names": split_names,
                              **({"classes": [list(class_index)[i] for i in set_labels[split].tolist()]}
                                 if net.conditional else {}),
                              **{k: v.tolist() for k, v in metrics.items()}})
            curves.append({"iteration": iteration, "split": split,
                           "loss": [[s, v / n] for s, v in sorted(curve_sum.items())]})
            if split == "test":
                grid_rows.append((f"it {iteration}", torch.cat(recon_parts)))
            log.info("invert %s/%s it %d %s: LPIPS %.4f MSE %.5f PSNR %.2f dB MS-SSIM %.4f (%.1f s)", dataset,
                     model, iteration, split, lp_m, mse_m, ps_m, ms_m, seconds)
        del net, G

    settings = {
        "recipe": cfg["recipe"], "steps": int(cfg["steps"]), "lr": float(cfg["lr"]),
        "betas": list(BACKTRACK_BETAS if cfg["recipe"] == "backtrack" else PROJECTOR_BETAS),
        "loss": ("sum over images of LPIPS(avgpool2(G(w)), avgpool2(x)) + mse_weight * MSE(G(w), x)"
                 if cfg["recipe"] == "backtrack" else
                 "sum over images of LPIPS(G(w + noise), x) at <= max_lpips_resolution px"),
        "mse_weight": float(cfg["mse_weight"]), "lpips_net": cfg["lpips_net"], "lpips": lpips_info,
        "effnet_deep": deep_info,
        "snapshots": cfg["snapshots"], "batch_size": int(cfg["batch_size"]), "seed": int(cfg["seed"]),
        "max_images": int(cfg["max_images"]), "include_train": int(cfg["include_train"]),
        "projector": cfg["projector"] if cfg["recipe"] == "projector" else None,
        "projector_latent_std_source": latent_std_source,
        "projector_noise_regularisation": ("not applied: the model contract exposes no noise buffers"
                                           if cfg["recipe"] == "projector" else None),
        "final_latent": "the latent after the last step (not the best step)",
        "metric_notes": {
            "lpips": "full resolution, unpooled, same LPIPS module as the loss; reconstructions quantised to uint8",
            "mse": "per image, on the [-1, 1] scale (divide by 4 for the [0, 1] scale)",
            "psnr": "10*log10(4 / mse) dB with mse on [-1, 1] (identical to PSNR on [0, 1])",
            "msssim": "ProGAN MS-SSIM of each reconstruction against its target, both on the uint8 grid (higher = closer)",
            "effnet_deep": "EfficientNet-Lite0 deep-feature distance (fewgan.nets.perceptual) of each reconstruction "
                           "(uint8-quantised) to its target at their own resolution; pretrained ImageNet features, not LPIPS",
            "std": "population std (ddof 0) over images",
        },
        "device": str(device), "threads": int(threads), "resolution": resolution,
    }
    lpips_standard = lpips_info["note"] is None
    headline = "lpips" if lpips_standard else ("effnet_deep" if deep is not None else "msssim")
    not_lpips = ("the LPIPS backbone is not the pretrained one (" + str(lpips_info["note"]) +
                 "), so LPIPS values measure nothing perceptual: ")
    result = {
        "stage": "invert", "dataset": dataset, "model": model,
        "headline": {"metric": headline, "column": HEADLINES[headline][0], "label": HEADLINES[headline][1],
                     "why": ("LPIPS with the pretrained backbone" if lpips_standard else
                             not_lpips + "the headline is the deep-feature distance over pretrained EfficientNet-Lite0 "
                             "(Zhang et al. 2018's baseline without learned layers; MS-SSIM and PSNR beside it); "
                             "LPIPS stays in inversion.csv, labelled" if headline == "effnet_deep" else
                             not_lpips + "the headline is MS-SSIM (with PSNR beside it), which needs no pretrained "
                             "network; LPIPS stays in inversion.csv, labelled"),
                     "lpips_label": "LPIPS" if lpips_standard else "LPIPS (untrained backbone: not perceptual)"},
        "class_conditional": bool(set_labels), "class_index": class_index,
        "rows": rows, "per_image": per_image, "loss_curves": curves, "snapshots": snapshot_meta,
        "settings": settings, "fallbacks": fallbacks,
        "provenance": _provenance(params, str(device)),
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out_dir / "inversion.csv", _csv_text(rows))
    atomic_write_bytes(out_dir / "reconstructions.png",
                       labelled_rows_png(test_u8, grid_rows, int(cfg["grid_images"])))
    atomic_write_json(out_dir / "inversion.json", result)
    return result


def stage(ctx) -> dict:
    """`fewgan invert` (fewgan.stages): translators get the cycle / paired reconstruction errors instead."""
    from fewgan.metrics.translation import translates

    if translates(ctx.model):
        from fewgan.invert.translation import run as run_translator

        return run_translator(ctx.params, ctx.dataset, ctx.model, ctx.paths["train_dir"], ctx.paths["curated"],
                              ctx.paths["split"], ctx.out, ctx.threads)
    return run(ctx.params, ctx.dataset, ctx.model, ctx.paths["train_dir"], ctx.paths["curated"],
               ctx.paths["split"], ctx.out, ctx.threads)
