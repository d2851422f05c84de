"""FID and KID through torch-fidelity 0.4.0, with a faster (numerically identical) extractor and a
content-addressed cache of real-image features.

- Extractor: torch-fidelity's own `FeatureExtractorInceptionV3`, built from the weights file that
  `fewgan.weights.resolve("inception-v3-compat", params)` returns (so the real loading code runs even for
  the random-init fallback file), then converted to channels_last (features equal the unmodified module's
  to ~1e-6; tests/metrics/test_fid.py checks it against torch-fidelity on the same images).
- Statistics: torch-fidelity's `fid_features_to_statistics` (np.cov: N-1 covariance) and
  `fid_statistics_to_metric`; KID: `kid_features_to_metric` (polynomial kernel, unbiased MMD, seeded
  subsets) with subset size min(n_real, n_fake, max_subset_size) and the value reported x10^3.
- Real features are cached in `evaluation.feature_cache_dir`, keyed by the sha256 of the image tensor
  (shape + bytes), the extractor (its name: inception, effnet-lite0), the weights file's sha256, the layer
  and the extractor variant (fewgan.metrics.effnet's extractor is cached the same way).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import torch

from fewgan.io import atomic_torch_save, torch_load
from fewgan.images import to_uint8
from fewgan.weights import WeightsInfo, resolve

log = logging.getLogger(__name__)

FEATURE_LAYER = "2048"  # torch-fidelity default layer for FID/KID (pool3, 2048-d)
#: torch-fidelity computes sigma with np.cov (ddof=1); NVIDIA's stylegan2-ada metric uses ddof=0.
COVARIANCE = "N-1 (numpy.cov, torch-fidelity); NVIDIA's stylegan2-ada code uses N"
CACHE_FORMAT = "fewgan.features/1"


def check_images(x: torch.Tensor, what: str) -> torch.Tensor:
    if not torch.is_tensor(x) or x.dtype != torch.uint8 or x.dim() != 4 or x.shape[1] != 3:
        got = f"{x.dtype} {tuple(x.shape)}" if torch.is_tensor(x) else type(x).__name__
        raise ValueError(f"{what}: expected uint8 images (N, 3, H, W), got {got}")
    if x.shape[0] == 0:
        raise ValueError(f"{what}: no images")
    return x


@contextlib.contextmanager
def full_fp32() -> Iterator[None]:
    """Feature extraction in true fp32 on CUDA. cuDNN convolutions default to TF32 on Ampere and later GPUs
    (a 10-bit mantissa): on an H200 that moved Inception features by up to 1.3e-3 between two memory layouts
    of the same network (bench/bench_metrics.py, 2026-12-04), where fp32 agrees to 1e-5. stylegan2-ada-pytorch
    turns TF32 off for its metrics for the same reason. The flags are restored afterwards (training keeps them)."""
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


class InceptionExtractor:
    """torch-fidelity's InceptionV3 (2048-d pool features) from a resolved weights file."""

    name, layer, dim = "inception", FEATURE_LAYER, 2048

    def __init__(self, info: WeightsInfo, device: Any = "cpu", *, channels_last: bool = True,
                 batch_size: int = 50):
        if info.path is None:
            raise ValueError("Inception weights have no file; resolve('inception-v3-compat', params) "
                             "always returns one (official, user-supplied or the random-init fallback)")
        self.device = torch.device(device)
        self.info = info
        self.channels_last = channels_last
        self.batch_size = int(batch_size)
        self._net = None  # built on first use: a stage that skips every Inception metric never pays for it

    @property
    def net(self):
        if self._net is None:
            from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

            # fewgan.weights.resolve already read this file with weights_only=True before torch-fidelity
            # (which loads with weights_only=False) sees it.
            net = FeatureExtractorInceptionV3("inception-v3-compat", [FEATURE_LAYER],
                                              feature_extractor_weights_path=str(self.info.path))
            if self.channels_last:
                net = net.to(memory_format=torch.channels_last)
            self._net = net.to(self.device).eval().requires_grad_(False)
        return self._net

    @property
    def variant(self) -> str:
        return "torch-fidelity-0.4.0/" + ("channels_last" if self.channels_last else "as-shipped")

    @torch.inference_mode()
    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 (N, 3, H, W) -> float32 (N, 2048) on the CPU, in batches."""
        check_images(images, "Inception input")
        out = []
        with full_fp32():
            for i in range(0, images.shape[0], self.batch_size):
                batch = images[i:i + self.batch_size].to(self.device)
                out.append(self.net(batch)[0].float().cpu())
        return torch.cat(out)


def build_extractor(params: dict, device: Any = "cpu") -> InceptionExtractor:
    ev = params["evaluation"]
    info = resolve("inception-v3-compat", params)
    return InceptionExtractor(info, device, channels_last=bool(ev["channels_last"]),
                              batch_size=int(ev["fid"]["batch_size"]))


# ------------------------------------------------------------------------------------------------
# real-feature cache
# ------------------------------------------------------------------------------------------------
def images_sha256(images: torch.Tensor) -> str:
    h = hashlib.sha256()
    h.update(repr((str(images.dtype), tuple(images.shape))).encode())
    h.update(images.contiguous().numpy().tobytes())
    return h.hexdigest()


def _identity(extractor: Any) -> tuple[str, str, int]:
    """(name, layer, dimension) of an extractor (fewgan.metrics.inputs.EXTRACTORS)."""
    return (getattr(extractor, "name", "inception"), str(getattr(extractor, "layer", FEATURE_LAYER)),
            int(getattr(extractor, "dim", 2048)))


def feature_cache_key(images: torch.Tensor, extractor: Any) -> str:
    name, layer, dim = _identity(extractor)
    parts = [CACHE_FORMAT, images_sha256(images), name, extractor.info.sha256 or "nofile", layer, str(dim),
             extractor.variant]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()


def real_features(images: torch.Tensor, extractor: Any, cache_dir: Path | None) -> tuple[torch.Tensor, dict]:
    """Features of a real image set, from the cache when this exact (images, extractor, weights) was seen."""
    check_images(images, "real images")
    key = feature_cache_key(images, extractor)
    name, _, dim = _identity(extractor)
    meta = {"key": key, "images_sha256": images_sha256(images), "n": int(images.shape[0]), "cached": False,
            "extractor": name}
    path = Path(cache_dir) / f"{key}.pt" if cache_dir else None
    if path is not None and path.is_file():
        try:
            blob = torch_load(path)
            if blob.get("format") == CACHE_FORMAT and blob.get("key") == key:
                feats = blob["features"]
                if feats.shape == (images.shape[0], dim):
                    meta["cached"] = True
                    return feats, meta
            log.warning("feature cache %s does not match its key; recomputing", path)
        except Exception as exc:  # corrupt cache file: recompute, say so
            log.warning("feature cache %s unreadable (%s); recomputing", path, exc)
    feats = extractor(images)
    if feats.shape != (images.shape[0], dim):
        raise ValueError(f"extractor {name} returned features {tuple(feats.shape)}, expected ({images.shape[0]}, {dim})")
    if path is not None:
        atomic_torch_save(path, {"format": CACHE_FORMAT, "key": key, "features": feats, "extractor": name,
                                 "images_sha256": meta["images_sha256"],
                                 "weights_sha256": extractor.info.sha256, "variant": extractor.variant})
    return feats, meta


# ------------------------------------------------------------------------------------------------
# the statistics (torch-fidelity's own functions)
# ------------------------------------------------------------------------------------------------
def fid_from_features(fake: torch.Tensor, real: torch.Tensor, method: str = "fast") -> float:
    """FID between two feature sets, N-1 covariances (torch-fidelity's convention).

    method "torch-fidelity": torch-fidelity's fid_features_to_statistics + fid_statistics_to_metric
    (trace of sqrt via np.linalg.eigvals of the 2048x2048 product: ~20-60 s per call on 2 CPU cores).
    method "fast" (default): the same quantity, exactly: with centred features A1, A2,
    tr sqrt(S1 S2) = ||A1 A2^T||_* / sqrt((n1-1)(n2-1)) (nuclear norm = sum of singular values), computed
    in float64 on the n1 x n2 matrix when min(n1, n2) <= 2048, else via symmetric eigendecompositions.
    Agrees with torch-fidelity to ~1e-6 relative (tests/metrics/test_fid.py) and takes well under a second.
    """
    for f, what in ((fake, "fake"), (real, "real")):
        if f.dim() != 2 or f.shape[0] < 2:
            raise ValueError(f"FID needs at least 2 {what} feature vectors, got shape {tuple(f.shape)}")
    if method == "torch-fidelity":
        from torch_fidelity.metric_fid import fid_features_to_statistics, fid_statistics_to_metric

        s1 = fid_features_to_statistics(fake.double().cpu())
        s2 = fid_features_to_statistics(real.double().cpu())
        return float(fid_statistics_to_metric(s1, s2, False)["frechet_inception_distance"])
    if method != "fast":
        raise ValueError(f"unknown FID method {method!r} (fast | torch-fidelity)")
    x1, x2 = fake.double().cpu(), real.double().cpu()
    n1, n2, d = x1.shape[0], x2.shape[0], x1.shape[1]
    mu1, mu2 = x1.mean(0), x2.mean(0)
    a1, a2 = x1 - mu1, x2 - mu2
    tr1 = a1.square().sum() / (n1 - 1)
    tr2 = a2.square().sum() / (n2 - 1)
    if min(n1, n2) <= d:
        cross = torch.linalg.svdvals(a1 @ a2.T).sum() / ((n1 - 1) * (n2 - 1)) ** 0.5
    else:
        s1 = a1.T @ a1 / (n1 - 1)
        s2 = a2.T @ a2 / (n2 - 1)
        lam, vec = torch.linalg.eigh(s1)
        root1 = (vec * lam.clamp_min(0).sqrt()) @ vec.T
        cross = torch.linalg.eigvalsh(root1 @ s2 @ root1).clamp_min(0).sqrt().sum()
    return float((mu1 - mu2).square().sum() + tr1 + tr2 - 2 * cross)


def kid_subset_size(n_real: int, n_fake: int, max_subset_size: int) -> int:
    """torch-fidelity refuses a subset larger than either set: few-shot uses min(n_real, n_fake, max)."""
    return int(min(n_real, n_fake, max_subset_size))


def kid_from_features(fake: torch.Tensor, real: torch.Tensor, *, subsets: int = 100,
                      max_subset_size: int = 1000, seed: int = 0) -> dict[str, float]:
    """KID x10^3 (mean and std over seeded subsets), torch-fidelity's estimator; fakes are input 1."""
    from torch_fidelity.metric_kid import kid_features_to_metric

    size = kid_subset_size(real.shape[0], fake.shape[0], max_subset_size)
    if size < 2:
        raise ValueError(f"KID needs at least 2 images per set (got {fake.shape[0]} fake, {real.shape[0]} real)")
    out = kid_features_to_metric(fake.double().cpu(), real.double().cpu(), kid_subsets=int(subsets),
                                 kid_subset_size=size, rng_seed=int(seed), verbose=False)
    return {"kid": 1e3 * out["kernel_inception_distance_mean"],
            "kid_std": 1e3 * out["kernel_inception_distance_std"], "kid_subset_size": size,
            "kid_subsets": int(subsets)}


# ------------------------------------------------------------------------------------------------
# streaming fakes
# ------------------------------------------------------------------------------------------------
def fake_batches(model, G, n: int, *, batch_size: int, seed: int, device: Any = "cpu",
                 label: int | None = None) -> Iterator[torch.Tensor]:
    """uint8 fakes in batches: latents from a seeded CPU generator, images rounded to uint8. `label`: every
    latent of class `label` (class-conditional models; per-class evaluation), else the model's own draw.

    Generators that draw noise from the global RNG (StyleGAN2's per-pixel noise) run under `fork_rng`
    with the global RNG seeded from `seed`, so the same snapshot always gives the same fakes (and the same
    FID), whatever ran before in the process; the caller's RNG state is left untouched."""
    g = torch.Generator().manual_seed(int(seed))
    dev = torch.device(device)
    devices = [dev.index if dev.index is not None else torch.cuda.current_device()] if dev.type == "cuda" else []
    done = 0
    while done < n:
        b = min(batch_size, n - done)
        with torch.random.fork_rng(devices=devices), torch.inference_mode():
            torch.manual_seed((int(seed) * 1_000_003 + done) % 2**63)  # one noise stream per batch position
            if label is None:
                z = model.sample_latents(b, generator=g)
            else:
                z = model.sample_latents(b, generator=g, labels=torch.full((b,), int(label), dtype=torch.long))
            x = model.generate(G, z.to(device))
        if x.dim() != 4 or x.shape[0] != b or x.shape[1] != 3:
            raise ValueError(f"model.generate returned {tuple(x.shape)}, expected ({b}, 3, R, R)")
        yield to_uint8(x).cpu()
        done += b


def features_of_stream(batches: Iterable[torch.Tensor], extractor: InceptionExtractor,
                       on_batch: Callable[[torch.Tensor], None] | None = None) -> torch.Tensor:
    feats = []
    for b in batches:
        feats.append(extractor(b))
        if on_batch is not None:
            on_batch(b)
    return torch.cat(feats)


def fid_kid(fake_feats: torch.Tensor, real_feats: torch.Tensor, params: dict, *, with_kid: bool = True,
            seed: int = 0) -> dict[str, Any]:
    kcfg = params["evaluation"]["kid"]
    out: dict[str, Any] = {"fid": fid_from_features(fake_feats, real_feats, params["evaluation"]["fid"]["method"])}
    if with_kid:
        out.update(kid_from_features(fake_feats, real_feats, subsets=int(kcfg["subsets"]),
                                     max_subset_size=int(kcfg["max_subset_size"]), seed=seed))
    return out
