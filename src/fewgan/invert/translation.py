"""`fewgan invert` for translators (capability `translates`): what replaces inversion.

A latent generator is inverted: a latent is optimised until G(w) reproduces a held-out image, and the
reconstruction error per snapshot shows whether the generator can still reach unseen images (FastGAN Table 5).
A translator needs no optimisation to reconstruct: for every snapshot and every held-out **test** image it
measures, with the same per-image measures as inversion (fewgan.invert.core.reconstruction_metrics: LPIPS,
MSE and PSNR on [-1, 1], MS-SSIM, and the EfficientNet-Lite0 deep-feature distance that is the headline when
LPIPS has no pretrained backbone):

- `cycle_AB` / `cycle_BA`: x against translate(translate(x, AB), BA) for x of domain A (and B -> A -> B),
  CycleGAN's cycle consistency (Zhu et al. 2017, eq. 2) on images it never trained on; only for models that
  translate both ways;
- `paired_AB`: on paired data (`translation.kind: edges`), translate(edge map, AB) against its own photo: the
  paired reconstruction error of pix2pix (Isola et al. 2017 report L1 to the target), for any model.

inversion.csv keeps inversion's columns (steps 0, no loss: nothing is optimised) with `measure` saying which
reconstruction a row is; inversion.json has the same `headline` rule; reconstructions.png shows, per measure,
the held-out inputs and the reconstruction at each snapshot.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import torch

from fewgan.images import from_uint8, labelled_grid_png, to_uint8
from fewgan.io import atomic_write_bytes, atomic_write_json, atomic_write_text, sha256_file, torch_load

log = logging.getLogger(__name__)

MEASURES = {"cycle": "x vs translate(translate(x, d), reverse d): cycle consistency on held-out images",
            "paired": "translate(x, d) vs the aligned target image of x (paired data only)"}


def reconstructions(gan, a: torch.Tensor, b: torch.Tensor | None, paired: bool, device) -> dict[str, tuple]:
    """{measure: (target uint8, reconstruction in [-1, 1])} of one snapshot: cycle_<d> for every direction the
    model can undo, paired_<d> on paired data; `a`, `b`: the held-out uint8 images of domains A and B."""
    out: dict[str, tuple] = {}
    sides = {"A": a, "B": b}
    with torch.inference_mode():
        for d in gan.directions:
            src = sides[d[0]]
            if src is None or not len(src):
                continue
            x = from_uint8(src).to(device)
            if d[::-1] in gan.directions:
                out[f"cycle_{d}"] = (src, gan.cycle(x, d))
            if paired:
                out[f"paired_{d}"] = (sides[d[1]], gan.translate(x, d))
    return out


def run(params: dict, dataset: str, model: str, train_dir: Path, curated_dir: Path, split_dir: Path,
        out_dir: Path, threads: int) -> dict:
    """Cycle / paired reconstruction errors of the held-out test images at every selected snapshot ->
    inversion.csv, inversion.json, reconstructions.png (module docstring)."""
    from fewgan.invert import stage as S
    from fewgan.invert.core import reconstruction_metrics
    from fewgan.metrics.translation import Domains
    from fewgan.models.registry import list_snapshots, load_snapshot

    cfg = params["invert"]
    train_dir, out_dir = Path(train_dir), Path(out_dir)
    torch.set_num_threads(max(1, int(threads)))
    fallbacks: list[str] = []
    device = S.resolve_device(params["device"], fallbacks)
    snaps = S.select_snapshots(list_snapshots(train_dir), cfg["snapshots"], train_dir)
    first = torch_load(snaps[0][1], map_location="cpu")
    resolution = int(first["resolution"])
    del first
    domains = Domains(params, dataset, curated_dir, split_dir, resolution=resolution)
    k = int(cfg["max_images"]) or None
    a, b = domains.images("test", "A")[:k], domains.images("test", "B")[:k]
    paired = bool(domains.paired)
    lpips, lpips_info = S._build_lpips(cfg["lpips_net"], params, device)
    if lpips_info["note"]:
        fallbacks.append(f"LPIPS-{cfg['lpips_net']}: {lpips_info['note']}")
        log.warning(fallbacks[-1])
    try:
        deep, deep_info = S._build_deep(params, device)
    except Exception as exc:  # the package is a dependency; say so loudly if it is broken or missing
        deep, deep_info = None, {"fallback": f"EfficientNet-Lite0 deep-feature distance unavailable ({exc}); "
                                             "effnet_deep columns left empty"}
        log.warning(deep_info["fallback"])
        fallbacks.append(deep_info["fallback"])

    rows, per_image, snapshot_meta = [], [], []
    grids: dict[str, list] = {}
    for iteration, path in snaps:
        gan, _, meta = load_snapshot(path, device)
        snapshot_meta.append({"iteration": iteration, "path": str(path), "sha256": sha256_file(path)})
        fallbacks += [f"snapshot: {fb}" for fb in meta.get("fallbacks", []) or [] if f"snapshot: {fb}" not in fallbacks]
        for measure, (target_u8, recon) in reconstructions(gan, a, b, paired, device).items():
            t0 = time.perf_counter()
            target = from_uint8(target_u8).to(device)
            m = reconstruction_metrics(lpips, recon, target, deep)
            stats = {k2: S._mean_std(v.cpu()) for k2, v in m.items()}
            dp = stats.get("effnet_deep", (None, None))
            rows.append({"iteration": iteration, "lpips_mean": stats["lpips"][0], "lpips_std": stats["lpips"][1],
                         "mse_mean": stats["mse"][0], "mse_std": stats["mse"][1], "n_images": int(target.shape[0]),
                         "steps": 0, "split": "test", "psnr_mean": stats["psnr"][0], "psnr_std": stats["psnr"][1],
                         "msssim_mean": stats["msssim"][0], "msssim_std": stats["msssim"][1],
                         "effnet_deep_mean": dp[0], "effnet_deep_std": dp[1], "loss_initial": None,
                         "loss_final": None, "seconds": round(time.perf_counter() - t0, 3), "snapshot": path.name,
                         "measure": measure})
            per_image.append({"iteration": iteration, "measure": measure, **{k2: v.tolist() for k2, v in m.items()}})
            grids.setdefault(measure, [(f"{measure}: input" if measure.startswith("cycle") else
                                        f"{measure}: target", target_u8)])
            grids[measure].append((f"it {iteration}", to_uint8(recon).cpu()))
            log.info("%s/%s it %d %s: MSE %.5f PSNR %.2f dB", dataset, model, iteration, measure,
                     stats["mse"][0], stats["psnr"][0])
        del gan
    lpips_standard = lpips_info["note"] is None
    headline = "lpips" if lpips_standard else ("effnet_deep" if deep is not None else "msssim")
    result = {
        "stage": "invert", "kind": "translation", "dataset": dataset, "model": model,
        "headline": {"metric": headline, "column": S.HEADLINES[headline][0], "label": S.HEADLINES[headline][1],
                     "why": ("LPIPS with the pretrained backbone" if lpips_standard else
                             "the LPIPS backbone is not the pretrained one (" + str(lpips_info["note"]) + "): the "
                             "headline is " + ("the EfficientNet-Lite0 deep-feature distance" if deep is not None
                                               else "MS-SSIM") + "; LPIPS stays in inversion.csv, labelled"),
                     "lpips_label": "LPIPS" if lpips_standard else "LPIPS (untrained backbone: not perceptual)"},
        "measures": {m: MEASURES[m.split("_")[0]] for m in grids}, "paired": paired,
        "rows": rows, "per_image": per_image, "snapshots": snapshot_meta,
        "settings": {"replaces": "inversion (a translator has no latent to optimise)", "split": "test",
                     "max_images": int(cfg["max_images"]), "lpips_net": cfg["lpips_net"], "lpips": lpips_info,
                     "effnet_deep": deep_info, "snapshots": cfg["snapshots"], "device": str(device),
                     "threads": int(threads), "resolution": resolution,
                     "mse": "per image, on the [-1, 1] scale; PSNR = 10 log10(4 / MSE) dB; reconstructions "
                            "quantised to uint8 first"},
        "fallbacks": fallbacks, "provenance": S._provenance(params, str(device)),
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out_dir / "inversion.csv", S._csv_text(rows))
    atomic_write_bytes(out_dir / "reconstructions.png",
                       labelled_grid_png([r for g in grids.values() for r in g], int(cfg["grid_images"])))
    atomic_write_json(out_dir / "inversion.json", result)
    return result
