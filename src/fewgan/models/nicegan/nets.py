"""NICE-GAN's networks, after alpc91/NICE-GAN-pytorch networks.py (written here from its definitions).

**Discriminator** (one per domain; `ndf` = ch 64, `n_layers` = n_dis 7). Every conv is spectrally normalised,
4x4 with reflection padding 1, followed by LeakyReLU 0.2.
- The **encoder** (its first layers, `encode`): two stride-2 convs (3 -> ndf -> 2 ndf), then a class
  activation map: global average and max pooling -> a spectrally normalised linear layer (4 ndf -> 1, no bias)
  gives the CAM logit; the features, doubled, are weighted by that layer's (unnormalised) weights, a 1x1 conv
  brings them back to 2 ndf, and the residual attention `x = lambda * x + x0` (lambda a parameter initialised
  to 0) is followed by LeakyReLU. The result is the code `z` (2 ndf channels at 1/4 resolution) the
  generators decode.
- The **local** head: n_dis - 6 stride-2 convs, one stride-1 conv, a 1-channel conv (no bias): receptive
  field 70. The **global** head continues from the local head's first part with two more stride-2 convs, a
  stride-1 conv and a 1-channel conv: receptive field 286 (`receptive_fields`).
- 46,874,433 parameters at ndf 64, n_dis 7 (independent of the resolution).

**Generator** (`light`: the paper's results use it, per the maintainer in issue #18): it decodes `z`. A 3x3
conv (2 ngf -> 4 ngf, bias) + ILN + ReLU; gamma and beta for AdaLIN from an MLP (light: on the global average
of the features, 4 ngf -> 4 ngf twice, no bias, ReLU; full: on the flattened features); n_res AdaLIN residual
blocks (conv 3x3 without bias, adaILN, ReLU, conv, adaILN, + x); two up-sampling stages, each a 3x3 conv
halving the width + ILN + ReLU, a 1x1 conv (bias) to 4x the width and PixelShuffle(2), ILN + ReLU; reflection
pad 3, 7x7 conv (no bias) -> 3, tanh. Light: 8,104,640 parameters at ngf 64, n_res 6.

ILN / adaILN mix instance and layer normalisation with softmax weights rho (ILN: rho init (1, 3.2), learned
gamma 1 and beta 0; adaILN: rho init (3.2, 1), gamma and beta from the MLP); variances are the unbiased ones
(torch.var), as the official code computes them. PyTorch's default initialisation (the official code has no
init function).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import spectral_norm


def _normalised(x: torch.Tensor, eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(instance-normalised x, layer-normalised x), unbiased variances as in the official code."""
    x_in = (x - x.mean(dim=(2, 3), keepdim=True)) / torch.sqrt(x.var(dim=(2, 3), keepdim=True) + eps)
    x_ln = (x - x.mean(dim=(1, 2, 3), keepdim=True)) / torch.sqrt(x.var(dim=(1, 2, 3), keepdim=True) + eps)
    return x_in, x_ln


