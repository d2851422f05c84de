"""The metric registry (after stylegan2-ada-pytorch's metrics/metric_main.py: a decorator registry, one
metric per file).

Every metric fewgan computes is one module of `fewgan.metrics.defs` holding a `Metric` subclass decorated
with `@register_metric`. The class declares what the metric needs, how it reads (direction, label), whether
it may select a snapshot and rank models, and where its numbers go; its methods compute them from the
shared inputs of one generator (`fewgan.metrics.inputs.Inputs`). The consumers only iterate
`registered_metrics()`:

| consumer | what it takes from a metric |
|---|---|
| `fewgan score` (fewgan.metrics.score) | `per_snapshot`, `score_switch`, `score()`, `columns`, `late_columns`, `score_meta()` |
| `fewgan select` (fewgan.select) | `selects`, `pretrained`, `direction`, `label`, `then`, `auto` |
| `fewgan evaluate` (fewgan.metrics.evaluate, .summary) | `evaluate()`, `eval_fakes()`, `summary` |
| `fewgan report` (fewgan.report) | `report`, `shown`, `shown_per_class`, `rank`, `curve` |

Discovery imports every module of the package `fewgan.metrics.defs` (no import list to keep); a test or a
plug-in registers more with `discover("package")` or by importing a module that uses the decorator. This
module and the metric files import no torch at module level: `fewgan select` and `fewgan report` read the
declarations and stay light (the metric files import their maths inside the methods).
"""

from __future__ import annotations

import importlib
import math
import pkgutil
import re
from dataclasses import dataclass
from typing import Any, Callable

#: what a metric can need from the shared inputs of one generator
#: fakes: the stream of generated images (pixels); pairs: consecutive pairs of that stream;
#: reals: the real images of the split; features: extractor features of fakes and reals (`extractor` names it)
NEEDS = frozenset({"fakes", "pairs", "reals", "features"})
BUILTIN = "fewgan.metrics.defs"
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,31}$")


@dataclass(frozen=True)
class Column:
    """A report column (summary.csv, per_class.csv) or a summary.json key, read from an evaluate metrics dict
    (metrics.json, or one class of its `per_class`)."""

    key: str
    get: Callable[[dict], Any]


@dataclass(frozen=True)
class Shown:
    """A column of the report's human-facing tables: header, and the text from a summary.csv row (`fmt` is the
    report's formatter: fmt.num(v, decimals=None), fmt.pm(value, std))."""

    header: str
    show: Callable[[dict, Any], str]


def num(v: Any) -> float | None:
    """A finite-or-not float from a JSON value; None for null, booleans and non-numbers."""
    if v is None or isinstance(v, bool):
        return None
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def mean_of(v: Any) -> float | None:
    """`v["mean"]` of a per-level block ({levels, mean}), or v itself when it is a number."""
    return num(v.get("mean")) if isinstance(v, dict) else num(v)


def finite(v: Any) -> float:
    """Sort value: the float, +inf for a missing or non-finite one (never wins)."""
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) else math.inf


def ci_end(v: Any, i: int) -> float | None:
    """End `i` (0: low, 1: high) of a [lo, hi] bootstrap interval from metrics.json; None without one."""
    return num(v[i]) if isinstance(v, (list, tuple)) and len(v) == 2 else None


def ci_columns(key: str, ci: Callable[[dict], Any]) -> tuple[Column, Column]:
    """The columns `<key>_ci_low`, `<key>_ci_high` (summary.csv, per_class.csv, summary.json) of the
    bootstrap interval `ci(metrics)` ([lo, hi] or None; fewgan.metrics.bootstrap)."""
    return (Column(f"{key}_ci_low", lambda m: ci_end(ci(m), 0)),
            Column(f"{key}_ci_high", lambda m: ci_end(ci(m), 1)))


