"""Verdicts as evidence: intervals over training seeds, pairwise comparisons, ranks that group ties.

A benchmark cell is dataset x model x seed. For each dataset and model the ranking metric's values over the
seeds give a mean, a standard deviation (n - 1) and a 95% Student-t interval of the mean. Two models are
compared by the difference of their means with Welch's t interval (unequal variances, Welch-Satterthwaite
degrees of freedom; the seeds of two models are independent runs, so the comparison is unpaired):

- "better" / "worse": the interval excludes 0 (on the side that the metric's direction calls better);
- "tied": the interval contains 0;
- "not tested": a model has fewer than 2 seeds (no interval exists; Lucic et al. 2018 showed that single-seed
  rankings of GANs are mostly noise, so the report says so instead of printing a bare order).

Ranks group models that cannot be separated: a model's rank range runs from 1 + (models significantly better
than it) to (models) - (models significantly worse than it). Models with the same range share it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

LEVEL = 0.95


def _t(df: float, level: float = LEVEL) -> float:
    from scipy import stats

    return float(stats.t.ppf(0.5 + level / 2, df))


@dataclass(frozen=True)
class Spread:
    n: int
    mean: float | None
    std: float | None        # sample standard deviation (n - 1); None with one seed
    ci: tuple[float, float] | None  # Student-t interval of the mean at LEVEL; None with one seed


def spread(values: Sequence[float], level: float = LEVEL) -> Spread:
    """Mean, standard deviation and t interval of the mean of the finite `values` (one per seed)."""
    xs = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    n = len(xs)
    if n == 0:
        return Spread(0, None, None, None)
    mean = sum(xs) / n
    if n == 1:
        return Spread(1, mean, None, None)
    std = math.sqrt(sum((x - mean) ** 2 for x in xs) / (n - 1))
    half = _t(n - 1, level) * std / math.sqrt(n)
    return Spread(n, mean, std, (mean - half, mean + half))


@dataclass(frozen=True)
class Comparison:
    a: str
    b: str
    delta: float | None              # mean(a) - mean(b)
    ci: tuple[float, float] | None   # Welch t interval of delta
    n_a: int
    n_b: int
    verdict: str                     # better | worse | tied | not tested (a relative to b)


def compare(a: str, xs: Sequence[float], b: str, ys: Sequence[float], lower_is_better: bool = True,
            level: float = LEVEL) -> Comparison:
    """Model a against model b on one metric (values per seed)."""
    sa, sb = spread(xs, level), spread(ys, level)
    if sa.mean is None or sb.mean is None:
        return Comparison(a, b, None, None, sa.n, sb.n, "not tested")
    delta = sa.mean - sb.mean
    if sa.n < 2 or sb.n < 2:
        return Comparison(a, b, delta, None, sa.n, sb.n, "not tested")
    va, vb = sa.std ** 2 / sa.n, sb.std ** 2 / sb.n
    se = math.sqrt(va + vb)
    if se == 0:
        ci = (delta, delta)
    else:
        df = (va + vb) ** 2 / (va ** 2 / (sa.n - 1) + vb ** 2 / (sb.n - 1))  # Welch-Satterthwaite
        half = _t(df, level) * se
        ci = (delta - half, delta + half)
    if ci[0] <= 0 <= ci[1]:
        verdict = "tied"
    else:
        a_lower = ci[1] < 0
        verdict = "better" if a_lower == lower_is_better else "worse"
    return Comparison(a, b, delta, ci, sa.n, sb.n, verdict)


def rank_ranges(values: dict[str, Sequence[float]], lower_is_better: bool = True,
                level: float = LEVEL) -> dict[str, tuple[int, int] | None]:
    """{model: (best rank, worst rank)}; None for a model without a finite value. With one seed per model
    nothing is separable: every model gets (1, number of models)."""
    scored = [m for m, v in values.items() if spread(v, level).mean is not None]
    out: dict[str, tuple[int, int] | None] = {m: None for m in values}
    for m in scored:
        verdicts = [compare(m, values[m], o, values[o], lower_is_better, level).verdict for o in scored if o != m]
        better_than_me = sum(v == "worse" for v in verdicts)
        worse_than_me = sum(v == "better" for v in verdicts)
        out[m] = (1 + better_than_me, len(scored) - worse_than_me)
    return out


def rank_text(r: tuple[int, int] | None) -> str:
    if r is None:
        return "n/a"
    return str(r[0]) if r[0] == r[1] else f"{r[0]}–{r[1]}"


def _num(v: float | None, decimals: int) -> str:
    return "n/a" if v is None else f"{v:.{decimals}f}"


def sentence(c: Comparison, metric: str, decimals: int = 1) -> str:
    """'fastgan better than stylegan2 (ΔSWD -39.0 [-47.0, -31.0], 3 vs 3 seeds)'."""
    what = {"better": "better than", "worse": "worse than", "tied": "and", "not tested": "vs"}[c.verdict]
    tail = " tied" if c.verdict == "tied" else (" (not significance-tested)" if c.verdict == "not tested" else "")
    interval = f" [{_num(c.ci[0], decimals)}, {_num(c.ci[1], decimals)}]" if c.ci else ""
    seeds = f"{c.n_a} seed{'s' if c.n_a != 1 else ''}" if c.n_a == c.n_b else f"{c.n_a} vs {c.n_b} seeds"
    return f"{c.a} {what} {c.b}{tail} (Δ{metric} {_num(c.delta, decimals)}{interval}, {seeds})"


def dataset_verdicts(values: dict[str, Sequence[float]], metric: str, lower_is_better: bool = True,
                     decimals: int = 1) -> tuple[list[Comparison], list[str]]:
    """Every pair of models (in the given order), and the sentences that open the dataset's section. With
    fewer than 2 seeds anywhere, one sentence says that the ranks are not significance-tested."""
    models = [m for m in values if spread(values[m]).mean is not None]
    pairs = [compare(a, values[a], b, values[b], lower_is_better) for i, a in enumerate(models)
             for b in models[i + 1:]]
    lines = [sentence(c, metric, decimals) for c in pairs if c.verdict != "not tested"]
    untested = sorted({m for c in pairs if c.verdict == "not tested" for m in (c.a, c.b)
                       if spread(values[m]).n < 2})
    if untested:
        lines.append(f"{', '.join(untested)}: fewer than 2 training seeds, so ranks across models are not "
                     "significance-tested (set experiment.seeds, e.g. [0, 1, 2])")
    return pairs, lines


def _seeds_text(ns: Sequence[int]) -> str:
    lo, hi = min(ns), max(ns)
    return (f"{lo} seed{'s' if lo != 1 else ''} each" if lo == hi else f"{lo}–{hi} seeds")


def headline(values: dict[str, Sequence[float]], metric: str, lower_is_better: bool = True, decimals: int = 1,
             level: float = LEVEL) -> str:
    """The one sentence that opens a dataset: the winner, or who cannot be told apart from the best, or that
    with one seed there is an order but no verdict."""
    spreads = {m: spread(v, level) for m, v in values.items()}
    scored = {m: s for m, s in spreads.items() if s.mean is not None}
    if not scored:
        return f"No verdict: no model has a {metric} value."
    sign = 1.0 if lower_is_better else -1.0
    best = min(scored, key=lambda m: sign * scored[m].mean)
    b = scored[best]
    value = _num(b.mean, decimals) + (f" [{_num(b.ci[0], decimals)}, {_num(b.ci[1], decimals)}]" if b.ci else "")
    seeds = _seeds_text([s.n for s in scored.values()])
    if len(scored) == 1:
        return f"Only {best} has a {metric} value ({value}, {seeds.replace(' each', '')}): nothing to compare."
    if any(s.n < 2 for s in scored.values()):
        return (f"No verdict yet: {best} has the best {metric} ({value}), but with {seeds} the differences between "
                "models are not significance-tested; this is an order, not a ranking.")
    tied = [m for m in scored if m != best
            and compare(best, values[best], m, values[m], lower_is_better, level).verdict == "tied"]
    pct = f"{int(level * 100)}%"
    if not tied:
        return (f"Winner: {best}, better than every other model by {metric} ({value}; {pct} Welch intervals of "
                f"the differences exclude 0; {seeds}).")
    return (f"No single winner: {best} has the best mean {metric} ({value}) but is tied with {', '.join(tied)} "
            f"(their {pct} interval of the difference contains 0; {seeds}).")
