"""Translation cells through the metric stages (fewgan.metrics.translation, fewgan.invert.translation,
fewgan.report.translation): fakes are translations of the source domain, reals the target domain; KID x100 by
NICE-GAN's protocol; the cycle / paired reconstruction errors that replace inversion."""

from __future__ import annotations

import io
import math

import pytest
import torch

from fewgan.images import from_uint8, labelled_grid_png, to_uint8
from fewgan.metrics.translation import (NICEGAN_KID_SUBSETS, TranslationSource, ends, mean_over_directions,
                                        nicegan_kid)


class Translator:
    """A duck-typed translator: A -> B adds `shift`, B -> A subtracts it (identity when shift = 0)."""

    def __init__(self, shift: float = 0.0, directions=("AB", "BA")):
        self.shift, self.directions, self.calls = shift, tuple(directions), []

    def check_direction(self, d):
        if d not in self.directions:
            raise ValueError(d)

    def translate(self, x, d):
        self.calls.append((d, x.shape[0]))
        return (x + self.shift if d == "AB" else x - self.shift).clamp(-1, 1)

    def cycle(self, x, d):
        return self.translate(self.translate(x, d), d[::-1])


def _images(n: int, res: int = 16, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, 256, (n, 3, res, res), generator=torch.Generator().manual_seed(seed), dtype=torch.uint8)


# ---- directions and fakes ---------------------------------------------------------------------------------
def test_a_direction_reads_its_source_and_is_compared_with_its_target():
    assert ends("AB") == ("A", "B") and ends("BA") == ("B", "A")
    with pytest.raises(ValueError, match="AB or BA"):
        ends("AA")


def test_translation_source_gives_each_source_image_once_translated_in_order():
    x = _images(5)
    src = TranslationSource(Translator(shift=0.5), x, "AB")
    assert src.n == 5
    got = torch.cat(list(src(total=100, batch_size=2)))  # asks for more than there are: one per source image
    assert got.shape == x.shape
    assert torch.equal(got, to_uint8((from_uint8(x) + 0.5).clamp(-1, 1)))
    assert torch.cat(list(src(total=3, batch_size=2))).shape[0] == 3
    with pytest.raises(ValueError):
        TranslationSource(Translator(directions=("AB",)), x, "BA")


def test_inputs_draw_fakes_from_the_source_and_say_when_there_are_too_few():
    from fewgan.metrics.inputs import Inputs, RealSet, note_once

    reals = RealSet(lambda split: (_images(4, seed=1), [f"{i}.png" for i in range(4)]), {}, None)
    seen, notes = [], []
    x = Inputs({"evaluation": {}}, reals, [], seed=0, kseed=0, n_features=50, batch_size=8,
               source=TranslationSource(Translator(), _images(1), "AB"), consumers=[seen.append],
               note=note_once(notes, warn=False))
    assert x.n_fakes == 1
    assert x.too_few("test", 2, "FID/KID")
    assert notes == ["1 translated image(s): FID/KID not computed (needs >= 2)"]
    latent = Inputs({"evaluation": {}}, reals, [], seed=0, kseed=0, n_features=50, batch_size=8)
    assert latent.n_fakes is None and not latent.too_few("train", 2, "FID/KID")


def test_the_selection_value_is_the_mean_over_directions_and_only_of_complete_ones():
    per = {"AB": {"fid": 10.0, "swd": 1.0, "kid": None}, "BA": {"fid": 30.0, "swd": float("nan"), "kid": None}}
    got = mean_over_directions(per, ["fid", "swd", "kid", "fid_test"])
    assert got == {"fid": 20.0, "swd": None, "kid": None}  # fid_test: no direction has it, left out


# ---- KID x100 by NICE-GAN's protocol ----------------------------------------------------------------------
def test_nicegan_kid_is_kid_x100_over_50_subsets_of_all_images_when_fewer_than_1000():
    from fewgan.metrics.fid import kid_from_features

    g = torch.Generator().manual_seed(0)
    fake, real = torch.randn(7, 16, generator=g), torch.randn(5, 16, generator=g) + 3.0
    got = nicegan_kid(fake, real, seed=3)
    ref = kid_from_features(fake, real, subsets=50, max_subset_size=1000, seed=3)
    assert got["subset_size"] == 5 and got["subsets"] == NICEGAN_KID_SUBSETS == 50
    assert (got["n_fake"], got["n_real"]) == (7, 5)
    assert got["kid_x100"] == pytest.approx(ref["kid"] / 10) and got["kid_x100"] > 0
    big = nicegan_kid(torch.randn(1200, 4, generator=g), torch.randn(1100, 4, generator=g), seed=0, subsets=2)
    assert big["subset_size"] == 1000  # the script's --mmd-subset-size when both sets are larger
    with pytest.raises(ValueError, match="at least 2"):
        nicegan_kid(fake[:1], real, seed=0)


