"""SWD x10^3 (ProGAN's sliced Wasserstein distance on Laplacian-pyramid patches, from pixels; no pretrained
network; fewgan.metrics.swd).

score: SWD of every snapshot when evaluation.score.swd (the real descriptors are computed once per run);
evaluate: per level and mean, with the real-vs-real noise floor and a percentile bootstrap interval of the
mean (swd.mean_ci: fake and real images resampled with their descriptors, fewgan.metrics.bootstrap). It
selects snapshots and ranks models with any weights: `auto` uses it when neither the Inception nor the
EfficientNet-Lite0 extractor has its standard weights (it cannot see mode collapse: bench/README.md)."""

from __future__ import annotations

from fewgan.metrics.registry import Column, Metric, Shown, ci_columns, ci_text, mean_of, register_metric

RESAMPLED = ("fake and real images (each side with replacement), each image's patch descriptors kept together; "
             "the side with more descriptors loses random ones to equal counts; each set renormalised by its "
             "own channel statistics; the point estimate's projection directions (same seed)")


def _mean_ci(m: dict):
    return m["swd"].get("mean_ci") if isinstance(m.get("swd"), dict) else None


@register_metric
class SWD(Metric):
    name = "swd"
    label = "SWD×10³ (mean over pyramid levels)"
    needs = frozenset({"fakes", "reals"})
    order = 30
    selects, auto = True, 2
    per_snapshot, score_switch = True, "swd"
    curve = "vs iteration (all models; no pretrained network)"
    curve_label = "SWD×10³ (train)"
    curve_note = ("SWD: ProGAN sliced Wasserstein distance on Laplacian-pyramid patches, fakes vs the train split; "
                  "no pretrained network")
    summary = (Column("swd_mean", lambda m: m["swd"].get("mean") if isinstance(m.get("swd"), dict) else None),
               *ci_columns("swd_mean", _mean_ci))
    report = (Column("swd_mean_x1e3", lambda m: mean_of(m.get("swd"))),
              *ci_columns("swd_mean_x1e3", _mean_ci),
              Column("swd_real_floor_x1e3", lambda m: mean_of(m.get("swd_real_floor"))))
    shown = (Shown("SWD×10³ mean", lambda r, f: f.num(r["swd_mean_x1e3"]) + ci_text(f, r, "swd_mean_x1e3")),)
    shown_per_class = (Shown("SWD×10³ mean (real floor)",
                             lambda r, f: f"{f.num(r['swd_mean_x1e3'])}{ci_text(f, r, 'swd_mean_x1e3')} "
                                          f"({f.num(r['swd_real_floor_x1e3'])})"),)
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
        from fewgan.metrics import swd as swd_module
        from fewgan.metrics.bootstrap import swd_samples
        from fewgan.metrics.realcache import cached
        from fewgan.metrics.swd import swd_real_floor

        acc = x.stream(self)
        boot = x.intervals(self)
        if acc is None:
            x.note(f"no train image of class {x.cls}: SWD not computed")
            swd = None
        else:
            st = acc.inner
            res = st.result()
            swd = {"levels": res["levels"], "mean": res["mean"], "n_desc": res["n_desc"], "n_fake": res["n_fake"]}
            # the resamples run on the GPU when evaluate has one (the descriptors are computed on the CPU)
            dev = x.device if str(x.device).startswith("cuda") else "cpu"
            swd["mean_ci"] = boot.run("swd_mean", res["mean"], lambda n, gen: swd_samples(
                st.real_desc, st.real_counts, st.fake_desc, st.fake.counts, res=st.res, cfg=st.cfg, seed=st.seed,
                samples=n, gen=gen, device=dev))
            swd["bootstrap"] = boot.block(RESAMPLED, of="mean over levels")
            if x.cls is None:
                swd["protocol"] = res["protocol"]
        floor = None
        train = x.reals.images("train")
        if x.cls is None or train.shape[0] >= 2:
            settings = {"n_desc": swd["n_desc"], "cfg": dict(x.ev["swd"]), "seed": x.seed}
            f = cached(x.reals.cache_dir, "swd_real_floor", train, settings,
                       lambda: swd_real_floor(train, **settings), (swd_module,))
            floor = {"levels": f["levels"], "mean": f["mean"]} | ({"method": f["method"]} if x.cls is None else {})
        else:
            x.note(f"{train.shape[0]} train image(s) of class {x.cls}: SWD real floor and real MS-SSIM not "
                   "computed (need >= 2)")
        return {"swd": swd, "swd_real_floor": floor}