class ILN(nn.Module):
    """Instance-layer normalisation with learned affine gamma, beta."""

    def __init__(self, channels: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.rho = nn.Parameter(torch.tensor([1.0, 3.2]).repeat(1, channels, 1))  # softmax -> mostly LN at init
        self.gamma = nn.Parameter(torch.ones(1, channels, 1, 1))
        self.beta = nn.Parameter(torch.zeros(1, channels, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x_in, x_ln = _normalised(x, self.eps)
        rho = F.softmax(self.rho, dim=2)[..., None]  # (1, C, 2, 1)
        return (rho[:, :, 0:1] * x_in + rho[:, :, 1:2] * x_ln) * self.gamma + self.beta


class AdaILN(nn.Module):
    """Adaptive ILN: gamma and beta (n, C) come from the generator's MLP."""

    def __init__(self, channels: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.rho = nn.Parameter(torch.tensor([3.2, 1.0]).repeat(1, channels, 1))  # mostly IN at init

    def forward(self, x: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
        x_in, x_ln = _normalised(x, self.eps)
        rho = F.softmax(self.rho, dim=2)[..., None]
        return (rho[:, :, 0:1] * x_in + rho[:, :, 1:2] * x_ln) * gamma[:, :, None, None] + beta[:, :, None, None]


class AdaILNBlock(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.conv1 = nn.Conv2d(dim, dim, 3, bias=False)
        self.norm1 = AdaILN(dim)
        self.conv2 = nn.Conv2d(dim, dim, 3, bias=False)
        self.norm2 = AdaILN(dim)

    def forward(self, x: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.norm1(self.conv1(F.pad(x, (1, 1, 1, 1), mode="reflect")), gamma, beta))
        out = self.norm2(self.conv2(F.pad(out, (1, 1, 1, 1), mode="reflect")), gamma, beta)
        return out + x


class NiceGenerator(nn.Module):
    """Code z (n, 2 ngf, R/4, R/4) from a discriminator's encoder -> image (n, 3, R, R)."""

    def __init__(self, ngf: int = 64, n_blocks: int = 6, resolution: int = 256, light: bool = True):
        super().__init__()
        width = ngf * 4
        self.light = light
        self.up0 = nn.Sequential(nn.ReflectionPad2d(1), nn.Conv2d(ngf * 2, width, 3, bias=True), ILN(width), nn.ReLU(True))
        fc_in = width if light else (resolution // 4) * (resolution // 4) * width
        self.fc = nn.Sequential(nn.Linear(fc_in, width, bias=False), nn.ReLU(True),
                                nn.Linear(width, width, bias=False), nn.ReLU(True))
        self.gamma = nn.Linear(width, width, bias=False)
        self.beta = nn.Linear(width, width, bias=False)
        self.blocks = nn.ModuleList(AdaILNBlock(width) for _ in range(n_blocks))
        up: list[nn.Module] = []
        for w in (width, width // 2):  # 4 ngf -> 2 ngf -> ngf, each x2 by sub-pixel convolution
            up += [nn.ReflectionPad2d(1), nn.Conv2d(w, w // 2, 3, bias=False), ILN(w // 2), nn.ReLU(True),
                   nn.Conv2d(w // 2, w // 2 * 4, 1, bias=True), nn.PixelShuffle(2), ILN(w // 2), nn.ReLU(True)]
        up += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, 3, 7, bias=False), nn.Tanh()]
        self.up = nn.Sequential(*up)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = self.up0(z)
        pooled = F.adaptive_avg_pool2d(x, 1).flatten(1) if self.light else x.flatten(1)
        h = self.fc(pooled)
        gamma, beta = self.gamma(h), self.beta(h)
        for block in self.blocks:
            x = block(x, gamma, beta)
        return self.up(x)


def _down(cin: int, cout: int, stride: int) -> list[nn.Module]:
    return [nn.ReflectionPad2d(1), spectral_norm(nn.Conv2d(cin, cout, 4, stride=stride, bias=True)), nn.LeakyReLU(0.2, True)]


class NiceDiscriminator(nn.Module):
    """forward(x) -> (local logits, global logits, CAM logit, heatmap, z); `encode(x)` -> z only."""

    def __init__(self, ndf: int = 64, n_layers: int = 7):
        super().__init__()
        if n_layers < 6:
            raise ValueError(f"NICE-GAN's discriminator needs n_dis >= 6 (its widths assume it), got {n_layers}")
        self.n_layers = n_layers
        # encoder: two stride-2 convs, CAM, residual attention
        self.model = nn.Sequential(*_down(3, ndf, 2), *_down(ndf, ndf * 2, 2))
        self.fc = spectral_norm(nn.Linear(ndf * 4, 1, bias=False))
        self.conv1x1 = nn.Conv2d(ndf * 4, ndf * 2, 1, bias=True)
        self.lamda = nn.Parameter(torch.zeros(1))  # residual attention weight, initialised to 0 (networks.py)
        # local head (receptive field 70)
        self.dis0_0 = nn.Sequential(*[m for i in range(2, n_layers - 4) for m in _down(ndf * 2 ** (i - 1), ndf * 2 ** i, 2)])
        m = 2 ** (n_layers - 5)
        self.dis0_1 = nn.Sequential(*_down(ndf * m, ndf * m * 2, 1))
        self.conv0 = spectral_norm(nn.Conv2d(ndf * m * 2, 1, 4, bias=False))
        # global head (receptive field 286), continuing from dis0_0
        self.dis1_0 = nn.Sequential(*[m for i in range(n_layers - 4, n_layers - 2)
                                      for m in _down(ndf * 2 ** (i - 1), ndf * 2 ** i, 2)])
        m = 2 ** (n_layers - 3)
        self.dis1_1 = nn.Sequential(*_down(ndf * m, ndf * m * 2, 1))
        self.conv1 = spectral_norm(nn.Conv2d(ndf * m * 2, 1, 4, bias=False))

    def encode_with_cam(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(z, CAM logit, heatmap)."""
        x0 = self.model(x)
        pooled = torch.cat([F.adaptive_avg_pool2d(x0, 1), F.adaptive_max_pool2d(x0, 1)], 1).flatten(1)
        cam_logit = self.fc(pooled)
        # the official code weights the features with list(fc.parameters())[0]: spectral_norm's weight_orig,
        # the unnormalised weight
        weight = self.fc.weight_orig
        x = self.conv1x1(torch.cat([x0, x0], 1) * weight[:, :, None, None])
        x = F.leaky_relu(self.lamda * x + x0, 0.2)
        return x, cam_logit, x.sum(dim=1, keepdim=True)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encode_with_cam(x)[0]

    def forward(self, x: torch.Tensor):
        z, cam_logit, heatmap = self.encode_with_cam(x)
        h0 = self.dis0_0(z)
        h1 = self.dis1_1(self.dis1_0(h0))
        h0 = self.dis0_1(h0)
        local = self.conv0(F.pad(h0, (1, 1, 1, 1), mode="reflect"))
        glob = self.conv1(F.pad(h1, (1, 1, 1, 1), mode="reflect"))
        return local, glob, cam_logit, heatmap, z

    def encoder_parameters(self) -> list[nn.Parameter]:
        """The parameters of the encoder (the layers `encode` runs), e.g. to check NICE-GAN's decoupling."""
        return [*self.model.parameters(), *self.fc.parameters(), *self.conv1x1.parameters(), self.lamda]

    def receptive_fields(self) -> dict[str, int]:
        """{local, global}: the input side one logit sees, from the conv stacks (the 1x1 conv adds nothing)."""
        def rf(modules):
            r = 1
            for c in reversed([c for c in modules if isinstance(c, nn.Conv2d)]):
                r = (r - 1) * c.stride[0] + c.kernel_size[0]
            return r
        enc = [*self.model]
        return {"local": rf([*enc, *self.dis0_0, *self.dis0_1, self.conv0]),
                "global": rf([*enc, *self.dis0_0, *self.dis1_0, *self.dis1_1, self.conv1])}


def min_resolution(n_layers: int) -> int:
    """The smallest side the global head accepts: it downsamples by 2**(n_dis - 2) and its last two 4x4
    convs (reflection padding 1) need >= 4 pixels there: 2**n_dis (128 px at n_dis 7)."""
    return 2 ** n_layers
