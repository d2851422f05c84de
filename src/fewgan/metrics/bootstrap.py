"""Percentile bootstrap intervals of evaluate's metrics, within one run (issue 19 item 2).

Efron's percentile bootstrap (Efron 1979; Efron & Tibshirani 1993, ch. 13): resample the samples a metric
used with replacement, recompute the statistic on each resample, and report the (1-level)/2 and
(1+level)/2 quantiles of the replicates (numpy's default linear interpolation). The interval covers the
*sampling noise of the evaluation* (which fakes were drawn, which real images the split holds), not the
noise of training: seeds cover that. Nothing here runs a network: every resample reuses what the point
estimate already computed.

- FID: the fake and the real feature rows, each side resampled; FID recomputed exactly (torch-fidelity's
  N-1 statistic in the nuclear-norm form of `fewgan.metrics.fid.fid_from_features`, from the centred
  features' cross Gram matrix computed once; `fid_samples`).
- KID: the same feature rows; KID recomputed with the point estimate's subset draws (the same seed) from
  kernel matrices computed once (`kid_samples`; torch-fidelity's polynomial kernel and unbiased MMD).
- SWD: the fake and the real images, each image's patch descriptors kept together; each resampled set is
  renormalised by its own channel statistics (ProGAN's per-set normalisation) and the distance recomputed
  with the same projection directions. Resampled images carry unequal descriptor counts (the even spread
  gives some images one more), so the larger side loses random descriptors down to the smaller count
  (`swd_samples`).
- MS-SSIM: the per-pair values (fakes: consecutive pairs of independent fakes, i.i.d.; reals: distinct
  pairs of one image set, which share images, so their interval is too narrow) and their mean.

A biased estimator's plain percentile interval is shifted by the bias: for FID (bias ~ tr(S)/n, positive) the
replicates sit about one bias above the point estimate, and for SWD resampled duplicates inflate the distance
(+23 on the smoke run), so the plain interval can miss its own point estimate. evaluate therefore reports the
percentile interval shifted back by the bootstrap bias estimate (mean of the replicates minus the point),
which the blocks record beside it (`interval` is the plain percentile interval; tests/metrics/test_bootstrap.py
measures the coverage of both).

Resampling is seeded from params `seed`, the metric, the split and the class (`generator`), so the same
run gives the same interval whatever other metrics are on.
"""

from __future__ import annotations

import contextlib
import math
import time
import zlib
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch

#: the percentile interval shifted back by the bootstrap bias estimate (mean of the replicates minus the point):
#: resampling with replacement duplicates images, which inflates distance statistics (SWD +23 on the smoke run,
#: a plain percentile interval [174.5, 196.6] around a point of 162.0), so the plain percentile interval can miss
#: its own point estimate; the shift centres it on the point with the bootstrap's spread and skew
METHOD = "percentile, bias-corrected (shifted by the bootstrap bias estimate)"
QUANTILES = "numpy.quantile, linear interpolation"


@dataclass(frozen=True)
class Settings:
    """evaluation.bootstrap of one run: `samples` resamples (0 = off), interval `level`, params `seed`;
    `per_metric`: resamples of a named metric, overriding `samples`."""

    samples: int = 0
    level: float = 0.95
    seed: int = 0
    per_metric: tuple = ()

    def samples_for(self, metric: str) -> int:
        return int(dict(self.per_metric).get(metric, self.samples))


def settings(params: dict) -> Settings:
    b = (params.get("evaluation") or {}).get("bootstrap") or {}
    level = float(b.get("level", 0.95))
    if not 0.0 < level < 1.0:
        raise ValueError(f"evaluation.bootstrap.level must be in (0, 1), got {level}")
    per = tuple(sorted((str(k), int(v)) for k, v in (b.get("per_metric") or {}).items()))
    return Settings(samples=int(b.get("samples", 0)), level=level, seed=int(params.get("seed", 0)), per_metric=per)


def generator(seed: int, *tags: Any) -> torch.Generator:
    """A CPU generator for one interval: params seed and the interval's tags (metric, split, class)."""
    tag = zlib.crc32("/".join(str(t) for t in tags).encode())
    return torch.Generator().manual_seed((int(seed) * 1_000_003 + tag) % 2**63)


def indices(n: int, samples: int, gen: torch.Generator) -> torch.Tensor:
    """(samples, n) row indices drawn with replacement."""
    return torch.randint(0, int(n), (int(samples), int(n)), generator=gen)


