"""Conditional GAN networks (Mirza & Osindero, "Conditional Generative Adversarial Nets", 2014), in the
convolutional form the GAN survey describes (a DCGAN-shaped generator with the class injected at 4x4):

G: z -> fully connected -> 4x4x(g_channels = 1024) -> BatchNorm -> ReLU (DCGAN's "project and reshape");
   class -> learned `embed_dim`(= 50)-d embedding -> fully connected to 16 -> reshaped to 4x4x1; concatenated:
   4x4x1025; then 5x5 stride-2 transposed convolutions, BatchNorm + ReLU, halving the filters (512, 256, 128 at
   64 px), and a last 5x5 stride-2 transposed convolution to 3 channels with tanh (64 px: 4 -> 8 -> 16 -> 32 -> 64).
D: conditioned on the label the same way: class -> `embed_dim`-d embedding -> fully connected to R*R -> one extra
   input channel beside the RGB image; 5x5 stride-2 convolutions with LeakyReLU 0.2 (BatchNorm from the second on),
   doubling the filters from d_channels (64, 128, 256, 512 at 64 px) down to 4x4, then a linear layer to one logit.
Transposed convolutions use padding 2 and output padding 1 (TensorFlow's 'SAME': exactly 2x); convolutions padding 2.
"""

from __future__ import annotations

import math

import torch
from torch import nn


def g_widths(resolution: int, g_channels: int) -> list[int]:
    """Channels at 4, 8, ..., resolution/2 px: g_channels halved per doubling."""
    k = int(math.log2(resolution)) - 2
    return [max(g_channels // 2 ** i, 1) for i in range(k)]


def d_widths(resolution: int, d_channels: int) -> list[int]:
    """Channels after each stride-2 conv (resolution/2, ..., 4 px): d_channels doubled per halving."""
    k = int(math.log2(resolution)) - 2
    return [d_channels * 2 ** i for i in range(k)]


class LabelMap(nn.Module):
    """class index -> embedding -> fully connected -> one (size x size) feature map."""

    def __init__(self, n_classes: int, embed_dim: int, size: int):
        super().__init__()
        self.size = size
        self.embed = nn.Embedding(n_classes, embed_dim)
        self.fc = nn.Linear(embed_dim, size * size)

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        return self.fc(self.embed(y)).view(-1, 1, self.size, self.size)


class Generator(nn.Module):
    def __init__(self, resolution: int, *, z_dim: int, g_channels: int, embed_dim: int, n_classes: int,
                 kernel_size: int = 5, bn_eps: float = 1e-5):
        super().__init__()
        self.z_dim, self.resolution = z_dim, resolution
        ch = g_widths(resolution, g_channels)
        p = kernel_size // 2
        self.fc = nn.Linear(z_dim, ch[0] * 16, bias=False)  # BatchNorm follows: its shift is the bias
        self.fc_bn = nn.BatchNorm2d(ch[0], eps=bn_eps)
        self.label = LabelMap(n_classes, embed_dim, 4)
        layers: list[nn.Module] = []
        cin = ch[0] + 1  # 4x4x1025 at the paper's widths
        for cout in ch[1:]:
            layers += [nn.ConvTranspose2d(cin, cout, kernel_size, 2, p, output_padding=1, bias=False),
                       nn.BatchNorm2d(cout, eps=bn_eps), nn.ReLU(True)]
            cin = cout
        layers += [nn.ConvTranspose2d(cin, 3, kernel_size, 2, p, output_padding=1), nn.Tanh()]
        self.net = nn.Sequential(*layers)
        self.c0 = ch[0]

    def forward(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if z.ndim != 2 or z.shape[1] != self.z_dim:
            raise ValueError(f"cGAN generator expects z of shape (n, {self.z_dim}), got {tuple(z.shape)}")
        x = torch.relu(self.fc_bn(self.fc(z).view(-1, self.c0, 4, 4)))
        return self.net(torch.cat([x, self.label(y)], dim=1))


class Discriminator(nn.Module):
    def __init__(self, resolution: int, *, d_channels: int, embed_dim: int, n_classes: int, kernel_size: int = 5,
                 bn_eps: float = 1e-5):
        super().__init__()
        self.resolution = resolution
        self.label = LabelMap(n_classes, embed_dim, resolution)
        ch = d_widths(resolution, d_channels)
        p = kernel_size // 2
        layers: list[nn.Module] = []
        cin = 4  # RGB + the label map
        for i, cout in enumerate(ch):
            layers.append(nn.Conv2d(cin, cout, kernel_size, 2, p, bias=i == 0))
            if i > 0:
                layers.append(nn.BatchNorm2d(cout, eps=bn_eps))
            layers.append(nn.LeakyReLU(0.2, True))
            cin = cout
        self.net = nn.Sequential(*layers)
        self.out = nn.Linear(ch[-1] * 16, 1)

    def forward(self, img: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        r = self.resolution
        if img.ndim != 4 or img.shape[1:] != (3, r, r):
            raise ValueError(f"cGAN discriminator expects images (n, 3, {r}, {r}), got {tuple(img.shape)}")
        x = self.net(torch.cat([img, self.label(y).to(img.dtype)], dim=1))
        return self.out(x.flatten(1))