# ---- what replaces inversion ------------------------------------------------------------------------------
def test_the_cycle_error_of_an_identity_translator_is_zero():
    from fewgan.invert.core import reconstruction_metrics
    from fewgan.invert.translation import reconstructions

    a, b = _images(3, seed=1), _images(2, seed=2)
    rec = reconstructions(Translator(shift=0.0), a, b, paired=False, device="cpu")
    assert set(rec) == {"cycle_AB", "cycle_BA"}
    l1 = lambda p, q: (p - q).abs().flatten(1).mean(1)  # noqa: E731 (a distance for the lpips slot)
    for target_u8, recon in rec.values():
        m = reconstruction_metrics(l1, recon, from_uint8(target_u8))
        assert float(m["mse"].max()) == 0.0 and float(m["lpips"].max()) == 0.0
        assert float(m["psnr"].min()) > 100  # 10 log10(4 / 1e-12)


def test_a_lossy_translator_has_the_cycle_and_paired_errors_it_should():
    from fewgan.invert.core import reconstruction_metrics
    from fewgan.invert.translation import reconstructions

    a = torch.full((2, 3, 16, 16), 255, dtype=torch.uint8)  # +1 then clamp at 1, -1: 255 -> 0
    b = torch.full((2, 3, 16, 16), 0, dtype=torch.uint8)
    rec = reconstructions(Translator(shift=1.0), a, b, paired=True, device="cpu")
    assert set(rec) == {"cycle_AB", "cycle_BA", "paired_AB", "paired_BA"}
    l1 = lambda p, q: (p - q).abs().flatten(1).mean(1)  # noqa: E731
    mse = {k: float(reconstruction_metrics(l1, r, from_uint8(t))["mse"].mean()) for k, (t, r) in rec.items()}
    # reconstructions are quantised to uint8 first (as every saved image): 0 becomes 128 / 127.5 - 1
    zero = 128 / 127.5 - 1
    assert mse["cycle_AB"] == pytest.approx((1 - zero) ** 2)   # A = 1 -> 2 clamped to 1 -> 0
    assert mse["cycle_BA"] == pytest.approx((-1 - zero) ** 2)  # B = -1 -> -1 (clamped) -> 0
    assert mse["paired_AB"] == pytest.approx(4.0)  # translate(A) = 1 against its aligned B = -1
    assert mse["paired_BA"] == pytest.approx(4.0)


def test_one_way_translators_have_no_cycle_but_a_paired_error():
    from fewgan.invert.translation import reconstructions

    a, b = _images(2, seed=1), _images(2, seed=2)
    rec = reconstructions(Translator(directions=("AB",)), a, b, paired=True, device="cpu")
    assert list(rec) == ["paired_AB"]
    target, recon = rec["paired_AB"]
    assert torch.equal(target, b) and torch.equal(to_uint8(recon), a)  # identity: translate(A) = A vs its B


# ---- grids ------------------------------------------------------------------------------------------------
def test_grid_rows_may_differ_in_length():
    from PIL import Image

    png = labelled_grid_png([("A (test)", _images(3)), ("A->B", _images(1)), ("B (test)", _images(2))], 8)
    img = Image.open(io.BytesIO(png))
    assert img.size == (96 + 3 * 32, 3 * 32)  # 16 px tiles drawn in 32 px cells


def test_nothing_finite_is_lost_from_the_mean():
    assert math.isclose(mean_over_directions({"AB": {"x": 1}, "BA": {"x": 2}}, ["x"])["x"], 1.5)


def test_msssim_of_a_direction_with_one_held_out_image_is_null_with_a_note_and_the_real_side_stays():
    """afhq_cat2dog at 9:1 holds out one dog: B -> A has one translation, so no pair of fakes (was a crash)."""
    from fewgan.metrics.defs.msssim import MSSSIM
    from fewgan.metrics.inputs import Inputs, RealSet, note_once
    from fewgan.params import resolve

    params, _ = resolve("translate_smoke")
    metric = MSSSIM()
    reals = RealSet(lambda split: (_images(4, seed=1), [f"{i}.png" for i in range(4)]), {}, None)
    for n_src, want_fake in ((1, None), (3, float)):
        notes: list[str] = []
        x = Inputs(params, reals, [metric], seed=0, kseed=0, n_features=n_src, batch_size=8,
                   counts={"msssim": n_src}, note=note_once(notes, warn=False),
                   source=TranslationSource(Translator(shift=0.3), _images(n_src, seed=5), "AB"))
        x.run()
        got = metric.evaluate(x)
        assert 0.0 < got["msssim_real"] < 1.0 and got["msssim_real_pairs"] > 0
        if want_fake is None:
            assert got["msssim_fake"] is None and got["msssim_fake_ci"] is None and got["msssim_fake_pairs"] == 0
            assert notes == ["1 translated image(s): MS-SSIM of the fakes not computed (needs >= 2)"]
        else:
            assert isinstance(got["msssim_fake"], float) and got["msssim_fake_pairs"] == 1 and not notes
