"""`fewgan evaluate`: every metric of the registry (fewgan.metrics.registry: FID/KID vs train, primary, and
vs the held-out test split; ProGAN SWD with a real-vs-real noise floor; ProGAN MS-SSIM of fakes and of the
real training set) for the selected generator (select/generator.pt).

One seeded stream of fakes feeds every metric (fewgan.metrics.inputs.Inputs; none written to disk): the
first `fid.n_fake` go to the Inception features, each pixel metric keeps the first `Metric.eval_fakes` of
them (SWD: `swd.max_images`, 0 = n_fake; MS-SSIM: consecutive pairs of the first 2 x `msssim.pairs`). Its seed is params seed + 1, so the fakes differ from the ones `score` used to
pick the snapshot (no selection bias on the reported numbers).

Each metric also reports a percentile bootstrap interval of each value (`<key>_ci`, SWD: `swd.mean_ci`, and a
`<metric>_bootstrap` block: samples, level, bias, seconds) from resampling the samples it used (feature rows,
images with their descriptors, pairs; fewgan.metrics.bootstrap): no network pass, seeded from params seed.
`evaluation.bootstrap.samples: 0` turns it off; the point estimates are the same either way.

`evaluation.evaluate.untrained: false` skips the metrics whose network is an untrained fallback here (FID/KID
without the standard Inception: they can neither select nor rank, fewgan.select); `not_computed` in
metrics.json names them and says why, and the Inception network is then never built. Translators compute
every metric (the NICE-GAN protocol's KID x100 is in Inception features).

Class-conditional generators (`gan.conditional`: trained on a dataset with classes) are also evaluated
per class (`per_class` in metrics.json): for class c, a stream of fakes whose latents all carry class c
(same seed, so the same z as every other class) against the real train (and test) images of class c:
FID/KID, SWD with its real-vs-real floor, MS-SSIM of fakes and of the class's real images. A metric
that needs more real images than the class has (FID/KID: 2; SWD floor, real MS-SSIM: 2) is null with a
note. The overall numbers are computed exactly as for an unconditional generator (fakes of uniformly
drawn classes against all images); score and select use only those.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import torch

from fewgan.images import save_grid
from fewgan.io import atomic_write_json
from fewgan.metrics.common import fid_settings, load_split_images, pick_device
from fewgan.metrics.inputs import (Inputs, RealSet, build_extractors, extractor_blocks, note_once,
                                  untrained_metrics)
from fewgan.metrics.registry import Metric, registered_metrics
from fewgan.metrics.summary import write_summary
from fewgan.metrics.translation import EVAL_PROTOCOL, Domains, evaluate_directions, translates

log = logging.getLogger(__name__)
GRID = 64  # images in samples.png


def _counts(metrics: list[Metric], params: dict, n_fid: int) -> dict[str, int]:
    return {m.name: m.eval_fakes(params) or n_fid for m in metrics}


def run(params: dict, dataset: str, model: str, select_dir: Path, curated_dir: Path, split_dir: Path,
        out_dir: Path, threads: int) -> dict:
    from fewgan.models.registry import load_snapshot
    from fewgan.provenance import collect

    torch.set_num_threads(int(threads))
    t_start = time.perf_counter()
    ev = params["evaluation"]
    fallbacks: list[str] = []
    device = pick_device(params, fallbacks)
    gen_path = Path(select_dir) / "generator.pt"
    if not gen_path.is_file():
        raise FileNotFoundError(f"{gen_path}: missing; run `fewgan select` first")
    gan, G, meta = load_snapshot(gen_path, device)
    fallbacks += [fb for fb in (meta.get("fallbacks") or []) if fb not in fallbacks]

    metrics = registered_metrics()
    if translates(model):
        return run_translator(params, dataset, model, gan, meta, metrics, curated_dir, split_dir, out_dir, device,
                              fallbacks, t_start)
    reals = RealSet(lambda split: load_split_images(curated_dir, split_dir, split), {}, Path(ev["feature_cache_dir"]))
    train, test = reals.images("train"), reals.images("test")
    if int(meta.get("resolution", train.shape[-1])) != train.shape[-1]:
        raise ValueError(f"{gen_path}: generator resolution {meta.get('resolution')} differs from the curated "
                         f"images ({train.shape[-1]} px)")
    reals.extractors = build_extractors(metrics, params, device, fallbacks)  # each builds its network when used
    extractor = reals.extractors["inception"]
    skipped = {} if ev["evaluate"]["untrained"] else untrained_metrics(metrics, extractor_blocks(reals.extractors),
                                                                       "evaluation.evaluate.untrained")
    if skipped:  # they could neither select nor rank: their feature passes are saved, metrics.json says so
        log.warning("not computed: %s", "; ".join(f"{k.upper()} ({v})" for k, v in skipped.items()))
        metrics = [m for m in metrics if m.name not in skipped]
    for split in ("train", "test"):
        for name in dict.fromkeys(m.extractor for m in metrics if m.extractor):
            reals.features(split, name)

    n_fid = int(ev["fid"]["n_fake"])
    seed = int(params["seed"]) + 1
    kseed = int(params["seed"])
    bs = int(ev["fid"]["batch_size"])
    grid: list[torch.Tensor] = []

    def keep_grid(batch: torch.Tensor) -> None:
        if len(grid) * bs < GRID:
            grid.append(batch[:GRID])

    x = Inputs(params, reals, metrics, gan=gan, G=G, device=device, seed=seed, kseed=kseed, n_features=n_fid,
               batch_size=bs, counts=_counts(metrics, params, n_fid), note=note_once(fallbacks, warn=True),
               consumers=[keep_grid])
    t_gen = time.perf_counter()
    x.run()
    stream_seconds = time.perf_counter() - t_gen
    values: dict[str, Any] = {}
    for m in metrics:
        values.update(m.evaluate(x))

    per_class, class_index, per_class_seconds = None, {}, None
    if gan.conditional:
        t_pc = time.perf_counter()
        class_index, per_class = per_class_metrics(params, gan, G, reals, metrics, device, split_dir, n_fid=n_fid,
                                                   seed=seed, kseed=kseed)
        per_class_seconds = time.perf_counter() - t_pc

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    save_grid(out_dir / "samples.png", torch.cat(grid)[:GRID], cols=8)
    result: dict[str, Any] = {
        "dataset": dataset, "model": model, "iteration": meta.get("iteration"), **values,
        "n_fake": n_fid, "n_generated": x.n_generated, "n_real_train": int(train.shape[0]),
        "n_real_test": int(test.shape[0]),
        "feature_extractor": extractor.info.extractor_block(), "extractor_variant": extractor.variant,
        "feature_extractors": extractor_blocks(reals.extractors),
        "settings": fid_settings(params) | {"fake_seed": seed},
        "not_computed": skipped,
        "conditional": bool(gan.conditional), "num_classes": int(gan.num_classes),
        "class_index": class_index, "per_class": per_class,
        **({"per_class_protocol": PER_CLASS_PROTOCOL} if per_class is not None else {}),
        "seconds": {"stream": stream_seconds, "total": time.perf_counter() - t_start,
                    **({"per_class": per_class_seconds} if per_class_seconds is not None else {})},
        "device": str(device), "threads": torch.get_num_threads(),
        "snapshot_note": gan.snapshot_note(),
        "fallbacks": fallbacks, "provenance": collect(params, str(device)),
    }
    atomic_write_json(out_dir / "metrics.json", result)
    write_summary(out_dir, result)  # summary.json: the headline numbers for `dvc metrics show`
    return result


def run_translator(params: dict, dataset: str, model: str, gan, meta: dict, metrics: list[Metric], curated_dir: Path,
                   split_dir: Path, out_dir: Path, device, fallbacks: list[str], t_start: float) -> dict:
    """evaluate for a translator (fewgan.metrics.translation): every metric per direction on the translations of
    the held-out test images; samples.png: input -> translation -> cycle of held-out images, both directions."""
    from fewgan.images import labelled_grid_png
    from fewgan.io import atomic_write_bytes
    from fewgan.metrics.translation import direction_summary, translation_grid
    from fewgan.provenance import collect

    ev = params["evaluation"]
    domains = Domains(params, dataset, curated_dir, split_dir)
    if int(meta.get("resolution", 0)) != domains.images("test", "A").shape[-1]:
        raise ValueError(f"{dataset}/{model}: generator resolution {meta.get('resolution')} differs from the curated "
                         f"images ({domains.images('test', 'A').shape[-1]} px)")
    # every metric, evaluation.evaluate.untrained notwithstanding: the NICE-GAN protocol's KID x100 reads the
    # Inception features of the translations
    extractors = build_extractors(metrics, params, device, fallbacks)
    n_fid, bs = int(ev["fid"]["n_fake"]), int(ev["fid"]["batch_size"])
    seed, kseed = int(params["seed"]) + 1, int(params["seed"])
    t_gen = time.perf_counter()
    directions = evaluate_directions(params, gan, metrics, domains, extractors, Path(ev["feature_cache_dir"]), device,
                                     seed=seed, kseed=kseed, batch_size=bs, counts=_counts(metrics, params, n_fid))
    for d, block in directions.items():
        fallbacks += [f"{d}: {n}" for n in block["notes"] if f"{d}: {n}" not in fallbacks]
    stream_seconds = time.perf_counter() - t_gen
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(out_dir / "samples.png", labelled_grid_png(translation_grid(gan, domains, device, 8), 8))
    extractor = extractors["inception"]
    result: dict[str, Any] = {
        "dataset": dataset, "model": model, "iteration": meta.get("iteration"),
        "translation": {"kind": params["datasets"][dataset]["translation"]["kind"],
                        "domains": params["datasets"][dataset]["translation"]["domains"],
                        "paired": bool(domains.paired), "directions": list(directions), "protocol": EVAL_PROTOCOL},
        "directions": directions,
        "feature_extractor": extractor.info.extractor_block(), "extractor_variant": extractor.variant,
        "feature_extractors": extractor_blocks(extractors),
        "settings": fid_settings(params) | {"fake_seed": seed, "reference": "target domain (train and test splits)"},
        "conditional": False, "num_classes": int(gan.num_classes), "class_index": {}, "per_class": None,
        "seconds": {"stream": stream_seconds, "total": time.perf_counter() - t_start},
        "device": str(device), "threads": torch.get_num_threads(), "snapshot_note": gan.snapshot_note(),
        "fallbacks": fallbacks, "provenance": collect(params, str(device)),
    }
    atomic_write_json(out_dir / "metrics.json", result)
    atomic_write_json(out_dir / "summary.json", direction_summary(result))
    return result


PER_CLASS_PROTOCOL = ("per class c: n_fake fakes (seed = params seed + 1, the z of the overall stream) with the "
                      "class column fixed to c, against the train (test) images of class c; Inception features "
                      "of the reals are the overall ones restricted to the class; SWD floor and real MS-SSIM on "
                      "the class's train images; null where the class has too few real images (see 'notes')")


def per_class_metrics(params: dict, gan, G, reals: RealSet, metrics: list[Metric], device, split_dir: Path, *,
                      n_fid: int, seed: int, kseed: int) -> tuple[dict[str, int], dict[str, dict]]:
    """({class: index}, {class: metrics}) of a class-conditional generator (see the module docstring): every
    metric on a stream of class-c fakes against the class-c view of the real set."""
    from fewgan.data.loading import labels_of

    y_train, index = labels_of(split_dir, reals.names("train"))
    y_test, _ = labels_of(split_dir, reals.names("test"))
    if not index:
        raise ValueError(f"{split_dir}: the generator is class-conditional ({gan.num_classes} classes) but the "
                         "split has no classes; re-run train (or curate/split with datasets.<name>.classes)")
    if len(index) != gan.num_classes:
        raise ValueError(f"{split_dir}: the split has {len(index)} classes {list(index)} but the generator was "
                         f"trained with {gan.num_classes}; re-run `fewgan train` on this split")
    bs = int(params["evaluation"]["fid"]["batch_size"])
    out: dict[str, dict] = {}
    for name, c in index.items():
        view = reals.of_class(name, c, {"train": y_train, "test": y_test})
        notes: list[str] = []
        x = Inputs(params, view, metrics, gan=gan, G=G, device=device, seed=seed, kseed=kseed, n_features=n_fid,
                   batch_size=bs, counts=_counts(metrics, params, n_fid), label=c, note=note_once(notes, warn=False))
        row: dict[str, Any] = {"index": c, "n_real_train": view.count("train"), "n_real_test": view.count("test"),
                               "n_fake": n_fid}
        for m in metrics:
            row.update(m.evaluate(x))
        row["notes"] = notes
        for note in notes:
            log.warning("%s", note)
        out[name] = row
    return dict(index), out


def stage(ctx) -> dict:
    """`fewgan evaluate` (fewgan.stages)."""
    return run(ctx.params, ctx.dataset, ctx.model, ctx.paths["select"], ctx.paths["curated"], ctx.paths["split"],
               ctx.out, ctx.threads)
