"""MS-SSIM (ProGAN's multi-scale SSIM; fewgan.metrics.msssim): diversity, not quality, so it never selects
or ranks. evaluate: mean over consecutive pairs of independent fakes, and over distinct pairs of the real
training images (the value to compare with: lower = more diverse)."""

from __future__ import annotations

from fewgan.metrics.registry import Column, Metric, Shown, num, register_metric


@register_metric
class MSSSIM(Metric):
    name = "msssim"
    label = "MS-SSIM (diversity; lower = more diverse)"
    # lower = more diverse, but the number to match is the real set's own: it never selects or ranks
    needs = frozenset({"pairs", "reals"})
    order = 40
    summary = (Column("msssim_fake", lambda m: m.get("msssim_fake")),
               Column("msssim_real", lambda m: m.get("msssim_real")))
    report = (Column("msssim_fake", lambda m: num(m.get("msssim_fake"))),
              Column("msssim_real", lambda m: num(m.get("msssim_real"))))
    shown = (Shown("MS-SSIM fake (real)",
                   lambda r, f: f"{f.num(r['msssim_fake'], 4)} ({f.num(r['msssim_real'], 4)})"),)

    def eval_fakes(self, params: dict) -> int:
        return 2 * int(params["evaluation"]["msssim"]["pairs"])

    def stream(self, x, state, n: int):
        from fewgan.metrics.msssim import PairStream

        return PairStream(n // 2)  # takes its pairs from the first n fakes itself

    def evaluate(self, x) -> dict:
        from fewgan.metrics.msssim import msssim_set

        ev = x.ev["msssim"]
        train = x.reals.images("train")
        real = {"msssim": None, "pairs": 0}
        if x.cls is None or train.shape[0] >= 2:
            real = msssim_set(train, int(ev["pairs"]), seed=x.seed, batch_size=int(ev["batch_size"]))
        else:
            x.note(f"{train.shape[0]} train image(s) of class {x.cls}: SWD real floor and real MS-SSIM not "
                   "computed (need >= 2)")
        fake = x.stream(self).result()
        if x.cls is not None:  # per class: the real set's numbers first (metrics.json's order)
            return {"msssim_real": real["msssim"], "msssim_real_pairs": real["pairs"],
                    "msssim_fake": fake["msssim"], "msssim_fake_pairs": fake["pairs"]}
        return {"msssim_fake": fake["msssim"], "msssim_fake_pairs": fake["pairs"],
                "msssim_real": real["msssim"], "msssim_real_pairs": real["pairs"],
                "msssim_method": {"fake": fake["method"], "real": real["method"]}}
