"""`fewgan evaluate`: FID/KID (vs train, primary; and vs the held-out test split), ProGAN SWD with a
real-vs-real noise floor, and ProGAN MS-SSIM of fakes and of the real training set, for the selected
generator (select/generator.pt).

One seeded stream of fakes feeds every metric (none written to disk): the first `fid.n_fake` go to
Inception, the first `swd.max_images` (0 = n_fake) to SWD, consecutive pairs of the first 2 x
`msssim.pairs` to MS-SSIM. Its seed is params seed + 1, so the fakes differ from the ones `score` used to
pick the snapshot (no selection bias on the reported numbers).

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
from fewgan.metrics import fid as F
from fewgan.metrics import msssim as M
from fewgan.metrics import swd as S
from fewgan.metrics.common import fid_settings, load_split_images, pick_device
from fewgan.metrics.summary import write_summary

log = logging.getLogger(__name__)
GRID = 64  # images in samples.png


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

    train, train_names = load_split_images(curated_dir, split_dir, "train")
    test, test_names = load_split_images(curated_dir, split_dir, "test")
    if int(meta.get("resolution", train.shape[-1])) != train.shape[-1]:
        raise ValueError(f"{gen_path}: generator resolution {meta.get('resolution')} differs from the curated "
                         f"images ({train.shape[-1]} px)")
    extractor = F.build_extractor(params, device)
    if extractor.info.fallback:
        fallbacks.append(extractor.info.fallback)
    cache = Path(ev["feature_cache_dir"])
    train_feats, _ = F.real_features(train, extractor, cache)
    test_feats, _ = F.real_features(test, extractor, cache)

    n_fid = int(ev["fid"]["n_fake"])
    swd_cfg = dict(ev["swd"])
    n_swd = int(swd_cfg["max_images"]) or n_fid
    pairs = int(ev["msssim"]["pairs"])
    total = max(n_fid, n_swd, 2 * pairs)
    seed = int(params["seed"]) + 1
    bs = int(ev["fid"]["batch_size"])

    swd_stream = S.SWDStream(train, n_swd, swd_cfg, seed=seed)
    pair_stream = M.PairStream(pairs)
    feats, grid = [], []
    done = 0
    t_gen = time.perf_counter()
    for batch in F.fake_batches(gan, G, total, batch_size=bs, seed=seed, device=device):
        b = batch.shape[0]
        if done < n_fid:
            feats.append(extractor(batch[:n_fid - done]))
        if done < n_swd:
            swd_stream.add(batch[:n_swd - done])
        pair_stream.add(batch)
        if len(grid) * bs < GRID:
            grid.append(batch[:GRID])
        done += b
    fake_feats = torch.cat(feats)
    stream_seconds = time.perf_counter() - t_gen

    kseed = int(params["seed"])
    m_train = F.fid_kid(fake_feats, train_feats, params, seed=kseed)
    if test.shape[0] >= 2:
        m_test = F.fid_kid(fake_feats, test_feats, params, seed=kseed)
    else:
        msg = f"test split has {test.shape[0]} image(s): FID/KID against test not computed (needs >= 2)"
        log.warning(msg)
        fallbacks.append(msg)
        m_test = {"fid": None, "kid": None, "kid_std": None}
    swd_res = swd_stream.result()
    floor = S.swd_real_floor(train, n_desc=swd_res["n_desc"], cfg=swd_cfg, seed=seed)
    ms_fake = pair_stream.result()
    ms_real = M.msssim_set(train, pairs, seed=seed, batch_size=int(ev["msssim"]["batch_size"]))

    per_class, class_index, per_class_seconds = None, {}, None
    if gan.conditional:
        t_pc = time.perf_counter()
        class_index, per_class = per_class_metrics(
            params, gan, G, extractor, device, split_dir, train, train_names, train_feats, test, test_names,
            test_feats, n_fid=n_fid, n_swd=n_swd, pairs=pairs, seed=seed, kseed=kseed, swd_cfg=swd_cfg)
        per_class_seconds = time.perf_counter() - t_pc

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    save_grid(out_dir / "samples.png", torch.cat(grid)[:GRID], cols=8)
    result: dict[str, Any] = {
        "dataset": dataset, "model": model, "iteration": meta.get("iteration"),
        "fid_train": m_train["fid"], "fid_test": m_test["fid"],
        "kid_train": m_train["kid"], "kid_train_std": m_train["kid_std"],
        "kid_test": m_test["kid"], "kid_test_std": m_test["kid_std"],
        "kid_subset_size_train": m_train.get("kid_subset_size"), "kid_subset_size_test": m_test.get("kid_subset_size"),
        "swd": {"levels": swd_res["levels"], "mean": swd_res["mean"], "n_desc": swd_res["n_desc"],
                "n_fake": swd_res["n_fake"], "protocol": swd_res["protocol"]},
        "swd_real_floor": {"levels": floor["levels"], "mean": floor["mean"], "method": floor["method"]},
        "msssim_fake": ms_fake["msssim"], "msssim_fake_pairs": ms_fake["pairs"],
        "msssim_real": ms_real["msssim"], "msssim_real_pairs": ms_real["pairs"],
        "msssim_method": {"fake": ms_fake["method"], "real": ms_real["method"]},
        "n_fake": n_fid, "n_generated": total, "n_real_train": int(train.shape[0]), "n_real_test": int(test.shape[0]),
        "feature_extractor": extractor.info.extractor_block(), "extractor_variant": extractor.variant,
        "settings": fid_settings(params) | {"fake_seed": seed},
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


PER_CLASS_PROTOCOL = ("per class c: n_fake fakes (seed = params seed + 1, the z of the overall stream) with the "
                      "class column fixed to c, against the train (test) images of class c; Inception features "
                      "of the reals are the overall ones restricted to the class; SWD floor and real MS-SSIM on "
                      "the class's train images; null where the class has too few real images (see 'notes')")


def per_class_metrics(params: dict, gan, G, extractor, device, split_dir: Path, train: torch.Tensor,
                      train_names: list[str], train_feats: torch.Tensor, test: torch.Tensor, test_names: list[str],
                      test_feats: torch.Tensor, *, n_fid: int, n_swd: int, pairs: int, seed: int, kseed: int,
                      swd_cfg: dict) -> tuple[dict[str, int], dict[str, dict]]:
    """({class: index}, {class: metrics}) of a class-conditional generator (see the module docstring)."""
    from fewgan.data.loading import labels_of

    ev = params["evaluation"]
    y_train, index = labels_of(split_dir, train_names)
    y_test, _ = labels_of(split_dir, test_names)
    if not index:
        raise ValueError(f"{split_dir}: the generator is class-conditional ({gan.num_classes} classes) but the "
                         "split has no classes; re-run train (or curate/split with datasets.<name>.classes)")
    if len(index) != gan.num_classes:
        raise ValueError(f"{split_dir}: the split has {len(index)} classes {list(index)} but the generator was "
                         f"trained with {gan.num_classes}; re-run `fewgan train` on this split")
    total = max(n_fid, n_swd, 2 * pairs)
    bs = int(ev["fid"]["batch_size"])
    out: dict[str, dict] = {}
    for name, c in index.items():
        tr, te = train[y_train == c], test[y_test == c]
        tr_f, te_f = train_feats[y_train == c], test_feats[y_test == c]
        notes: list[str] = []
        swd_stream = S.SWDStream(tr, n_swd, swd_cfg, seed=seed) if tr.shape[0] else None
        pair_stream = M.PairStream(pairs)
        feats, done = [], 0
        for batch in F.fake_batches(gan, G, total, batch_size=bs, seed=seed, device=device, label=c):
            if done < n_fid:
                feats.append(extractor(batch[:n_fid - done]))
            if done < n_swd and swd_stream is not None:
                swd_stream.add(batch[:n_swd - done])
            pair_stream.add(batch)
            done += batch.shape[0]
        fake_feats = torch.cat(feats)
        none = {"fid": None, "kid": None, "kid_std": None, "kid_subset_size": None}
        m = {}
        for split, reals in (("train", tr_f), ("test", te_f)):
            if reals.shape[0] >= 2:
                m[split] = F.fid_kid(fake_feats, reals, params, seed=kseed)
            else:
                m[split] = none
                notes.append(f"{reals.shape[0]} {split} image(s) of class {name}: FID/KID against {split} not "
                             "computed (needs >= 2)")
        row: dict[str, Any] = {
            "index": c, "n_real_train": int(tr.shape[0]), "n_real_test": int(te.shape[0]), "n_fake": n_fid,
            "fid_train": m["train"]["fid"], "fid_test": m["test"]["fid"],
            "kid_train": m["train"]["kid"], "kid_train_std": m["train"]["kid_std"],
            "kid_test": m["test"]["kid"], "kid_test_std": m["test"]["kid_std"],
            "kid_subset_size_train": m["train"].get("kid_subset_size"),
            "kid_subset_size_test": m["test"].get("kid_subset_size"),
            "swd": None, "swd_real_floor": None, "msssim_real": None, "msssim_real_pairs": 0,
        }
        if swd_stream is not None:
            res = swd_stream.result()
            row["swd"] = {"levels": res["levels"], "mean": res["mean"], "n_desc": res["n_desc"], "n_fake": res["n_fake"]}
        else:
            notes.append(f"no train image of class {name}: SWD not computed")
        if tr.shape[0] >= 2:
            floor = S.swd_real_floor(tr, n_desc=row["swd"]["n_desc"], cfg=swd_cfg, seed=seed)
            row["swd_real_floor"] = {"levels": floor["levels"], "mean": floor["mean"]}
            ms_real = M.msssim_set(tr, pairs, seed=seed, batch_size=int(ev["msssim"]["batch_size"]))
            row["msssim_real"], row["msssim_real_pairs"] = ms_real["msssim"], ms_real["pairs"]
        else:
            notes.append(f"{tr.shape[0]} train image(s) of class {name}: SWD real floor and real MS-SSIM not "
                         "computed (need >= 2)")
        ms_fake = pair_stream.result()
        row.update(msssim_fake=ms_fake["msssim"], msssim_fake_pairs=ms_fake["pairs"], notes=notes)
        for note in notes:
            log.warning("%s", note)
        out[name] = row
    return dict(index), out


def stage(ctx) -> dict:
    """`fewgan evaluate` (fewgan.stages)."""
    return run(ctx.params, ctx.dataset, ctx.model, ctx.paths["select"], ctx.paths["curated"], ctx.paths["split"],
               ctx.out, ctx.threads)
