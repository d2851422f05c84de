"""FID/KID: fewgan's extractor and statistics equal torch-fidelity's on the same inputs (offline: a
seeded random-init Inception weights file), the feature cache is keyed by content, sanity values."""

from __future__ import annotations

import time

import pytest
import torch

from fewgan.metrics import fid as F
from fewgan.weights import resolve


class _DS(torch.utils.data.Dataset):
    def __init__(self, x):
        self.x = x

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return self.x[i]


def _images(n, res=32, seed=0, shift=0):
    g = torch.Generator().manual_seed(seed)
    base = torch.rand(n, 3, 1, 1, generator=g) * 200
    noise = torch.rand(n, 3, res, res, generator=g) * 55
    return (base + noise + shift).clamp(0, 255).round().to(torch.uint8)


@pytest.fixture(scope="module")
def sets():
    return _images(8, seed=1), _images(6, seed=2, shift=30)


def test_fid_kid_equal_direct_torch_fidelity_call(params, sets):
    import torch_fidelity

    fake, real = sets
    info = resolve("inception-v3-compat", params)
    assert info.standard is False and info.label.startswith("feature extractor: untrained")
    ex = F.InceptionExtractor(info, "cpu", channels_last=True, batch_size=8)
    ff, rf = ex(fake), ex(real)
    ours = F.fid_kid(ff, rf, params, seed=7)
    ref = torch_fidelity.calculate_metrics(
        input1=_DS(fake), input2=_DS(real), fid=True, kid=True, cuda=False, cache=False, verbose=False,
        save_cpu_ram=True, batch_size=8, feature_extractor_weights_path=str(info.path),
        kid_subset_size=6, kid_subsets=100, rng_seed=7)
    assert ours["kid_subset_size"] == 6  # min(n_real, n_fake, 1000)
    assert ours["fid"] == pytest.approx(ref["frechet_inception_distance"], rel=1e-4, abs=1e-6)
    assert ours["kid"] == pytest.approx(1e3 * ref["kernel_inception_distance_mean"], rel=1e-3, abs=1e-6)
    assert ours["kid_std"] == pytest.approx(1e3 * ref["kernel_inception_distance_std"], rel=1e-3, abs=1e-6)
    assert ours["fid"] > 0


def test_channels_last_features_equal_unmodified_extractor(params, sets):
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    fake, _ = sets
    info = resolve("inception-v3-compat", params)
    plain = FeatureExtractorInceptionV3("inception-v3-compat", ["2048"], feature_extractor_weights_path=str(info.path))
    with torch.no_grad():
        want = plain(fake[:2])[0]
    got = F.InceptionExtractor(info, "cpu", channels_last=True, batch_size=2)(fake[:2])
    assert got.shape == (2, 2048)
    assert (got - want).abs().max().item() <= 1e-5


def test_real_feature_cache_is_keyed_by_content_and_weights(params, sets, tmp_path):
    _, real = sets
    ex = F.build_extractor(params)
    cache = tmp_path / "feat"
    f1, m1 = F.real_features(real[:2], ex, cache)
    assert m1["cached"] is False and len(list(cache.glob("*.pt"))) == 1
    t = time.perf_counter()
    f2, m2 = F.real_features(real[:2], ex, cache)
    assert m2["cached"] is True and torch.equal(f1, f2) and time.perf_counter() - t < 0.5
    changed = real[:2].clone()
    changed[0, 0, 0, 0] ^= 1  # one bit of one pixel: a different image set
    _, m3 = F.real_features(changed, ex, cache)
    assert m3["cached"] is False and m3["key"] != m1["key"]
    # other weights -> other key even for identical images
    ex.info = type(ex.info)(**{**ex.info.__dict__, "sha256": "0" * 64})
    assert F.feature_cache_key(real[:2], ex) != m1["key"]


