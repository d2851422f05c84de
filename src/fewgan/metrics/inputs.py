"""What every metric of one generator shares: its fakes, their features, the real images, their features
and each metric's real-side state, each computed once (fewgan.metrics.registry).

- `RealSet`: the real images of the train and test splits (loaded when first asked), their features per
  extractor (through the content-addressed cache of fewgan.metrics.fid) and the real-side state of every
  metric (`Metric.prepare`: SWD's real descriptors). `score` keeps one for all snapshots; `evaluate` one
  overall and one per class (`of_class`: the overall images and features restricted to the class).
- `Inputs`: one generator (a snapshot, the selected generator, or one of its classes) against a RealSet.
  The first metric that asks for fakes starts the one seeded pass over them (fewgan.metrics.fid.fake_batches):
  every batch feeds the extractors (the first `n_features` fakes) and the accumulator of every metric that
  needs pixels (`Metric.stream`), and any extra consumer (evaluate's sample grid); no fake is kept.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Callable, Iterable

import torch

from fewgan.metrics import fid as F
from fewgan.metrics.registry import Metric

log = logging.getLogger(__name__)


def _inception(params: dict, device: Any):
    return F.build_extractor(params, device)


def _effnet(params: dict, device: Any):
    from fewgan.metrics.effnet import build_extractor

    return build_extractor(params, device)


#: feature extractors by the name metrics give (Metric.extractor): builder(params, device) -> a callable
#: uint8 (N, 3, H, W) -> float (N, D) with `.info` (fewgan.weights.WeightsInfo), `.variant`, and `.name`,
#: `.layer`, `.dim` (the real-feature cache keys on them)
EXTRACTORS: dict[str, Callable[[dict, Any], Any]] = {"inception": _inception, "effnet-lite0": _effnet}


def extractor_blocks(extractors: dict[str, Any]) -> dict[str, dict]:
    """{extractor name: its feature_extractor block (name, source, sha256, standard, label) + variant}."""
    return {n: ex.info.extractor_block() | {"variant": ex.variant} for n, ex in extractors.items()}



def untrained_metrics(metrics: Iterable[Metric], blocks: dict[str, dict], switch: str) -> dict[str, str]:
    """{name: why} of the pretrained-feature metrics whose network is an untrained fallback here: they can
    neither select nor rank (fewgan.select), so a stage whose `switch` (evaluation.score.untrained,
    evaluation.evaluate.untrained) is false skips them. `blocks`: extractor_blocks() of the built extractors
    (no network is built to read them: the extractors build theirs on first use)."""
    return {m.name: f"{m.extractor}: untrained fallback weights; {switch} is false"
            for m in metrics if m.pretrained and m.extractor and not (blocks.get(m.extractor) or {}).get("standard")}


def build_extractors(metrics: Iterable[Metric], params: dict, device: Any, fallbacks: list[str],
                     always: tuple[str, ...] = ("inception",)) -> dict[str, Any]:
    """The extractors the metrics name (plus `always`: the Inception decides what may select), each built
    once; their fallbacks are recorded in order."""
    names = list(dict.fromkeys([*always, *(m.extractor for m in metrics if m.extractor)]))
    out = {}
    for name in names:
        if name not in EXTRACTORS:
            raise KeyError(f"feature extractor {name!r} unknown (known: {', '.join(EXTRACTORS)})")
        ex = out[name] = EXTRACTORS[name](params, device)
        if ex.info.fallback:
            fallbacks.append(ex.info.fallback)
    return out


class RealSet:
    """Real images of the splits and what is derived from them, each computed once."""

    def __init__(self, load: Callable[[str], tuple[torch.Tensor, list[str]]], extractors: dict[str, Any],
                 cache_dir: Path | None):
        self._load, self.extractors, self.cache_dir = load, extractors, cache_dir
        self._images: dict[str, tuple[torch.Tensor, list[str]]] = {}
        self._features: dict[tuple[str, str], tuple[torch.Tensor, dict]] = {}
        self._state: dict[str, Any] = {}
        self.cls: str | None = None

    def images(self, split: str) -> torch.Tensor:
        if split not in self._images:
            self._images[split] = self._load(split)
        return self._images[split][0]

    def names(self, split: str) -> list[str]:
        self.images(split)
        return self._images[split][1]

    def count(self, split: str) -> int:
        return int(self.images(split).shape[0])

    def features(self, split: str, extractor: str = "inception") -> torch.Tensor:
        return self.features_meta(split, extractor)[0]

    def features_meta(self, split: str, extractor: str = "inception") -> tuple[torch.Tensor, dict]:
        key = (split, extractor)
        if key not in self._features:
            self._features[key] = self._compute_features(split, extractor)
        return self._features[key]

    def _compute_features(self, split: str, extractor: str) -> tuple[torch.Tensor, dict]:
        return F.real_features(self.images(split), self.extractors[extractor], self.cache_dir)

    def state(self, metric: Metric, x: "Inputs") -> Any:
        """metric.prepare(x), once per real set."""
        if metric.name not in self._state:
            self._state[metric.name] = metric.prepare(x)
        return self._state[metric.name]

    def of_class(self, name: str, index: int, labels: dict[str, torch.Tensor]) -> "RealSet":
        """The images (and features) of class `index` only; `labels`: split -> class index per image."""
        return _ClassView(self, name, index, labels)


class _ClassView(RealSet):
    def __init__(self, parent: RealSet, name: str, index: int, labels: dict[str, torch.Tensor]):
        super().__init__(parent._load, parent.extractors, parent.cache_dir)
        self.parent, self.cls, self.index, self.labels = parent, name, int(index), labels

    def images(self, split: str) -> torch.Tensor:
        if split not in self._images:
            keep = self.labels[split] == self.index
            names = [n for n, k in zip(self.parent.names(split), keep.tolist()) if k]
            self._images[split] = (self.parent.images(split)[keep], names)
        return self._images[split][0]

    def _compute_features(self, split: str, extractor: str) -> tuple[torch.Tensor, dict]:
        # the overall features restricted to the class (the same numbers, never recomputed)
        feats, meta = self.parent.features_meta(split, extractor)
        return feats[self.labels[split] == self.index], {**meta, "class": self.cls}


class Inputs:
    """One generator's fakes against a RealSet, shared by `metrics` (see the module docstring).

    seed: the fakes' seed; kseed: the seed of subset draws (KID); counts: fakes each pixel metric keeps
    (default: n_features); label: the class every latent carries (per-class evaluation). source: where the fakes
    come from when they are not latent draws of `gan` (a translator's translations of a split:
    fewgan.metrics.translation.TranslationSource, called as source(total, batch_size), at most `source.n` fakes)."""

    def __init__(self, params: dict, reals: RealSet, metrics: Iterable[Metric], *, gan=None, G=None,
                 device: Any = "cpu", seed: int, kseed: int, n_features: int, batch_size: int,
                 counts: dict[str, int] | None = None, label: int | None = None,
                 note: Callable[[str], None] | None = None, consumers: Iterable[Callable] = (), source: Any = None):
        self.params, self.reals, self.metrics = params, reals, list(metrics)
        self.source = source
        self.gan, self.G, self.device = gan, G, device
        self.seed, self.kseed, self.label = int(seed), int(kseed), label
        self.n_features, self.batch_size = int(n_features), int(batch_size)
        self.counts = dict(counts or {})
        self.cls = reals.cls
        self._note, self.consumers = note, list(consumers)
        self._features: dict[str, torch.Tensor] | None = None
        self._streams: dict[str, Any] = {}
        self.n_generated = 0

    @property
    def ev(self) -> dict:
        return self.params["evaluation"]

    def count_for(self, metric: Metric) -> int:
        return int(self.counts.get(metric.name, self.n_features))

    def total(self) -> int:
        """Fakes the pass generates: the most any metric keeps."""
        want = [self.n_features] if any("features" in m.needs for m in self.metrics) else []
        want += [self.count_for(m) for m in self.metrics if {"fakes", "pairs"} & set(m.needs)]
        most = max(want, default=0)
        return most if self.source is None else min(most, int(self.source.n))

    @property
    def n_fakes(self) -> int | None:
        """How many fakes the source can give (a translator: one per source image); None: as many as asked."""
        return None if self.source is None else int(self.source.n)

    # ---- the fakes ----------------------------------------------------------------------------------
    def features(self, extractor: str = "inception") -> torch.Tensor:
        """Features of the first n_features fakes."""
        self.run()
        return self._features[extractor]

    def stream(self, metric: Metric) -> Any:
        """The metric's accumulator after the pass (None when it made none)."""
        self.run()
        return self._streams.get(metric.name)

    def run(self) -> None:
        """The one pass over the fakes (idempotent)."""
        if self._features is not None:
            return
        extractors = list(dict.fromkeys(m.extractor for m in self.metrics if m.extractor))
        streams = {}
        for m in self.metrics:
            if {"fakes", "pairs"} & set(m.needs):
                acc = m.stream(self, self.reals.state(m, self), self.count_for(m))
                if acc is not None:
                    streams[m.name] = acc
        feats: dict[str, list[torch.Tensor]] = {e: [] for e in extractors}
        total, n_feat, done = self.total(), self.n_features, 0
        if total:
            batches = (self.source(total, self.batch_size) if self.source is not None else
                       F.fake_batches(self.gan, self.G, total, batch_size=self.batch_size, seed=self.seed,
                                      device=self.device, label=self.label))
            for batch in batches:
                if done < n_feat:
                    for e in extractors:
                        feats[e].append(self.reals.extractors[e](batch[:n_feat - done]))
                for acc in streams.values():
                    acc.add(batch)
                for consume in self.consumers:
                    consume(batch)
                done += batch.shape[0]
        self.n_generated = done
        self._streams = streams
        self._features = {e: torch.cat(v) for e, v in feats.items() if v}

    # ---- bootstrap intervals -----------------------------------------------------------------------------
    def intervals(self, metric: Metric):
        """The metric's bootstrap intervals of this generator (fewgan.metrics.bootstrap.Intervals): resamples
        seeded from params seed, the metric's name and the class."""
        from fewgan.metrics.bootstrap import Intervals, settings

        return Intervals(settings(self.params), metric.name, self.cls)

    # ---- notes ----------------------------------------------------------------------------------------
    def note(self, msg: str) -> None:
        """Say why a number is missing: a fallback of the run, or a note of the class (said once)."""
        if self._note is not None:
            self._note(msg)

    def too_few(self, split: str, need: int, what: str) -> bool:
        """True (and a note) when the split has fewer than `need` real images for `what`, or the source of the
        fakes (a translator's held-out images) gives fewer than `need`. The overall train set is never cut short
        here: the metric's own error names it."""
        if self.n_fakes is not None and self.n_fakes < need:
            self.note(f"{self.n_fakes} translated image(s): {what} not computed (needs >= {need})")
            return True
        n = self.reals.count(split)
        if n >= need or (self.cls is None and split == "train"):
            return False
        if self.cls is None:
            self.note(f"{split} split has {n} image(s): {what} against {split} not computed (needs >= {need})")
        else:
            self.note(f"{n} {split} image(s) of class {self.cls}: {what} against {split} not computed "
                      f"(needs >= {need})")
        return True


class Counted:
    """An accumulator that keeps the first `n` images fed to `add` (evaluate feeds every batch of the pass)."""

    def __init__(self, inner: Any, n: int):
        self.inner, self.n, self.seen = inner, int(n), 0

    def add(self, batch: torch.Tensor) -> None:
        if self.seen < self.n:
            self.inner.add(batch[:self.n - self.seen])
        self.seen += batch.shape[0]


def note_once(sink: list[str], *, warn: bool) -> Callable[[str], None]:
    """A note function that appends each distinct text once (and logs it when `warn`)."""
    def note(msg: str) -> None:
        if msg not in sink:
            if warn:
                log.warning("%s", msg)
            sink.append(msg)
    return note
