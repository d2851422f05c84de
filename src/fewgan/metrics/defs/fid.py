"""FID (torch-fidelity's statistic on InceptionV3 pool features; fewgan.metrics.fid): the papers' metric.

score: FID of every snapshot against all training images (and against the test split when
evaluation.score.curve_test); evaluate: fid_train, fid_test. With the standard Inception weights it selects
snapshots and ranks models (evaluation.select.metric: auto); from fallback weights it may do neither."""

from __future__ import annotations

from fewgan.metrics.registry import Column, Metric, Shown, num, register_metric


@register_metric
class FID(Metric):
    name = "fid"
    label = "FID"
    needs = frozenset({"features"})
    extractor = "inception"
    order = 10
    selects, pretrained, then = True, True, ("kid",)
    auto, auto_note = 0, " (the papers' metric)"
    per_snapshot = True
    late_columns = ("fid_test",)
    curve = "vs iteration (all models)"
    curve_label = "FID (train)"
    summary = (Column("fid_train", lambda m: m.get("fid_train")), Column("fid_test", lambda m: m.get("fid_test")))
    report = (Column("fid_train", lambda m: num(m.get("fid_train"))),
              Column("fid_test", lambda m: num(m.get("fid_test"))))
    shown = (Shown("FID train", lambda r, f: f.num(r["fid_train"])),
             Shown("FID test", lambda r, f: f.num(r["fid_test"])))
    rank = ("fid_train", "FID (train)")

    def _fid(self, x, split: str) -> float:
        from fewgan.metrics.fid import fid_from_features

        return fid_from_features(x.features(self.extractor), x.reals.features(split, self.extractor),
                                 x.ev["fid"]["method"])

    def score(self, x) -> dict:
        out = {"fid": self._fid(x, "train")}
        if x.ev["score"]["curve_test"]:
            out["fid_test"] = self._fid(x, "test")
        return out

    def evaluate(self, x) -> dict:
        return {f"fid_{s}": None if x.too_few(s, 2, "FID/KID") else self._fid(x, s) for s in ("train", "test")}
