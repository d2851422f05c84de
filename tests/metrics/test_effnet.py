"""The `effnet-lite0` feature extractor (fewgan.metrics.effnet) and the metrics in its features: registered
with torch-fidelity's own registry, its features are timm's pooled features, and torch-fidelity's own
`calculate_metrics(feature_extractor="effnet-lite0", fid, kid, prc)` agrees with fewgan's FD, KID, precision
and recall; the real-feature cache keys on the extractor."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import Dataset

import fewgan.weights as W
from fewgan.metrics import fid as F
from fewgan.metrics import prc as P
from .conftest import make_params


class _Images(Dataset):
    def __init__(self, x):
        self.x = x

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return self.x[i]


def _images(n: int, seed: int, size: int = 64) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = torch.nn.functional.interpolate(torch.rand(n, 3, 8, 8, generator=g), size=(size, size), mode="bilinear",
                                        align_corners=False)
    return ((0.8 * x + 0.2 * torch.rand(n, 3, size, size, generator=g)) * 255).round().to(torch.uint8)


@pytest.fixture(scope="module")
def effnet():
    from fewgan.metrics.effnet import EffNetExtractor

    from pathlib import Path
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        info = W.resolve("effnet-lite0", make_params(Path(d), fallback=False))
    assert info.standard
    return EffNetExtractor(info, "cpu", batch_size=64)


def test_registered_with_torch_fidelity_and_equal_to_timm_pooled_features(effnet):
    from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY

    from fewgan.metrics import effnet as EF
    from fewgan.nets import effnet_lite0 as E

    assert FEATURE_EXTRACTORS_REGISTRY["effnet-lite0"] is EF.FeatureExtractorEffNetLite0
    x = _images(6, 3, size=96)
    feats = effnet(x)
    assert feats.shape == (6, 1280) and feats.dtype == torch.float32
    net = E.build()
    with torch.no_grad():
        pooled = net.forward_head(net.forward_features(E.to_input(E.uint8_to_unit(x))), pre_logits=True)
        logits = net(E.to_input(E.uint8_to_unit(x)))
    # the same module on the same batch: equal up to float32 reassociation in oneDNN's kernels
    assert (feats - pooled).abs().max() <= 1e-5 * max(1.0, pooled.abs().max().item())
    both = EF.FeatureExtractorEffNetLite0("effnet-lite0", ["1280", "logits"])
    f2, lg = both(x)
    assert torch.allclose(f2, pooled, atol=1e-5) and torch.allclose(lg, logits, atol=1e-4)
    with pytest.raises(ValueError, match="uint8"):
        both(x.float())


def test_channels_last_extractor_equals_the_as_shipped_one_and_caches_apart(effnet, tmp_path):
    """evaluation.effnet.channels_last (default on: 1.7x faster on the CPU) changes only the memory layout: the
    features equal the as-shipped module's to float32 reassociation, and the two never share cached features."""
    from fewgan.metrics.effnet import EffNetExtractor

    shipped = EffNetExtractor(effnet.info, "cpu", batch_size=64, channels_last=False, fold_bn=False)
    assert effnet.channels_last and "/channels_last" in effnet.variant and shipped.variant != effnet.variant
    x = _images(5, 11, size=80)
    a, b = effnet(x), shipped(x)
    assert (a - b).abs().max() <= 2e-5 * b.abs().max() and not torch.equal(a, torch.zeros_like(a))
    assert F.real_features(x, effnet, tmp_path)[1]["key"] != F.real_features(x, shipped, tmp_path)[1]["key"]


def test_folded_batchnorm_extractor_equals_the_unfolded_one_and_caches_apart(effnet, tmp_path):
    """evaluation.effnet.fold_bn (default on: 1.2x faster on the CPU) folds each of the 49 BatchNorms into its
    convolution: no BatchNorm is left, the activations stay, the features equal the unfolded module's to float32
    rounding, and the two never share cached features."""
    from fewgan.metrics.effnet import EffNetExtractor
    from fewgan.nets import effnet_lite0 as E

    unfolded = EffNetExtractor(effnet.info, "cpu", batch_size=64, fold_bn=False)
    assert effnet.fold_bn and "/bn_folded" in effnet.variant and unfolded.variant != effnet.variant
    bns = [m for m in unfolded.net.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert len(bns) == 49
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in effnet.net.modules())
    assert sum(isinstance(m, torch.nn.ReLU6) for m in effnet.net.modules()) == \
        sum(isinstance(m, torch.nn.ReLU6) for m in unfolded.net.modules()) > 0
    x = _images(5, 12, size=80)
    a, b = effnet(x), unfolded(x)
    assert (a - b).abs().max() <= 2e-5 * b.abs().max() and not torch.equal(a, b)
    assert F.real_features(x, effnet, tmp_path)[1]["key"] != F.real_features(x, unfolded, tmp_path)[1]["key"]
    net = E.build().train()
    with pytest.raises(ValueError, match="eval mode"):
        E.fold_batchnorm(net)
    odd = torch.nn.Sequential(torch.nn.BatchNorm2d(3), torch.nn.Conv2d(3, 3, 1)).eval()
    with pytest.raises(ValueError, match="do not follow a convolution"):
        E.fold_batchnorm(odd)