def interval(replicates: Any, level: float) -> list[float] | None:
    """[lo, hi]: the percentile interval of the replicates (None without finite ones)."""
    v = np.asarray(replicates, dtype=np.float64)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return None
    a = (1.0 - float(level)) / 2.0
    lo, hi = np.quantile(v, [a, 1.0 - a])
    return [float(lo), float(hi)]


def block(s: Settings, samples: int, resampled: str, **extra: Any) -> dict:
    """The metrics.json description of a metric's intervals (`<metric>_bootstrap`)."""
    return {"samples": int(samples), "level": s.level, "method": METHOD if samples else "off",
            "quantiles": QUANTILES, "resampled": resampled, "seed": s.seed, **extra}


class Intervals:
    """Collects one metric's intervals: `run(key, point, replicates_fn)` adds `<key>_ci`-style results;
    `block()` describes them (samples, level, method, bias, seconds)."""

    def __init__(self, s: Settings, metric: str, cls: str | None):
        self.s, self.metric, self.cls = s, metric, cls
        self.samples = s.samples_for(metric)
        self.bias: dict[str, float | None] = {}
        self.outside: list[str] = []
        self.seconds = 0.0

    @property
    def on(self) -> bool:
        return self.samples > 0

    def gen(self, *tags: Any) -> torch.Generator:
        return generator(self.s.seed, self.metric, *tags, *(() if self.cls is None else ("class", self.cls)))

    def run(self, key: str, point: float | None, replicates: Callable[[int, torch.Generator], Any]) -> list | None:
        """The interval of `key` (None when off or without a point estimate); replicates(samples, gen)."""
        if not self.on or point is None:
            return None
        t = time.perf_counter()
        reps = np.asarray(replicates(self.samples, self.gen(key)), dtype=np.float64)
        self.seconds += time.perf_counter() - t
        fin = reps[np.isfinite(reps)]
        self.bias[key] = float(fin.mean() - point) if fin.size else None
        ci = interval(reps, self.s.level)
        if ci is not None and self.bias[key] is not None:  # bias-corrected: shifted back by the bootstrap bias
            ci = [ci[0] - self.bias[key], ci[1] - self.bias[key]]
        if ci is not None and not ci[0] <= point <= ci[1]:
            self.outside.append(key)
        return ci

    def block(self, resampled: str, **extra: Any) -> dict:
        out = block(self.s, self.samples, resampled, **extra)
        if self.on:
            # bias: mean of the replicates minus the point estimate; point_outside: the keys whose point
            # estimate lies outside its own interval (a large bias: see the module docstring)
            out.update(bias=self.bias, point_outside=self.outside, seconds=self.seconds)
        return out


#: below this many multiply-adds per resample the resamples run on one thread: on the shared 2-core machine
#: each small parallel op waited milliseconds for its threads (2 threads vs 1, per resample: FID at 300 x 50
#: features 18 vs 2.5 ms, KID 14 vs 1.9 ms). The CPU profiles' sizes all fall below; the paper's (5,000 fakes,
#: ~1,000 reals) do not. SWD's resamples always run on every thread, in tiles of directions (`_swd_samples_cpu`).
SMALL_WORK = 1 << 27


@contextlib.contextmanager
def _threads_for(work: float, small: float = SMALL_WORK):
    """One thread for a small problem, else torch's setting; restored afterwards."""
    old = torch.get_num_threads()
    if work < small:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(old)


# ------------------------------------------------------------------------------------------------
# FID and KID: resampled feature rows
# ------------------------------------------------------------------------------------------------
def _counts(idx: torch.Tensor, n: int) -> torch.Tensor:
    return torch.bincount(idx, minlength=n).double()


def fid_samples(fake: torch.Tensor, real: torch.Tensor, idx_fake: torch.Tensor, idx_real: torch.Tensor) -> np.ndarray:
    """FID of each resample (fake[idx_fake[b]], real[idx_real[b]]): the N-1 statistic of
    fewgan.metrics.fid.fid_from_features (method fast), exactly.

    With centred features X (fakes) and Y (reals), a resample with row counts c1, c2 has means
    m1 = c1'X/n1, m2 = c2'Y/n2 and trace terms (c1'|x|^2 - n1|m1|^2)/(n1-1); its cross term
    tr sqrt(S1 S2) is the nuclear norm of the resampled centred cross product / sqrt((n1-1)(n2-1)), whose
    singular values are those of diag(sqrt c1) (XY' - X m2 1' - 1 m1'Y' + m1'm2) diag(sqrt c2) over the rows
    drawn at least once: the cross Gram XY' is computed once. When both sides have more rows than features,
    fid_from_features (its d x d eigendecomposition branch) runs on each resample instead."""
    from fewgan.metrics.fid import fid_from_features

    x0, y0 = fake.double().cpu(), real.double().cpu()
    n1, n2, d = x0.shape[0], y0.shape[0], x0.shape[1]
    with _threads_for((n1 + n2) * d + n1 * n2 * min(n1, n2, d)):  # the means, the SVD
        if min(n1, n2) > d:
            return np.array([fid_from_features(x0[i], y0[j], "fast") for i, j in zip(idx_fake, idx_real)])
        return _fid_gram(x0, y0, idx_fake, idx_real)


