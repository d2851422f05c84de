"""One rule for every stage's device (params `device`: auto | cpu | cuda | cuda:N).

- `cpu`: the CPU.
- `cuda` / `cuda:N`: that GPU; when CUDA is unavailable this is an error (no silent fallback to hours
  of CPU work), telling the user to set `device: auto` or `cpu`.
- `auto`: the GPU when there is one, else the CPU, and then the CPU is recorded as a fallback
  ("no CUDA device: ran on CPU") so the outputs say where their numbers came from.
"""

from __future__ import annotations

import logging

import torch

log = logging.getLogger(__name__)


def resolve_device(requested: str | None, stage: str, fallbacks: list[str],
                   local_rank: int | None = None) -> torch.device:
    want = str(requested or "auto")
    if want == "cpu":
        return torch.device("cpu")
    if want.startswith("cuda"):
        if not torch.cuda.is_available():
            raise RuntimeError(f"params device={want!r} but no CUDA device is available on this machine "
                               f"({stage}); set `device: auto` or `device: cpu` in params/base.yaml or the "
                               "profile, then re-run `fewgan params`")
        return torch.device("cuda", local_rank) if local_rank is not None else torch.device(want)
    if want != "auto":
        raise ValueError(f"params device={want!r}: use auto, cpu, cuda or cuda:N (params/base.yaml)")
    if torch.cuda.is_available():
        return torch.device("cuda", local_rank if local_rank is not None else torch.cuda.current_device())
    msg = f"no CUDA device (device: auto): {stage} ran on CPU"
    log.warning(msg)
    fallbacks.append(msg)
    return torch.device("cpu")
