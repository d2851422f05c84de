"""fewgan.metrics: FID/KID (torch-fidelity), ProGAN SWD and MS-SSIM, LPIPS, and the score / select /
evaluate stages.

`METRICS` maps a metric name to its function (as stylegan2-ada-pytorch's metric registry does):

- ``fid(fake_features, real_features) -> float``
- ``kid(fake_features, real_features, subsets=100, max_subset_size=1000, seed=0) -> {"kid", "kid_std", ...}``
  (x10^3)
- ``swd(real_uint8, fake_uint8_or_batches, n_fake=None, cfg=None, seed=0) -> {"levels", "mean", ...}``
  (x10^3)
- ``msssim(images_uint8, pairs, seed=0) -> {"msssim", "pairs", "method"}`` (distinct pairs of one set);
  for fakes use ``fewgan.metrics.msssim.msssim_fakes(batches, pairs)`` (consecutive independent pairs).
"""

from __future__ import annotations

from typing import Any, Callable


def _fid(*a: Any, **k: Any):
    from fewgan.metrics.fid import fid

    return fid(*a, **k)


def _kid(*a: Any, **k: Any):
    from fewgan.metrics.fid import kid

    return kid(*a, **k)


def _swd(*a: Any, **k: Any):
    from fewgan.metrics.swd import swd

    return swd(*a, **k)


def _msssim(*a: Any, **k: Any):
    from fewgan.metrics.msssim import msssim_set

    return msssim_set(*a, **k)


METRICS: dict[str, Callable[..., Any]] = {"fid": _fid, "kid": _kid, "swd": _swd, "msssim": _msssim}


def register_metric(name: str, fn: Callable[..., Any]) -> None:
    if name in METRICS:
        raise ValueError(f"metric {name!r} registered twice")
    METRICS[name] = fn


__all__ = ["METRICS", "register_metric"]