def _fid_gram(x0: torch.Tensor, y0: torch.Tensor, idx_fake: torch.Tensor, idx_real: torch.Tensor) -> np.ndarray:
    n1, n2 = x0.shape[0], y0.shape[0]
    mx, my = x0.mean(0), y0.mean(0)
    x, y = x0 - mx, y0 - my
    gram = x @ y.T
    sqx, sqy = x.square().sum(1), y.square().sum(1)
    out = np.empty(idx_fake.shape[0])
    for b in range(idx_fake.shape[0]):
        c1, c2 = _counts(idx_fake[b], n1), _counts(idx_real[b], n2)
        m1, m2 = c1 @ x / n1, c2 @ y / n2
        tr1 = (c1 @ sqx - n1 * m1.square().sum()) / (n1 - 1)
        tr2 = (c2 @ sqy - n2 * m2.square().sum()) / (n2 - 1)
        u1, u2 = c1.nonzero().squeeze(1), c2.nonzero().squeeze(1)
        m = gram[u1][:, u2] - (x[u1] @ m2)[:, None] - (y[u2] @ m1)[None, :] + m1 @ m2
        m = c1[u1].sqrt()[:, None] * m * c2[u2].sqrt()[None, :]
        cross = torch.linalg.svdvals(m).sum() / math.sqrt((n1 - 1) * (n2 - 1))
        out[b] = float((m1 + mx - m2 - my).square().sum() + tr1 + tr2 - 2 * cross)
    return out