def ci_text(f: Any, row: dict, key: str, decimals: int | None = None) -> str:
    """" [lo, hi]" after a Shown value: the row's `<key>_ci_low`/`_ci_high` with the report's formatter `f`
    (empty when the row has no finite interval, e.g. evaluation.bootstrap.samples = 0)."""
    lo, hi = num(row.get(f"{key}_ci_low")), num(row.get(f"{key}_ci_high"))
    if lo is None or hi is None or not (math.isfinite(lo) and math.isfinite(hi)):
        return ""
    return f" [{f.num(lo, decimals)}, {f.num(hi, decimals)}]"


def with_ci(f: Any, row: dict, key: str, decimals: int | None = None) -> str:
    """"value [lo, hi]" of a summary.csv row's `key` (just the value without an interval)."""
    return f.num(row[key], decimals) + ci_text(f, row, key, decimals)


class Metric:
    """One metric's declaration. Subclass it in one file of fewgan/metrics/defs/ and decorate the class with
    `@register_metric`; see docs/DESIGN.md "Add a metric"."""

    # ---- what it is ---------------------------------------------------------------------------------
    name: str = ""                 # key: scores.csv column, evaluation.select.metric value, figure name
    label: str = ""                # what one value is, e.g. "SWD×10³ (mean over pyramid levels)"
    direction: str = "lower"       # "lower" or "higher" is better
    needs: frozenset = frozenset()  # subset of NEEDS
    extractor: str | None = None   # the feature extractor (fewgan.metrics.inputs.EXTRACTORS) when "features"
    order: int = 100               # position in scores.csv, metrics.json and every table (then by name)
    short: str = ""                # the name in sentences ("FD-EffNet"); default: name.upper()

    # ---- selection and ranking (fewgan.select, the report) ------------------------------------------
    selects: bool = False          # may select a snapshot / rank models at all
    pretrained: bool = False       # means something only with the extractor's standard weights: without
    #                                them it may neither select nor rank (auto passes over it, asking is an error)
    then: tuple = ()               # tie-breakers (other metrics' names), after which the later snapshot wins
    auto: int | None = None        # evaluation.select.metric `auto`: the allowed metric with the lowest value
    auto_note: str = ""            # said after its name in the auto reason

    # ---- score: every snapshot ----------------------------------------------------------------------
    per_snapshot: bool = False     # computed by `fewgan score` for every snapshot
    score_switch: str | None = None  # evaluation.score.<key> that turns it on (None: always)
    columns: tuple = ()            # scores.csv columns it fills (default: (name,)); None when off
    late_columns: tuple = ()       # columns after `snapshot` (only when some row has them)
    curve: str | None = None       # the report draws it vs iteration; the caption after "<dataset>: <NAME> "
    curve_label: str = ""          # axis label in score/fid_curve.png (empty: no panel)
    curve_note: str = ""           # footnote of the report's curve when not pretrained

    # ---- evaluate: the selected generator, and the report -------------------------------------------
    summary: tuple = ()            # Columns of evaluate/summary.json (bootstrap intervals: ci_columns)
    report: tuple = ()             # Columns of summary.csv and per_class.csv (ci_columns: <key>_ci_low/high)
    shown: tuple = ()              # Shown columns of the results table (with_ci: "value [lo, hi]")
    shown_per_class: tuple | None = None  # of the per-class table (None: `shown`)
    rank: tuple | None = None      # (summary.csv column, label) the report ranks models by

    # ---- computing (Inputs: fewgan.metrics.inputs) --------------------------------------------------
    def prepare(self, x) -> Any:
        """Real-side state, computed once per real set and shared by every snapshot (e.g. SWD's real
        descriptors); given to stream(). Default: nothing."""
        return None

    def stream(self, x, state: Any, n: int):
        """An accumulator (`add(batch)`, fed every uint8 batch of the one pass over the fakes; it keeps the
        first `n`) when the metric needs pixels ("fakes" or "pairs"). Default: none."""
        return None

    def eval_fakes(self, params: dict) -> int | None:
        """How many fakes `evaluate` must generate for this metric (None: the shared feature count)."""
        return None

    def score(self, x) -> dict:
        """Values of one snapshot: `columns` keys, `late_columns` keys, and anything else for scores.json."""
        raise NotImplementedError(f"metric {self.name} is per_snapshot but has no score()")

    def score_meta(self, x, enabled: bool) -> dict:
        """Keys for scores.json (once per run)."""
        return {}

    def evaluate(self, x) -> dict:
        """metrics.json keys of the selected generator (x.cls is None) or of one class (x.cls = its name),
        with a percentile bootstrap interval of each value when evaluation.bootstrap.samples > 0
        (fewgan.metrics.bootstrap: `x.intervals(self)`; `<key>_ci` [lo, hi] and a `<name>_bootstrap` block)."""
        return {}

    # ---- derived --------------------------------------------------------------------------------------
    @property
    def title(self) -> str:
        """The metric's name in sentences (selection reasons, rules)."""
        return self.short or self.name.upper()

    @property
    def score_columns(self) -> tuple:
        return tuple(self.columns) or (self.name,)

    def better(self, value: Any) -> float:
        """Sort value, smaller = better (missing and non-finite last)."""
        v = finite(value)
        return v if self.direction == "lower" or not math.isfinite(v) else -v

    def __repr__(self) -> str:
        return f"<metric {self.name} from {type(self).__module__}>"


