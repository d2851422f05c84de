"""Every stage resolves params `device` the same way."""

from __future__ import annotations

import pytest
import torch

from fewgan.device import resolve_device


def test_cpu_and_auto(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    fallbacks: list[str] = []
    assert resolve_device("cpu", "training", fallbacks) == torch.device("cpu") and fallbacks == []
    assert resolve_device("auto", "training", fallbacks) == torch.device("cpu")
    assert fallbacks == ["no CUDA device (device: auto): training ran on CPU"]


def test_explicit_cuda_without_cuda_is_an_error_not_a_fallback(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(RuntimeError, match=r"device='cuda:1'.*no CUDA device.*device: auto"):
        resolve_device("cuda:1", "metrics", [])


def test_typo_is_refused():
    with pytest.raises(ValueError, match="use auto, cpu, cuda or cuda:N"):
        resolve_device("gpu", "inversion", [])
