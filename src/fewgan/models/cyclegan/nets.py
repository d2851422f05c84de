"""CycleGAN's networks, after junyanz/pytorch-CycleGAN-and-pix2pix models/networks.py (written here from its
definitions; pix2pix reuses the PatchGAN discriminator).

- `ResnetGenerator` ("resnet_9blocks"): reflection pad 3, conv 7x7 -> ngf, two stride-2 convs 3x3 (ngf*2,
  ngf*4), `n_blocks` residual blocks (reflection pad, conv 3x3, norm, ReLU, [dropout 0.5], reflection pad,
  conv 3x3, norm; x + block(x)), two transposed convs 3x3 stride 2 (output_padding 1) back to ngf, reflection
  pad 3, conv 7x7 -> 3, tanh. With instance norm (affine=False: no parameters) the convs have biases
  (`use_bias = norm is InstanceNorm2d`). 11,378,179 parameters at ngf 64, 9 blocks (any resolution).
- `PatchDiscriminator` ("basic" = NLayerDiscriminator, n_layers 3): conv 4x4 s2 -> ndf (bias, no norm),
  LeakyReLU 0.2; n_layers - 1 convs 4x4 s2 doubling the width (capped at 8 ndf) + norm + LeakyReLU; conv 4x4 s1
  + norm + LeakyReLU; conv 4x4 s1 -> 1 (bias). Padding 1 everywhere. Receptive field of one output: 70 x 70
  (`receptive_field`). 2,764,737 parameters with instance norm on 3 channels (CycleGAN), 2,768,705 with
  BatchNorm on 6 channels (pix2pix's conditional D on the (input, output) pair).
"""

from __future__ import annotations

import torch
from torch import nn

NORMS = ("instance", "batch")


def norm_layer(kind: str, channels: int) -> nn.Module:
    """The repository's get_norm_layer: instance = InstanceNorm2d(affine=False, track_running_stats=False),
    batch = BatchNorm2d(affine=True)."""
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=False, track_running_stats=False)
    if kind == "batch":
        return nn.BatchNorm2d(channels, affine=True)
    raise ValueError(f"norm must be one of {NORMS}, got {kind!r}")


class ResnetBlock(nn.Module):
    def __init__(self, dim: int, norm: str, dropout: float, bias: bool):
        super().__init__()
        layers: list[nn.Module] = [nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3, bias=bias), norm_layer(norm, dim),
                                   nn.ReLU(True)]
        if dropout:
            layers.append(nn.Dropout(dropout))
        layers += [nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3, bias=bias), norm_layer(norm, dim)]
        self.block = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.block(x)


class ResnetGenerator(nn.Module):
    """Image -> image, same size; the side must be a multiple of 4 (two stride-2 levels)."""

    def __init__(self, ngf: int = 64, n_blocks: int = 9, norm: str = "instance", dropout: float = 0.0,
                 in_channels: int = 3, out_channels: int = 3, n_down: int = 2):
        super().__init__()
        bias = norm == "instance"
        layers: list[nn.Module] = [nn.ReflectionPad2d(3), nn.Conv2d(in_channels, ngf, 7, bias=bias),
                                   norm_layer(norm, ngf), nn.ReLU(True)]
        for i in range(n_down):
            cin = ngf * 2 ** i
            layers += [nn.Conv2d(cin, cin * 2, 3, stride=2, padding=1, bias=bias), norm_layer(norm, cin * 2), nn.ReLU(True)]
        width = ngf * 2 ** n_down
        layers += [ResnetBlock(width, norm, dropout, bias) for _ in range(n_blocks)]
        for i in range(n_down):
            cin = ngf * 2 ** (n_down - i)
            layers += [nn.ConvTranspose2d(cin, cin // 2, 3, stride=2, padding=1, output_padding=1, bias=bias),
                       norm_layer(norm, cin // 2), nn.ReLU(True)]
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, out_channels, 7), nn.Tanh()]  # last conv: bias (default)
        self.net = nn.Sequential(*layers)
        self.multiple = 2 ** n_down

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] % self.multiple or x.shape[-2] % self.multiple:
            raise ValueError(f"ResnetGenerator needs sides divisible by {self.multiple}, got {tuple(x.shape)}")
        return self.net(x)


class PatchDiscriminator(nn.Module):
    """One logit per overlapping 70 x 70 patch (n_layers 3): (n, 1, H/8 - 2, W/8 - 2) for H, W >= 32."""

    def __init__(self, in_channels: int = 3, ndf: int = 64, n_layers: int = 3, norm: str = "instance"):
        super().__init__()
        bias = norm == "instance"
        layers: list[nn.Module] = [nn.Conv2d(in_channels, ndf, 4, stride=2, padding=1), nn.LeakyReLU(0.2, True)]
        mult = 1
        for n in range(1, n_layers):
            prev, mult = mult, min(2 ** n, 8)
            layers += [nn.Conv2d(ndf * prev, ndf * mult, 4, stride=2, padding=1, bias=bias),
                       norm_layer(norm, ndf * mult), nn.LeakyReLU(0.2, True)]
        prev, mult = mult, min(2 ** n_layers, 8)
        layers += [nn.Conv2d(ndf * prev, ndf * mult, 4, stride=1, padding=1, bias=bias), norm_layer(norm, ndf * mult),
                   nn.LeakyReLU(0.2, True), nn.Conv2d(ndf * mult, 1, 4, stride=1, padding=1)]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def receptive_field(self) -> int:
        """The input side one output logit sees, from the conv stack: r = 1, then r = (r - 1) * stride + kernel
        from the last conv to the first (4x4 kernels, strides 2, 2, 2, 1, 1: 70)."""
        r = 1
        for m in reversed([m for m in self.net if isinstance(m, nn.Conv2d)]):
            r = (r - 1) * m.stride[0] + m.kernel_size[0]
        return r