_REGISTRY: dict[str, Metric] = {}
_DISCOVERED: set[str] = set()


def register_metric(cls: type) -> type:
    """Class decorator: check the declaration and register one instance under `cls.name`."""
    m = cls()
    where = f"{cls.__module__}.{cls.__qualname__}"
    if not _NAME.match(m.name or ""):
        raise ValueError(f"{where}: metric name {m.name!r} must match {_NAME.pattern}")
    if not m.label:
        raise ValueError(f"{where}: metric {m.name} has no label")
    if m.direction not in ("lower", "higher"):
        raise ValueError(f"{where}: direction {m.direction!r} (lower | higher)")
    if not set(m.needs) <= NEEDS:
        raise ValueError(f"{where}: needs {sorted(set(m.needs) - NEEDS)} unknown (known: {sorted(NEEDS)})")
    if ("features" in m.needs) != (m.extractor is not None):
        raise ValueError(f"{where}: a metric that needs features names its extractor, and only then")
    if m.pretrained and m.extractor is None:
        raise ValueError(f"{where}: pretrained means the standard weights of its extractor; name the extractor")
    if m.selects and not (m.per_snapshot and m.rank):
        raise ValueError(f"{where}: a metric that selects is scored per snapshot (per_snapshot) and ranks models (rank)")
    old = _REGISTRY.get(m.name)
    if old is not None and f"{type(old).__module__}.{type(old).__qualname__}" != where:
        raise ValueError(f"{where}: metric {m.name!r} is already registered by {type(old).__module__}")
    _REGISTRY[m.name] = m
    return cls


def unregister(name: str) -> None:
    """Remove a metric (tests that register a toy metric undo it)."""
    _REGISTRY.pop(name, None)


def discover(package: str = BUILTIN) -> None:
    """Import every module of `package` (their decorators register the metrics), once."""
    if package in _DISCOVERED:
        return
    pkg = importlib.import_module(package)
    for info in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda i: i.name):
        if not info.name.startswith("_"):
            importlib.import_module(f"{package}.{info.name}")
    _DISCOVERED.add(package)


def registered_metrics() -> list[Metric]:
    """Every registered metric, in table order (`order`, then name)."""
    discover()
    return sorted(_REGISTRY.values(), key=lambda m: (m.order, m.name))


def get_metric(name: str) -> Metric:
    discover()
    if name not in _REGISTRY:
        raise KeyError(f"no metric {name!r} (registered: {', '.join(m.name for m in registered_metrics())})")
    return _REGISTRY[name]


def per_snapshot_metrics() -> list[Metric]:
    return [m for m in registered_metrics() if m.per_snapshot]


def selectable_metrics() -> list[Metric]:
    """The metrics `evaluation.select.metric` may name: they select snapshots and rank models."""
    return [m for m in registered_metrics() if m.selects]