def test_torch_fidelity_calculate_metrics_agrees_with_fewgan(effnet):
    import torch_fidelity

    a, b = _images(20, 0), _images(16, 1)
    tf = torch_fidelity.calculate_metrics(input1=_Images(a), input2=_Images(b), feature_extractor="effnet-lite0",
                                          fid=True, kid=True, prc=True, cuda=False, cache=False, verbose=False,
                                          save_cpu_ram=True, batch_size=64, kid_subsets=50, kid_subset_size=16)
    fa, fb = effnet(a), effnet(b)
    fd = F.fid_from_features(fa, fb)
    kid = F.kid_from_features(fa, fb, subsets=50, max_subset_size=16, seed=2020)  # torch-fidelity's rng_seed
    pr = P.precision_recall(fa, fb)
    # FD: float64 statistics on both sides (fewgan's exact nuclear-norm form vs torch-fidelity's eigvals)
    assert fd == pytest.approx(tf["frechet_inception_distance"], rel=1e-5)
    # KID x10^3: torch-fidelity keeps the kernel sums in float32 here, fewgan in float64
    assert kid["kid"] == pytest.approx(1e3 * tf["kernel_inception_distance_mean"], rel=1e-4)
    assert kid["kid_std"] == pytest.approx(1e3 * tf["kernel_inception_distance_std"], rel=1e-3)
    # precision/recall: the same float32 distances and comparisons, so exactly equal
    assert pr["precision"] == tf["precision"] and pr["recall"] == tf["recall"]
    assert 0 < fd and 0 < tf["precision"] <= 1 and 0 < tf["recall"] <= 1


def test_precision_recall_indicators_equal_torch_fidelity_prc():
    from torch_fidelity.metric_prc import prc_features_to_metric

    g = torch.Generator().manual_seed(0)
    for n1, n2, k in ((40, 25, 3), (25, 40, 3), (30, 30, 5), (8, 50, 3)):
        fake = torch.randn(n1, 16, generator=g)
        real = torch.randn(n2, 16, generator=g) + 0.3
        want = prc_features_to_metric(fake, real, prc_neighborhood=k, prc_batch_size=10000, save_cpu_ram=False,
                                      verbose=False)
        got = P.precision_recall(fake, real, k)
        assert (got["precision"], got["recall"]) == (want["precision"], want["recall"]), (n1, n2, k)
    # mode collapse in feature space: copies of 3 points cover few reals
    real = torch.randn(40, 16, generator=g)
    collapsed = real[:3].repeat(14, 1)[:40] + 1e-3 * torch.randn(40, 16, generator=g)
    assert P.precision_recall(collapsed, real)["recall"] < 0.25 < P.precision_recall(real[:20], real[20:])["recall"]
    with pytest.raises(ValueError, match="at least 4"):
        P.precision_recall(real[:3], real)


def test_real_feature_cache_keys_on_the_extractor(effnet, tmp_path):
    class _Other:  # another extractor with the same weights hash and variant: a different name must not collide
        name, layer, dim = "other", "1280", 1280
        info, variant = effnet.info, effnet.variant

        def __call__(self, x):
            return torch.zeros(x.shape[0], 1280)

    x = _images(4, 7)
    f1, m1 = F.real_features(x, effnet, tmp_path)
    f2, m2 = F.real_features(x, effnet, tmp_path)
    assert not m1["cached"] and m2["cached"] and torch.equal(f1, f2) and m1["extractor"] == "effnet-lite0"
    assert f1.shape == (4, 1280)
    f3, m3 = F.real_features(x, _Other(), tmp_path)
    assert m3["key"] != m1["key"] and not m3["cached"] and not torch.equal(f3, f1)


def test_untrained_fallback_is_deterministic_and_labelled(tmp_path, monkeypatch):
    from fewgan.metrics.effnet import EffNetExtractor
    from fewgan.weights import resolver

    monkeypatch.setattr(resolver, "package_file", lambda k: None)
    info = W.resolve("effnet-lite0", make_params(tmp_path, fallback=True))
    assert info.label == W.UNTRAINED_LABEL and not info.standard
    x = _images(2, 5)
    a, b = EffNetExtractor(info), EffNetExtractor(info)
    assert torch.equal(a(x), b(x)) and a.variant.endswith(f"randinit-seed{W.FALLBACK_EFFNET_SEED}")
