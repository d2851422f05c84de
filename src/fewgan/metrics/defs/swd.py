"""SWD x10^3 (ProGAN's sliced Wasserstein distance on Laplacian-pyramid patches, from pixels; no pretrained
network; fewgan.metrics.swd).

score: SWD of every snapshot when evaluation.score.swd (the real descriptors are computed once per run);
evaluate: per level and mean, with the real-vs-real noise floor. It selects snapshots and ranks models with
any Inception weights: `auto` uses it when the Inception extractor is a fallback."""

from __future__ import annotations

from fewgan.metrics.registry import Column, Metric, Shown, mean_of, register_metric


@register_metric
class SWD(Metric):
    name = "swd"
    label = "SWD×10³ (mean over pyramid levels)"
    needs = frozenset({"fakes", "reals"})
    order = 30
    selects, auto = True, 1
    per_snapshot, score_switch = True, "swd"
    curve = "vs iteration (all models; no pretrained network)"
    curve_label = "SWD×10³ (train)"
    curve_note = ("SWD: ProGAN sliced Wasserstein distance on Laplacian-pyramid patches, fakes vs the train split; "
                  "no pretrained network")
    summary = (Column("swd_mean", lambda m: m["swd"].get("mean") if isinstance(m.get("swd"), dict) else None),)
    report = (Column("swd_mean_x1e3", lambda m: mean_of(m.get("swd"))),
              Column("swd_real_floor_x1e3", lambda m: mean_of(m.get("swd_real_floor"))))
    shown = (Shown("SWD×10³ mean", lambda r, f: f.num(r["swd_mean_x1e3"])),)
    shown_per_class = (Shown("SWD×10³ mean (real floor)",
                             lambda r, f: f"{f.num(r['swd_mean_x1e3'])} ({f.num(r['swd_real_floor_x1e3'])})"),)
    rank = ("swd_mean_x1e3", "SWD×10³ (mean over levels, vs train)")

    def eval_fakes(self, params: dict) -> int:
        ev = params["evaluation"]
        return int(ev["swd"]["max_images"]) or int(ev["fid"]["n_fake"])

    def prepare(self, x):
        """The real train images' descriptors (None for a class without train images)."""
        from fewgan.metrics.swd import SWDStream

        train = x.reals.images("train")
        return SWDStream(train, x.count_for(self), dict(x.ev["swd"]), seed=x.seed) if train.shape[0] else None

    def stream(self, x, state, n: int):
        from fewgan.metrics.inputs import Counted

        return Counted(state.fresh(), n) if state is not None else None

    def score(self, x) -> dict:
        res = x.stream(self).inner.result()
        return {"swd": res["mean"], "swd_levels": res["levels"]}

    def score_meta(self, x, enabled: bool) -> dict:
        from fewgan.metrics.swd import PROTOCOL

        return {"swd_protocol": PROTOCOL if enabled else None}

    def evaluate(self, x) -> dict:
        from fewgan.metrics.swd import swd_real_floor

        acc = x.stream(self)
        if acc is None:
            x.note(f"no train image of class {x.cls}: SWD not computed")
            swd = None
        else:
            res = acc.inner.result()
            swd = {"levels": res["levels"], "mean": res["mean"], "n_desc": res["n_desc"], "n_fake": res["n_fake"]}
            if x.cls is None:
                swd["protocol"] = res["protocol"]
        floor = None
        train = x.reals.images("train")
        if x.cls is None or train.shape[0] >= 2:
            f = swd_real_floor(train, n_desc=swd["n_desc"], cfg=dict(x.ev["swd"]), seed=x.seed)
            floor = {"levels": f["levels"], "mean": f["mean"]} | ({"method": f["method"]} if x.cls is None else {})
        else:
            x.note(f"{train.shape[0]} train image(s) of class {x.cls}: SWD real floor and real MS-SSIM not "
                   "computed (need >= 2)")
        return {"swd": swd, "swd_real_floor": floor}