def _poly_kernel(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """torch-fidelity's kernel_poly with its defaults: (a b' / d + 1)^3."""
    return (a @ b.T / a.shape[1] + 1.0) ** 3


def kid_subset_draws(n1: int, n2: int, subsets: int, size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The positions torch-fidelity's kid_features_to_metric draws: per subset, `size` of n1 then of n2."""
    rng = np.random.RandomState(int(seed))
    p1, p2 = np.empty((subsets, size), dtype=np.int64), np.empty((subsets, size), dtype=np.int64)
    for s in range(subsets):
        p1[s] = rng.choice(n1, size, replace=False)
        p2[s] = rng.choice(n2, size, replace=False)
    return p1, p2


def kid_samples(fake: torch.Tensor, real: torch.Tensor, idx_fake: torch.Tensor, idx_real: torch.Tensor, *,
                subsets: int, size: int, seed: int) -> np.ndarray:
    """KID x10^3 of each resample, as fewgan.metrics.fid.kid_from_features computes it on
    (fake[idx_fake[b]], real[idx_real[b]]) with the same subset seed: subset s takes the resample's positions
    p1[s], p2[s] (the draws do not depend on the values), i.e. the original rows idx[p]; the unbiased MMD of
    the subset is read from the full kernel matrices weighted by how often each row is taken."""
    x, y = fake.double().cpu(), real.double().cpu()
    n1, n2 = x.shape[0], y.shape[0]
    with _threads_for(subsets * (n1 + n2) ** 2):  # weights x kernels
        return _kid_loop(x, y, idx_fake, idx_real, subsets, size, seed)


def _kid_loop(x, y, idx_fake, idx_real, subsets: int, size: int, seed: int) -> np.ndarray:
    n1, n2 = x.shape[0], y.shape[0]
    kxx, kyy, kxy = _poly_kernel(x, x), _poly_kernel(y, y), _poly_kernel(x, y)
    dxx, dyy = kxx.diagonal().clone(), kyy.diagonal().clone()
    p1, p2 = (torch.from_numpy(p) for p in kid_subset_draws(n1, n2, subsets, size, seed))
    rows = torch.arange(subsets)[:, None]
    m = float(size)
    out = np.empty(idx_fake.shape[0])
    for b in range(idx_fake.shape[0]):
        o1, o2 = idx_fake[b][p1], idx_real[b][p2]  # (subsets, size) original rows
        w1 = torch.zeros(subsets, n1, dtype=torch.float64).index_put_((rows.expand_as(o1), o1),
                                                                      torch.ones(()).double(), accumulate=True)
        w2 = torch.zeros(subsets, n2, dtype=torch.float64).index_put_((rows.expand_as(o2), o2),
                                                                      torch.ones(()).double(), accumulate=True)
        xx = ((w1 @ kxx) * w1).sum(1) - w1 @ dxx
        yy = ((w2 @ kyy) * w2).sum(1) - w2 @ dyy
        xy = ((w1 @ kxy) * w2).sum(1)
        mmd = (xx + yy) / (m * (m - 1)) - 2 * xy / (m * m)
        out[b] = 1e3 * float(mmd.mean())
    return out


# ------------------------------------------------------------------------------------------------
# MS-SSIM: per-pair values
# ------------------------------------------------------------------------------------------------
def mean_samples(values: torch.Tensor, samples: int, gen: torch.Generator) -> np.ndarray:
    """Mean of each resample of the values (pairs resampled with replacement)."""
    v = values.double().cpu().reshape(-1)
    return v[indices(v.numel(), samples, gen)].mean(1).numpy()


# ------------------------------------------------------------------------------------------------
# SWD: resampled images, each with its descriptors
# ------------------------------------------------------------------------------------------------

def _rows_of(counts: torch.Tensor, picked: torch.Tensor) -> torch.Tensor:
    """Descriptor rows of the picked images (with repeats), images' rows contiguous in image order."""
    starts = torch.cat([torch.zeros(1, dtype=torch.long), counts.cumsum(0)[:-1]])
    lens = counts[picked]
    first = torch.repeat_interleave(starts[picked], lens)
    within = torch.arange(int(lens.sum())) - torch.repeat_interleave(lens.cumsum(0) - lens, lens)
    return first + within


def swd_draws(real_counts: torch.Tensor, fake_counts: torch.Tensor, samples: int,
              gen: torch.Generator) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(real rows, fake rows) of each resample, drawn in resample order from `gen`: images with replacement, each
    image's descriptor rows together; the side with more rows loses random ones down to the other's count."""
    nr, nf = int(real_counts.numel()), int(fake_counts.numel())
    out = []
    for _ in range(int(samples)):
        rr = _rows_of(real_counts, torch.randint(0, nr, (nr,), generator=gen))
        rf = _rows_of(fake_counts, torch.randint(0, nf, (nf,), generator=gen))
        n = min(rr.numel(), rf.numel())
        if rr.numel() > n:
            rr = rr[torch.randperm(rr.numel(), generator=gen)[:n]]
        if rf.numel() > n:
            rf = rf[torch.randperm(rf.numel(), generator=gen)[:n]]
        out.append((rr, rf))
    return out


def swd_samples(real_desc: list[torch.Tensor], real_counts: torch.Tensor, fake_desc: list[torch.Tensor],
                fake_counts: torch.Tensor, *, res: list[int], cfg: dict, seed: int, samples: int,
                gen: torch.Generator, device: Any = "cpu") -> np.ndarray:
    """SWD x10^3 (mean over levels) of each resample (`swd_draws`): each resampled set renormalised by its own
    channel mean/std (ProGAN), the distance with the point estimate's directions (fewgan.metrics.swd.distances,
    same seed). The definition is `_swd_resample`; on the CPU `_ProjectedSet` computes the same numbers (to
    float32 rounding) without a projection matmul per resample."""
    p = int(cfg["patch_size"])
    dev = torch.device(device)
    draws = swd_draws(real_counts, fake_counts, samples, gen)
    if dev.type != "cpu":  # the GPU sorts and multiplies fast: the definition, one resample after another
        real_desc = [d.to(dev) for d in real_desc]
        fake_desc = [d.to(dev) for d in fake_desc]
        return np.array([_swd_resample(real_desc, fake_desc, rr.to(dev), rf.to(dev), p, cfg, seed)
                         for rr, rf in draws])
    return _swd_samples_cpu(real_desc, fake_desc, draws, p, int(cfg["repeats"]), int(cfg["directions"]), seed)


#: bytes of projected descriptors held at once (both sets, one block of directions of one level)
_PROJECTED_BYTES = 1 << 28
#: bytes of one working row-tile (tile rows x descriptors, float32): small enough that a tile's projections,
#: weighted copy and gathered rows stay in a core's cache while every resample passes over them. Measured on
#: a 2-core Zen 4 (demo sizes, 512 x 11,520 per set, 2 workers): 46-49 ms per resample and level when each
#: resample streamed all directions from memory, 36 ms with tiles of 16-32 rows; values bit for bit equal.
_TILE_BYTES = 3 << 18


class _ProjectedSet:
    """One set's descriptors at one level, projected once per colour channel on a block of the directions.

    A resample's projection of its renormalised rows is, per direction r (channel parts r_c, sums S_c = sum r_c):
        sum_c ((x_c - mu_c) / sd_c) . r_c  =  sum_c (x_c . r_c) / sd_c  -  sum_c mu_c S_c / sd_c,
    so the per-channel projections x_c . r_c of the original rows are computed once and each resample only
    gathers its rows, weights them by 1 / sd_c and shifts them (its mean and std come from per-row sums)."""

    def __init__(self, desc: torch.Tensor, rows: torch.Tensor, channels: int):
        n, dim = desc.shape
        per = dim // channels
        x, r = desc.view(n, channels, per), rows.view(rows.shape[0], channels, per)
        self.proj = [r[:, c] @ x[:, c].T for c in range(channels)]  # (k, n) each
        self.sums = r.sum(-1).double()  # (k, channels)
        xd = x.double()
        self.s1, self.s2, self.per = xd.sum(-1), xd.square().sum(-1), per  # (n, channels)

    def scale(self, picked: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(1 / sd_c, mean_c) of the picked rows, as normalize_descriptors (ddof 0; sd 0 -> unscaled)."""
        m = picked.numel() * self.per
        mean = self.s1[picked].sum(0) / m
        sd = (self.s2[picked].sum(0) / m - mean.square()).clamp_min(0).sqrt()
        return torch.where(sd > 0, 1.0 / sd, torch.ones_like(sd)), mean

    def weights(self, picked: torch.Tensor) -> tuple[list[float], torch.Tensor, np.ndarray]:
        """What a resample needs on every tile: its channel weights 1 / sd_c, its shift per direction (k, 1)
        float32, and its rows in index order (a sequential gather, ~2x faster than in draw order; each row is
        sorted next, so the order of the columns changes no value)."""
        inv, mean = self.scale(picked)
        return [float(v) for v in inv], (self.sums * (mean * inv)).sum(1).float()[:, None], np.sort(picked.numpy())

    def project(self, lo: int, hi: int, w: tuple, work: torch.Tensor, out: np.ndarray) -> np.ndarray:
        """Directions lo:hi of a resample (weights `w`) after its own renormalisation, float32, into `out`
        (tile, n): every original row weighted and shifted in `work`, then the picked ones gathered."""
        inv, shift, picked = w
        torch.mul(self.proj[0][lo:hi], inv[0], out=work)
        for c in range(1, len(self.proj)):
            work.add_(self.proj[c][lo:hi], alpha=inv[c])
        work.sub_(shift[lo:hi])
        return np.take(work.numpy(), picked, axis=1, out=out)


def _tile_sums(a: _ProjectedSet, b: _ProjectedSet, wa: list, wb: list, lo: int, hi: int, sums: np.ndarray) -> None:
    """sums[i, lo:hi] = sum |sorted a - sorted b| of resample i on directions lo:hi, for every resample."""
    t = hi - lo
    work_a, work_b = torch.empty(t, a.proj[0].shape[1]), torch.empty(t, b.proj[0].shape[1])
    most = max((w[2].shape[0] for w in wa), default=0)  # resamples differ in size: (t, n) views of one buffer
    flat_x, flat_y = np.empty(t * most, np.float32), np.empty(t * most, np.float32)
    for i, (ra, rb) in enumerate(zip(wa, wb)):
        n = ra[2].shape[0]
        x, y = flat_x[:t * n].reshape(t, n), flat_y[:t * n].reshape(t, n)
        a.project(lo, hi, ra, work_a, x).sort(axis=-1)
        b.project(lo, hi, rb, work_b, y).sort(axis=-1)
        np.abs(np.subtract(x, y, out=x), out=x)
        sums[i, lo:hi] = x.sum(axis=-1, dtype=np.float64)


def _swd_samples_cpu(real_desc, fake_desc, draws, p: int, repeats: int, directions: int, seed: int) -> np.ndarray:
    """Tiles of directions side by side, one per torch thread, each passing every resample over its tile (sort,
    gathers and element-wise ops release the GIL; each tile runs on one thread, and a row's arithmetic does not
    depend on its tile, so the values do not depend on the tile size or on how many threads run)."""
    from concurrent.futures import ThreadPoolExecutor

    from fewgan.metrics.swd import random_directions

    k = repeats * directions
    gen = torch.Generator().manual_seed(int(seed) + 1)  # the point estimate's directions, drawn in level order
    levels = np.zeros((len(draws), len(real_desc)))
    workers = max(1, torch.get_num_threads())
    with _threads_for(0, 1), ThreadPoolExecutor(max_workers=workers, thread_name_prefix="fewgan-swd-boot",
                                                initializer=torch.set_num_threads, initargs=(1,)) as pool:
        for li, (a, b) in enumerate(zip(real_desc, fake_desc)):
            n0, dim = a.shape
            rows = random_directions(dim, directions, repeats, gen).permute(0, 2, 1).reshape(k, dim)
            channels = dim // (p * p)
            block = max(1, min(k, _PROJECTED_BYTES // (4 * channels * (n0 + b.shape[0]))))
            tile = max(1, _TILE_BYTES // (4 * max(n0, b.shape[0])))
            sums = np.zeros((len(draws), k))
            for s in range(0, k, block):
                pa = _ProjectedSet(a, rows[s:s + block], channels)
                pb = _ProjectedSet(b, rows[s:s + block], channels)
                wa, wb = [pa.weights(rr) for rr, _ in draws], [pb.weights(rf) for _, rf in draws]
                part = np.zeros((len(draws), pa.proj[0].shape[0]))
                list(pool.map(lambda lo: _tile_sums(pa, pb, wa, wb, lo, min(lo + tile, part.shape[1]), part),
                              range(0, part.shape[1], tile)))
                sums[:, s:s + block] = part
            n = np.array([rr.numel() for rr, _ in draws], dtype=np.float64)
            levels[:, li] = 1e3 * (sums.reshape(len(draws), repeats, directions).sum(2) / (directions * n[:, None])
                                   ).mean(1)
    return levels.mean(1)


def _swd_resample(real_desc, fake_desc, rr, rf, p, cfg, seed) -> float:
    from fewgan.metrics.swd import normalize_descriptors

    n = rr.numel()
    a = [normalize_descriptors(d[rr].view(n, -1, p, p)) for d in real_desc]
    f = [normalize_descriptors(d[rf].view(n, -1, p, p)) for d in fake_desc]
    return _distance(a, f, int(cfg["repeats"]), int(cfg["directions"]), seed)


def _distance(desc_a: list[torch.Tensor], desc_b: list[torch.Tensor], repeats: int, directions: int,
              seed: int) -> float:
    """fewgan.metrics.swd.distances(...)["mean"] (the same directions, drawn in the same order from the same
    seed), with the projections in torch rather than numpy: numpy's BLAS ignores torch's thread setting, and
    on the shared 2-core machine its threads made each small resample ~10x slower. Equal to the point
    estimate's arithmetic up to float32 rounding (tests/metrics/test_bootstrap.py)."""
    from fewgan.metrics.swd import _SORT_BLOCK_ELEMS, random_directions

    gen = torch.Generator().manual_seed(int(seed) + 1)
    levels = []
    for a, b in zip(desc_a, desc_b):
        n, dim = a.shape
        dirs = random_directions(dim, directions, repeats, gen).to(a.device)
        rows = dirs.permute(0, 2, 1).reshape(repeats * directions, dim)
        block = max(1, _SORT_BLOCK_ELEMS // max(n, 1))
        sums = []
        for s in range(0, rows.shape[0], block):
            pa, pb = rows[s:s + block] @ a.T, rows[s:s + block] @ b.T
            if pa.is_cuda:
                pa, pb = torch.sort(pa, dim=-1).values, torch.sort(pb, dim=-1).values
                sums.append((pa - pb).abs().sum(dim=-1, dtype=torch.float64).cpu().numpy())
            else:
                pa, pb = pa.numpy(), pb.numpy()
                pa.sort(axis=-1)
                pb.sort(axis=-1)
                sums.append(np.abs(pa - pb).sum(axis=-1, dtype=np.float64))
        per_repeat = np.concatenate(sums).reshape(repeats, directions).sum(axis=1) / (directions * n)
        levels.append(1e3 * float(per_repeat.mean()))
    return float(sum(levels) / len(levels))
