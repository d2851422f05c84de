"""Do the metrics order known degradations of real images correctly without pretrained weights?

    python bench/verdicts.py                                  # celebahq, flowers, afhq; SWD seeds 0,1,2
    python bench/verdicts.py --domains celebahq --seeds 0     # one domain, one SWD seed
    python bench/verdicts.py --json out.json                  # also write every number

For each domain (fewgan.metrics.degrade.DOMAINS): a reference set A and a disjoint set B of real images
at 128 px; candidates are B itself, blurred / noisy / JPEG copies of B at four strengths each, smooth
colour blobs matched in mean colour to B, and grainy saturated blobs (imitating the samples the
untrained-Inception FID ranked first in reports/celebahq128). Each candidate is scored against A with
fewgan's SWD (mean over pyramid levels, x1e3; one value per SWD seed) and with fewgan's FID computed on
the untrained (seeded random-init) Inception fallback. Prints a candidate x metric table with ranks
(1 = closest to A) and which verdicts hold: real lowest, each family monotone, blobs worse than mild
degradations (the same properties tests/metrics/test_verdicts.py asserts).
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
from fewgan.metrics import swd as S


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
    results: dict[str, dict] = {d: {"fid": {}, "swd": {s: {} for s in seeds}} for d in domains}
    t_fid = 0.0
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
    print(f"# time: sets {t_sets:.1f} s, FID {t_fid:.1f} s, SWD {t_swd:.1f} s; torch threads {args.threads}")
    summary = {}
    for d in domains:
        a, cands = sets[d]
        r = results[d]
        folder, n = D.DOMAINS[d]
        print(f"\n## {d}: {folder}, A = {a.shape[0]} images, B = {n} images per candidate")
        sw0 = r["swd"][seeds[0]]
        rk_s = _ranks(sw0)
        rk_f = _ranks(r["fid"]) if r["fid"] else {}
        print(f"{'candidate':<14} {'SWD':>8} {'rank':>4} {'SWD range over seeds':>22} {'FID(fallback)':>14} {'rank':>4}")
        for name in cands:
            vals = [r["swd"][s][name] for s in seeds]
            fid_s = f"{r['fid'][name]:14.3f} {rk_f[name]:>4}" if r["fid"] else f"{'-':>14} {'-':>4}"
            print(f"{name:<14} {sw0[name]:8.2f} {rk_s[name]:>4} {min(vals):10.2f} - {max(vals):9.2f} {fid_s}")
        print(f"\n{'verdict':<28} " + " ".join(f"{'SWD s' + str(s):>8}" for s in seeds)
              + (f" {'FID':>8}" if r["fid"] else "") + "  detail (FID)")
        props = {s: properties(r["swd"][s]) for s in seeds}
        pf = properties(r["fid"]) if r["fid"] else None
        summary[d] = {"swd": {s: {p: ok for p, ok, _ in props[s]} for s in seeds},
                      "fid": {p: ok for p, ok, _ in pf} if pf else None}
        for i, (prop, _, _) in enumerate(props[seeds[0]]):
            cells = " ".join(f"{'holds' if props[s][i][1] else 'FAILS':>8}" for s in seeds)
            swd_detail = "; ".join(f"s{s}: {props[s][i][2]}" for s in seeds if not props[s][i][1])
            fid_cell = f" {'holds' if pf[i][1] else 'FAILS':>8}" if pf else ""
            detail = (pf[i][2] if pf and not pf[i][1] else "")
            if swd_detail:
                detail = (detail + " | " if detail else "") + "SWD " + swd_detail
            print(f"{prop:<28} {cells}{fid_cell}  {detail}")
    if args.json:
        from fewgan.io import atomic_write_json

        atomic_write_json(args.json, {"size": D.SIZE, "seeds": seeds, "weights": weights_line,
                                      "results": results, "verdicts": summary})
    return 0


if __name__ == "__main__":
    sys.exit(main())
