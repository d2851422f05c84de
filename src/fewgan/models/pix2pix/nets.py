"""pix2pix's generator, after junyanz/pytorch-CycleGAN-and-pix2pix models/networks.py (UnetGenerator,
UnetSkipConnectionBlock; written here from their definitions). The discriminator is CycleGAN's PatchGAN on
the 6-channel (input, output) pair with BatchNorm (fewgan.models.cyclegan.nets.PatchDiscriminator).

U-Net with `num_downs` stride-2 levels (unet_256: 8, 256 px -> 1 x 1 at the bottleneck; unet_128: 7). Each
level: LeakyReLU 0.2, conv 4x4 s2 (no bias under BatchNorm), BatchNorm (not on the outermost or innermost
down path), the inner levels, ReLU, transposed conv 4x4 s2, BatchNorm, and Dropout(0.5) on the
`num_downs - 5` levels next to the innermost one; the output of a level is concatenated to its input (skip).
Widths ngf, 2 ngf, 4 ngf, then 8 ngf. The outermost level: conv (bias) in, ReLU, transposed conv (bias) out,
tanh. 54,413,955 parameters at ngf 64, 8 levels (the repository prints 54.414 M).
"""

from __future__ import annotations

import torch
from torch import nn


class UnetLevel(nn.Module):
    def __init__(self, outer: int, inner: int, in_channels: int | None = None, sub: nn.Module | None = None,
                 outermost: bool = False, innermost: bool = False, dropout: float = 0.0):
        super().__init__()
        self.outermost = outermost
        in_channels = outer if in_channels is None else in_channels
        down = nn.Conv2d(in_channels, inner, 4, stride=2, padding=1, bias=False)  # BatchNorm follows: no bias
        if outermost:
            layers = [down, sub, nn.ReLU(True), nn.ConvTranspose2d(inner * 2, outer, 4, stride=2, padding=1), nn.Tanh()]
        elif innermost:
            layers = [nn.LeakyReLU(0.2, True), down, nn.ReLU(True),
                      nn.ConvTranspose2d(inner, outer, 4, stride=2, padding=1, bias=False), nn.BatchNorm2d(outer)]
        else:
            layers = [nn.LeakyReLU(0.2, True), down, nn.BatchNorm2d(inner), sub, nn.ReLU(True),
                      nn.ConvTranspose2d(inner * 2, outer, 4, stride=2, padding=1, bias=False), nn.BatchNorm2d(outer)]
            if dropout:
                layers.append(nn.Dropout(dropout))
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x) if self.outermost else torch.cat([x, self.model(x)], 1)


class UnetGenerator(nn.Module):
    def __init__(self, num_downs: int = 8, ngf: int = 64, dropout: float = 0.5, in_channels: int = 3,
                 out_channels: int = 3):
        super().__init__()
        if num_downs < 5:
            raise ValueError(f"the U-Net has 5 levels of fixed widths plus num_downs - 5 more: num_downs >= 5, got {num_downs}")
        level = UnetLevel(ngf * 8, ngf * 8, innermost=True)
        for _ in range(num_downs - 5):
            level = UnetLevel(ngf * 8, ngf * 8, sub=level, dropout=dropout)
        level = UnetLevel(ngf * 4, ngf * 8, sub=level)
        level = UnetLevel(ngf * 2, ngf * 4, sub=level)
        level = UnetLevel(ngf, ngf * 2, sub=level)
        self.net = UnetLevel(out_channels, ngf, in_channels=in_channels, sub=level, outermost=True)
        self.num_downs = num_downs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        side = 2 ** self.num_downs
        if x.shape[-1] % side or x.shape[-2] % side:
            raise ValueError(f"the U-Net with {self.num_downs} levels needs sides divisible by {side}, got {tuple(x.shape)}")
        return self.net(x)
