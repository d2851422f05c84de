"""The report's translation section: translators (capability `translates`: CycleGAN, pix2pix, NICE-GAN) are not
ranked with latent generators (their fakes are translations of held-out images, not samples: the numbers
answer another question), so they get their own section (fewgan.metrics.translation for the protocol):

- per dataset and direction, one row per model and training seed: the selected snapshot, KID x100 by NICE-GAN's
  protocol (with its subset size), and every registered metric's test / train numbers with their bootstrap
  intervals (evaluate/metrics.json `directions`); `translation.csv` holds the same rows at full precision;
- the cycle / paired reconstruction errors of the held-out images at the first and the last snapshot
  (invert/inversion.csv, fewgan.invert.translation);
- the grids: held-out input -> translation -> cycle, both directions (evaluate/samples.png), and the
  reconstruction of each measure per snapshot (invert/reconstructions.png);
- NICE-GAN's published numbers, reference only, with their source.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pandas as pd

from fewgan.io import atomic_write_bytes, read_json, safe_join
from fewgan.report import render as R

#: published translation numbers shown for reference: (paper, task, direction, metric, value, where). Only numbers
#: read from the paper's text go here; none could be verified when this section was written (NICE-GAN's Table 1
#: is not in REFERENCE.md, and the official README shows its comparison as an image, figure/contrast.png), so the
#: table states the source and the protocol and prints no number.
NICEGAN_PUBLISHED: list[tuple[str, str, str, str, float, str]] = []
NICEGAN_SOURCE = ("Chen et al., \"Reusing Discriminators for Encoding: Towards Unsupervised Image-to-Image "
                  "Translation\", CVPR 2020 (arXiv:2003.00273), Table 1: FID and KID×100 on cat↔dog (AFHQ-like "
                  "few thousand images per domain at 256 px), horse↔zebra, summer↔winter, photo↔vangogh; metric "
                  "code alpc91/NICE-GAN-pytorch metric/fid_kid.py")


def _num(v: Any) -> float | None:
    if v is None or isinstance(v, bool):
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def _with_ci(value: Any, ci: Any, decimals: int, scale: float = 1.0) -> str:
    v = _num(value)
    if v is None:
        return "n/a"
    text = R.fmt(v * scale, decimals)
    if isinstance(ci, (list, tuple)) and len(ci) == 2 and _num(ci[0]) is not None and _num(ci[1]) is not None:
        text += f" [{R.fmt(float(ci[0]) * scale, decimals)}, {R.fmt(float(ci[1]) * scale, decimals)}]"
    return text


def read_cells(runs_dir: Path, datasets: list[str], models: list[str], seeds: list[int]) -> list[dict]:
    """Every translation cell's evaluate/metrics.json (required), select/best.json and invert/inversion.json
    (optional: a note when missing)."""
    from fewgan.report.collect import STAGES_PER_CELL, ReportInputError

    cells = []
    for d in datasets:
        for m in models:
            for s in seeds:
                base = safe_join(Path(runs_dir), Path(d) / m / f"s{int(s)}")
                cell: dict[str, Any] = {"dataset": d, "model": m, "seed": int(s), "base": base, "notes": []}
                for key, rel, required in (("metrics", "evaluate/metrics.json", True),
                                           ("best", "select/best.json", False),
                                           ("inversion", "invert/inversion.json", False)):
                    path = base / rel
                    try:
                        cell[key] = read_json(path)
                    except (OSError, json.JSONDecodeError) as exc:
                        if required:
                            raise ReportInputError(f"{path}: missing or unreadable ({exc}); run `fewgan "
                                                   f"{rel.split('/')[0]} --dataset {d} --model {m} --seed {s}`") from None
                        cell[key] = None
                        cell["notes"].append(f"{d}/{m}/s{s}: {rel} not available")
                cell["stages"] = {st: read_json(base / st / "stage.json") for st in STAGES_PER_CELL
                                  if (base / st / "stage.json").is_file()}  # stage_costs.csv
                if "directions" not in (cell["metrics"] or {}):
                    raise ReportInputError(f"{base / 'evaluate/metrics.json'}: no 'directions' block: {m} translates, "
                                           "re-run `fewgan evaluate` with this version of fewgan")
                cells.append(cell)
    return cells


def direction_rows(cells: list[dict]) -> list[dict]:
    """translation.csv: one row per cell x direction, full precision (KID and SWD x10^3, KID-NICE x100)."""
    rows = []
    for c in cells:
        best = c.get("best") or {}
        for d, b in c["metrics"]["directions"].items():
            kid = b.get("kid_nicegan") or {}
            swd = b.get("swd") if isinstance(b.get("swd"), dict) else {}
            ci = lambda k: b.get(f"{k}_ci") or [None, None]  # noqa: E731
            rows.append({
                "dataset": c["dataset"], "model": c["model"], "seed": c["seed"], "direction": d,
                "source": b.get("source"), "target": b.get("target"), "iteration": c["metrics"].get("iteration"),
                "selected_by": best.get("metric"), "n_fake": b.get("n_fake"), "n_real_test": b.get("n_real_test"),
                "n_real_train": b.get("n_real_train"),
                "kid_nicegan_x100": kid.get("kid_x100"), "kid_nicegan_x100_ci_low": (kid.get("kid_x100_ci") or [None])[0],
                "kid_nicegan_x100_ci_high": (kid.get("kid_x100_ci") or [None, None])[1],
                "kid_nicegan_subset_size": kid.get("subset_size"),
                **{f"{k}": b.get(k) for k in ("fid_test", "fid_train", "kid_test", "kid_train", "fd_effnet_test",
                                              "fd_effnet_train", "kid_effnet_test", "kid_effnet_train")},
                **{f"{k}_ci_low": ci(k)[0] for k in ("fid_test", "kid_test", "fd_effnet_test", "kid_effnet_test")},
                **{f"{k}_ci_high": ci(k)[1] for k in ("fid_test", "kid_test", "fd_effnet_test", "kid_effnet_test")},
                "swd_mean": swd.get("mean"), "swd_mean_ci_low": (swd.get("mean_ci") or [None])[0],
                "swd_mean_ci_high": (swd.get("mean_ci") or [None, None])[1],
                "notes": "; ".join(b.get("notes") or []),
            })
    return rows


def _direction_table(cells: list[dict], dataset: str, direction: str, decimals: int) -> pd.DataFrame:
    out = []
    for c in cells:
        b = c["metrics"]["directions"].get(direction)
        if c["dataset"] != dataset or b is None:
            continue
        kid = b.get("kid_nicegan") or {}
        swd = b.get("swd") if isinstance(b.get("swd"), dict) else {}
        out.append({
            "model": c["model"], "seed": str(c["seed"]), "iteration": str(c["metrics"].get("iteration")),
            "selected by": str((c.get("best") or {}).get("metric") or "n/a").upper(),
            "KID×100 test (NICE-GAN) [95%]": _with_ci(kid.get("kid_x100"), kid.get("kid_x100_ci"), decimals)
            + (f" (subset {kid['subset_size']})" if kid.get("subset_size") else ""),
            "FID test": _with_ci(b.get("fid_test"), b.get("fid_test_ci"), decimals),
            "FD-EffNet test": _with_ci(b.get("fd_effnet_test"), b.get("fd_effnet_test_ci"), decimals),
            "KID-EffNet×10³ test": _with_ci(b.get("kid_effnet_test"), b.get("kid_effnet_test_ci"), decimals),
            "SWD×10³ (vs train)": _with_ci(swd.get("mean"), swd.get("mean_ci"), decimals),
            "translated / target test": f"{b.get('n_fake')} / {b.get('n_real_test')}",
        })
    return pd.DataFrame(out)


def cycle_rows(cells: list[dict]) -> list[dict]:
    """The headline reconstruction measure of each cell and measure, at its first and last snapshot."""
    rows = []
    for c in cells:
        inv = c.get("inversion") or {}
        head = (inv.get("headline") or {})
        col = head.get("column", "effnet_deep_mean")
        by: dict[str, list] = {}
        for r in inv.get("rows") or []:
            by.setdefault(r.get("measure", "?"), []).append(r)
        for measure, rs in by.items():
            rs = sorted(rs, key=lambda r: r["iteration"])
            rows.append({"dataset": c["dataset"], "model": c["model"], "seed": c["seed"], "measure": measure,
                         "headline": head.get("label", col), "first_iteration": rs[0]["iteration"],
                         "first": rs[0].get(col), "last_iteration": rs[-1]["iteration"], "last": rs[-1].get(col),
                         "psnr_last": rs[-1].get("psnr_mean"), "mse_last": rs[-1].get("mse_mean"),
                         "n_images": rs[-1].get("n_images")})
    return rows


def section(cells: list[dict], out_dir: Path, decimals: int) -> tuple[list[tuple], dict]:
    """(report blocks, report.json entry) of the translation cells; writes translation.csv and the grids."""
    from fewgan.io import atomic_write_text
    from fewgan.metrics.translation import EVAL_PROTOCOL, NICEGAN_KID_PROTOCOL
    from fewgan.report.tables import slug

    rows = direction_rows(cells)
    atomic_write_text(out_dir / "translation.csv", pd.DataFrame(rows).to_csv(index=False, lineterminator="\n"))
    cyc = cycle_rows(cells)
    labels = sorted({str(((c["metrics"].get("feature_extractor") or {}).get("label")) or "")
                     for c in cells} - {""})
    blocks: list[tuple] = [
        R.h(2, "Image-to-image translation", "translation"),
        R.p("Translators (image-to-image models) are reported here and never ranked with latent generators: their "
            "fakes are translations of held-out images. Protocol: " + EVAL_PROTOCOL + ". Snapshots were selected on translations of the train images "
            "(mean over directions; no test image took part). " + NICEGAN_KID_PROTOCOL + "."),
    ]
    if labels:
        blocks.append(R.p("Inception features used for FID/KID here: " + "; ".join(labels) + ".", "note"))
    grids: list[tuple[str, str]] = []
    for d in dict.fromkeys(c["dataset"] for c in cells):
        blocks.append(R.h(3, d, f"translation-{slug(d)}"))
        dirs = list(dict.fromkeys(k for c in cells if c["dataset"] == d for k in c["metrics"]["directions"]))
        for direction in dirs:
            blocks += [R.h(4, f"{direction[0]} → {direction[1]}"),
                       R.table(_direction_table(cells, d, direction, decimals), "translation")]
        notes = [f"{c['model']}/s{c['seed']} {k}: {n}" for c in cells if c["dataset"] == d
                 for k, b in c["metrics"]["directions"].items() for n in b.get("notes") or []]
        if notes:
            blocks.append(R.details(f"{len(notes)} number(s) not computed (too few held-out images)", [R.ul(notes)]))
        cy = [r for r in cyc if r["dataset"] == d]
        if cy:
            df = pd.DataFrame([{"model": r["model"], "seed": str(r["seed"]), "measure": r["measure"],
                                "first snapshot": f"{R.fmt(r['first'], 4)} (it {r['first_iteration']})",
                                "last snapshot": f"{R.fmt(r['last'], 4)} (it {r['last_iteration']})",
                                "PSNR last (dB)": R.fmt(r["psnr_last"], decimals), "images": str(r["n_images"])}
                               for r in cy])
            blocks += [R.h(4, "Cycle and paired reconstruction of held-out images (in place of inversion)"),
                       R.p(f"Measure: {cy[0]['headline']}; cycle_AB = A → B → A, paired_AB = A → B against "
                           "the aligned target; per snapshot in each run's invert/inversion.csv."),
                       R.table(df.fillna(""), "cycle")]
        for c in cells:
            if c["dataset"] != d:
                continue
            for src, kind, what in (("evaluate/samples.png", "translations",
                                     "held-out input → translation → cycle, both directions"),
                                    ("invert/reconstructions.png", "cycles", "reconstruction per snapshot")):
                p = c["base"] / src
                if p.is_file():
                    cell_slug = slug(d, c["model"], "s" + str(c["seed"]))
                    rel = f"figures/translation_{kind}_{cell_slug}.png"
                    atomic_write_bytes(out_dir / rel, p.read_bytes())
                    grids.append((rel, f"{d} / {c['model']} / seed {c['seed']}: {what}"))
    blocks.append(R.gallery(grids))
    ref = pd.DataFrame([{"paper": a, "task": b, "direction": c, "metric": m, "value": R.fmt(v, 2), "where": w}
                        for a, b, c, m, v, w in NICEGAN_PUBLISHED])
    blocks.append(R.div("paper", [
        R.h(3, "NICE-GAN: published numbers (for reference only)"),
        R.p("Source: " + NICEGAN_SOURCE + ". Full datasets at 256 px, not few-shot: not comparable with the "
            "numbers above. " + ("" if NICEGAN_PUBLISHED else
                                 "No number is printed: none could be verified from the paper's text here.")),
        *([R.table(ref, "paper")] if NICEGAN_PUBLISHED else [])]))
    return blocks, {"rows": rows, "cycle": cyc, "grids": [g for g, _ in grids],
                    "notes": [n for c in cells for n in c["notes"]]}
