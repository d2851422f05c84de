"""MS-SSIM (ProGAN's multi-scale SSIM; fewgan.metrics.msssim): diversity, not quality, so it never selects
or ranks. evaluate: mean over consecutive pairs of independent fakes, and over distinct pairs of the real
training images (the value to compare with: lower = more diverse), each with a percentile bootstrap interval
over its pairs (msssim_fake_ci, msssim_real_ci; fewgan.metrics.bootstrap)."""

from __future__ import annotations

from fewgan.metrics.registry import Column, Metric, Shown, ci_columns, ci_text, num, register_metric

RESAMPLED = {"fake": "pairs of independent fakes (per-pair values, with replacement); their mean",
             "real": "distinct pairs of the real train images (per-pair values, with replacement); their mean. "
                     "The pairs share images, so this interval is narrower than the real set's sampling noise"}


@register_metric
class MSSSIM(Metric):
    name = "msssim"
    label = "MS-SSIM (diversity; lower = more diverse)"
    # lower = more diverse, but the number to match is the real set's own: it never selects or ranks
    needs = frozenset({"pairs", "reals"})
    order = 40
    summary = (Column("msssim_fake", lambda m: m.get("msssim_fake")),
               *ci_columns("msssim_fake", lambda m: m.get("msssim_fake_ci")),
               Column("msssim_real", lambda m: m.get("msssim_real")),
               *ci_columns("msssim_real", lambda m: m.get("msssim_real_ci")))
    report = (Column("msssim_fake", lambda m: num(m.get("msssim_fake"))),
              *ci_columns("msssim_fake", lambda m: m.get("msssim_fake_ci")),
              Column("msssim_real", lambda m: num(m.get("msssim_real"))),
              *ci_columns("msssim_real", lambda m: m.get("msssim_real_ci")))
    shown = (Shown("MS-SSIM fake (real)",
                   lambda r, f: f"{f.num(r['msssim_fake'], 4)}{ci_text(f, r, 'msssim_fake', 4)} "
                                f"({f.num(r['msssim_real'], 4)}{ci_text(f, r, 'msssim_real', 4)})"),)

    def eval_fakes(self, params: dict) -> int:
        return 2 * int(params["evaluation"]["msssim"]["pairs"])

    def stream(self, x, state, n: int):
        from fewgan.metrics.msssim import PairStream

        return PairStream(n // 2)  # takes its pairs from the first n fakes itself

    def evaluate(self, x) -> dict:
        from fewgan.metrics import msssim as msssim_module
        from fewgan.metrics.bootstrap import mean_samples
        from fewgan.metrics.msssim import msssim_set
        from fewgan.metrics.realcache import cached

        ev = x.ev["msssim"]
        train = x.reals.images("train")
        real = {"msssim": None, "pairs": 0}
        if x.cls is None or train.shape[0] >= 2:
            settings = {"pairs": int(ev["pairs"]), "seed": x.seed, "batch_size": int(ev["batch_size"])}
            real = cached(x.reals.cache_dir, "msssim_real", train, settings,
                          lambda: msssim_set(train, settings["pairs"], seed=x.seed, batch_size=settings["batch_size"],
                                             keep_values=True), (msssim_module,))
        else:
            x.note(f"{train.shape[0]} train image(s) of class {x.cls}: SWD real floor and real MS-SSIM not "
                   "computed (need >= 2)")
        acc = x.stream(self)
        if x.n_fakes is not None and x.n_fakes < 2:  # a translator with one held-out source image: no fake pair
            x.note(f"{x.n_fakes} translated image(s): MS-SSIM of the fakes not computed (needs >= 2)")
            fake = {"msssim": None, "pairs": 0, "method": None}
        else:
            fake = acc.result()
        boot = x.intervals(self)
        fake_ci = boot.run("msssim_fake", fake["msssim"], lambda n, gen: mean_samples(acc.values(), n, gen))
        real_ci = boot.run("msssim_real", real["msssim"], lambda n, gen: mean_samples(real["values"], n, gen))
        block = boot.block(RESAMPLED)
        if x.cls is not None:  # per class: the real set's numbers first (metrics.json's order)
            return {"msssim_real": real["msssim"], "msssim_real_pairs": real["pairs"], "msssim_real_ci": real_ci,
                    "msssim_fake": fake["msssim"], "msssim_fake_pairs": fake["pairs"], "msssim_fake_ci": fake_ci,
                    "msssim_bootstrap": block}
        return {"msssim_fake": fake["msssim"], "msssim_fake_pairs": fake["pairs"], "msssim_fake_ci": fake_ci,
                "msssim_real": real["msssim"], "msssim_real_pairs": real["pairs"], "msssim_real_ci": real_ci,
                "msssim_method": {"fake": fake["method"], "real": real["method"]}, "msssim_bootstrap": block}