def test_fid_of_a_set_with_itself_is_zero_and_grows_with_shift():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(400, 32, generator=g, dtype=torch.float64)
    assert abs(F.fid_from_features(a, a)) < 1e-6
    b = torch.randn(400, 32, generator=g, dtype=torch.float64)
    vals = [F.fid_from_features(a, b + s) for s in (0.0, 0.5, 1.0)]
    assert vals[0] < vals[1] < vals[2]
    # mean shift of s in all 32 dims adds ~32 s^2
    assert vals[2] - vals[0] == pytest.approx(32.0, rel=0.15)


def test_kid_of_two_samples_of_one_distribution_is_zero_within_std():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(200, 64, generator=g, dtype=torch.float64)
    b = torch.randn(200, 64, generator=g, dtype=torch.float64)
    k = F.kid_from_features(a, b, subsets=30, max_subset_size=100, seed=0)
    assert k["kid_subset_size"] == 100
    assert abs(k["kid"]) < 3 * k["kid_std"]
    far = F.kid_from_features(a, b + 1.0, subsets=30, max_subset_size=100, seed=0)
    assert far["kid"] > 10 * far["kid_std"] > 0
    # seeded: same seed, same value
    assert F.kid_from_features(a, b, subsets=30, max_subset_size=100, seed=0) == k


def test_uint8_rounding_and_input_checks():
    x = torch.tensor([-1.0, -0.999, 0.0, 0.996, 1.0, 1.5]).view(1, 1, 1, 6).expand(1, 3, 1, 6)
    assert F.to_uint8(x)[0, 0, 0].tolist() == [0, 0, 128, 254, 255, 255]
    with pytest.raises(ValueError, match="uint8"):
        F.check_images(torch.rand(2, 3, 8, 8), "fakes")
    with pytest.raises(ValueError, match="at least 2"):
        F.fid_from_features(torch.zeros(1, 4), torch.zeros(3, 4))
    assert F.kid_subset_size(100, 5000, 1000) == 100 and F.kid_subset_size(3000, 5000, 1000) == 1000


@pytest.mark.parametrize("n1,n2,d", [(300, 200, 64), (40, 25, 64), (90, 70, 200)])
def test_fast_fid_equals_torch_fidelity_statistics(n1, n2, d):
    # full-rank and rank-deficient (n < d) covariances: nuclear-norm / eigh form == torch-fidelity's eigvals
    g = torch.Generator().manual_seed(n1)
    a = torch.randn(n1, d, generator=g, dtype=torch.float64) * torch.linspace(0.1, 2, d, dtype=torch.float64)
    b = torch.randn(n2, d, generator=g, dtype=torch.float64) + 0.3
    fast = F.fid_from_features(a, b)
    ref = F.fid_from_features(a, b, method="torch-fidelity")
    assert fast == pytest.approx(ref, rel=1e-6)
    with pytest.raises(ValueError, match="unknown FID method"):
        F.fid_from_features(a, b, method="scipy")


def test_feature_extractors_run_without_tf32_and_restore_the_flags():
    """cuDNN's TF32 default moved Inception features by 1.3e-3 on an H200; extraction turns it off, training keeps
    whatever the flags were (checked through each extractor's __call__ with a stand-in network)."""
    from fewgan.metrics.effnet import EffNetExtractor
    from fewgan.weights import WeightsInfo

    seen = []

    def net(x):
        seen.append((torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32))
        return [x.float().mean(dim=(2, 3))]

    before = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = True
    try:
        info = WeightsInfo("inception-v3-compat", "unused.pth", "test", "0" * 64, False, "test", None)
        inc = F.InceptionExtractor(info, "cpu", batch_size=2)
        inc._net = net
        eff = EffNetExtractor.__new__(EffNetExtractor)  # the network itself is not under test here
        eff.net, eff.device, eff.batch_size = net, torch.device("cpu"), 2
        x = torch.randint(0, 256, (3, 3, 8, 8), dtype=torch.uint8)
        for extractor in (inc, eff):
            seen.clear()
            got = extractor(x)
            assert got.shape == (3, 3) and seen == [(False, False), (False, False)]  # two batches
            assert (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32) == (True, True)
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = before
