"""ProGAN networks (Karras et al., ICLR 2018; tkarras/progressive_growing_of_gans networks.py G_paper/D_paper).

Written from the paper and the reference's structure, not copied. Both networks hold every layer for
every resolution from the start (as the TF graph does); the growth state (`level` = log2 of the current
resolution, `alpha` = fade-in weight in (0, 1]) lives in buffers, so it travels in state_dicts (snapshots,
resume, the EMA copy). Forward passes run at the current resolution only:

- G: z -> [pixel norm] -> dense to 4x4 (gain sqrt(2)/4) -> conv3x3 -> {nearest x2 -> conv3x3 -> conv3x3} per level,
  leaky ReLU 0.2 and pixel norm after every layer, toRGB = 1x1 conv (gain 1, linear). During a fade the image
  is lerp(upsample(toRGB_prev(x_prev)), toRGB(x), alpha) (networks.py `grow`, recursive structure).
- D: fromRGB = 1x1 conv + leaky ReLU; per level {conv3x3 -> lrelu -> conv3x3 -> 2x2 average pool -> lrelu}; at 4x4: minibatch
  stddev (group 4) -> conv3x3 -> dense -> dense to 1 (gain 1). During a fade the first block's output is
  lerp(fromRGB_prev(avgpool(img)), block(fromRGB(img)), alpha).
- Equalised learning rate: weights ~ N(0, 1), biases 0, multiplied at runtime by gain / sqrt(fan_in)
  (networks.py get_weight with use_wscale=True). The reference's fused up/down-sampling convolutions are the
  same maths as nearest-upsample + conv and conv + box-downsample, used here unfused.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

SQRT2 = math.sqrt(2.0)
LRELU_SLOPE = 0.2  # paper App. A.1: leaky ReLU with leakiness 0.2


def nf(stage: int, fmap_base: int, fmap_decay: float, fmap_max: int) -> int:
    """Feature maps at a stage (networks.py nf): min(int(fmap_base / 2**(stage * decay)), fmap_max)."""
    return min(int(fmap_base / (2.0 ** (stage * fmap_decay))), fmap_max)


def pixel_norm(x: torch.Tensor, eps: float) -> torch.Tensor:
    """Pixelwise feature vector normalisation (paper Sec. 4.2): x / sqrt(mean_c(x^2) + eps)."""
    return x * torch.rsqrt(x.square().mean(dim=1, keepdim=True) + eps)


def lrelu(x: torch.Tensor) -> torch.Tensor:
    return F.leaky_relu(x, LRELU_SLOPE)


def upsample(x: torch.Tensor, factor: int = 2) -> torch.Tensor:
    """Nearest-neighbour upsampling (networks.py upscale2d)."""
    return x if factor == 1 else F.interpolate(x, scale_factor=factor, mode="nearest")


def downsample(x: torch.Tensor, factor: int = 2) -> torch.Tensor:
    """Box-filter downsampling (networks.py downscale2d)."""
    return x if factor == 1 else F.avg_pool2d(x, factor)


class EqualizedConv2d(nn.Module):
    """'Same'-padded conv with equalised learning rate (weight N(0,1) times gain/sqrt(fan_in) at runtime)."""

    def __init__(self, cin: int, cout: int, kernel: int, gain: float = SQRT2, bias: bool = True):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(cout, cin, kernel, kernel))
        self.bias = nn.Parameter(torch.zeros(cout)) if bias else None
        self.scale = gain / math.sqrt(cin * kernel * kernel)
        self.padding = kernel // 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight * self.scale, self.bias, padding=self.padding)


class EqualizedLinear(nn.Module):
    """Dense layer with equalised learning rate."""

    def __init__(self, fin: int, fout: int, gain: float = SQRT2, bias: bool = True):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(fout, fin))
        self.bias = nn.Parameter(torch.zeros(fout)) if bias else None
        self.scale = gain / math.sqrt(fin)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight * self.scale, self.bias)


class MinibatchStddev(nn.Module):
    """Minibatch standard deviation (paper Sec. 3; networks.py minibatch_stddev_layer, one extra feature map).

    Groups are formed like the reference's reshape [G, M, ...]: sample n belongs to group n % M."""

    def __init__(self, group_size: int):
        super().__init__()
        self.group_size = group_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        g = min(self.group_size, n)
        if n % g:
            raise ValueError(f"ProGAN discriminator: batch size {n} is not divisible by mbstd_group_size {g}; use "
                             "a batch size that is a multiple of it (or change mbstd_group_size in "
                             "params/models/progan.yaml)")
        y = x.reshape(g, -1, c, h, w).float()
        y = y - y.mean(dim=0, keepdim=True)
        y = (y.square().mean(dim=0) + 1e-8).sqrt()  # stddev over the group, eps as the reference
        y = y.mean(dim=[1, 2, 3]).reshape(-1, 1, 1, 1).to(x.dtype)  # (M, 1, 1, 1)
        y = y.repeat(g, 1, h, w)  # (N, 1, H, W): tiled over the group, like tf.tile
        return torch.cat([x, y], dim=1)


class _GrowthState(nn.Module):
    """Buffers `level` (log2 of the current resolution, int64) and `alpha` (fade-in weight, float32)."""

    def _init_growth(self, max_level: int, level: int, alpha: float) -> None:
        self.max_level = max_level
        self.register_buffer("level", torch.tensor(level, dtype=torch.int64))
        self.register_buffer("alpha", torch.tensor(alpha, dtype=torch.float32))

    @torch.no_grad()
    def set_growth(self, level: int, alpha: float) -> None:
        if not 2 <= level <= self.max_level:
            raise ValueError(f"growth level {level} outside 2..{self.max_level}")
        if not 0.0 < alpha <= 1.0 or (level == 2 and alpha != 1.0):
            raise ValueError(f"growth alpha {alpha} invalid at level {level}")
        self.level.fill_(level)
        self.alpha.fill_(alpha)

    def growth(self) -> tuple[int, float]:
        return int(self.level), float(self.alpha)


class GBlock(nn.Module):
    """Nearest x2 -> conv3x3 -> lrelu -> PN -> conv3x3 -> lrelu -> PN (networks.py G_paper block, res >= 3)."""

    def __init__(self, cin: int, cout: int, eps: float):
        super().__init__()
        self.conv0 = EqualizedConv2d(cin, cout, 3)
        self.conv1 = EqualizedConv2d(cout, cout, 3)
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = pixel_norm(lrelu(self.conv0(upsample(x))), self.eps)
        return pixel_norm(lrelu(self.conv1(x)), self.eps)


class Generator(_GrowthState):
    def __init__(self, resolution: int, *, latent_size: int, fmap_base: int, fmap_decay: float, fmap_max: int,
                 normalize_latents: bool, pixelnorm_epsilon: float, level: int, alpha: float = 1.0):
        super().__init__()
        L = int(math.log2(resolution))
        self._init_growth(L, level, alpha)
        self.latent_size = latent_size
        self.normalize_latents = normalize_latents
        self.eps = pixelnorm_epsilon
        ch = lambda s: nf(s, fmap_base, fmap_decay, fmap_max)  # noqa: E731
        self.c4 = ch(1)
        # 4x4: dense to nf(1)*16 with gain sqrt(2)/4 ("to match the original Theano implementation"), one bias
        # per feature map after the reshape (apply_bias on [N, C, 4, 4])
        self.dense = EqualizedLinear(latent_size, self.c4 * 16, gain=SQRT2 / 4, bias=False)
        self.dense_bias = nn.Parameter(torch.zeros(self.c4))
        self.conv4 = EqualizedConv2d(self.c4, self.c4, 3)
        self.blocks = nn.ModuleList(GBlock(ch(r - 2), ch(r - 1), self.eps) for r in range(3, L + 1))
        self.to_rgb = nn.ModuleList(EqualizedConv2d(ch(r - 1), 3, 1, gain=1.0) for r in range(2, L + 1))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Images at the current resolution 2**level (linear output, not clipped), shape (n, 3, r, r)."""
        if z.ndim != 2 or z.shape[1] != self.latent_size:
            raise ValueError(f"ProGAN generator expects z of shape (n, {self.latent_size}), got {tuple(z.shape)}")
        level, alpha = self.growth()
        x = pixel_norm(z, self.eps) if self.normalize_latents else z
        x = self.dense(x).view(-1, self.c4, 4, 4) + self.dense_bias.view(1, -1, 1, 1)
        x = pixel_norm(lrelu(x), self.eps)
        x = pixel_norm(lrelu(self.conv4(x)), self.eps)
        prev = x
        for r in range(3, level + 1):
            prev = x
            x = self.blocks[r - 3](x)
        img = self.to_rgb[level - 2](x)
        if alpha < 1.0:  # fade-in: old toRGB upsampled, blended with the new block's image
            img = torch.lerp(upsample(self.to_rgb[level - 3](prev)), img, alpha)
        return img


class DBlock(nn.Module):
    """conv3x3 -> lrelu -> conv3x3 -> 2x2 average pool -> bias -> lrelu (networks.py D_paper block, res >= 3, with
    its default fused_scale=True: `Conv1_down` = conv2d_downscale2d, then bias, then leaky ReLU). The pool comes
    before the activation: the reference's unfused branch (and the paper's Table 2) pool after it, a different
    function. The bias inside EqualizedConv2d commutes with the average pool."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv0 = EqualizedConv2d(cin, cin, 3)
        self.conv1 = EqualizedConv2d(cin, cout, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return lrelu(downsample(self.conv1(lrelu(self.conv0(x)))))


class Discriminator(_GrowthState):
    def __init__(self, resolution: int, *, fmap_base: int, fmap_decay: float, fmap_max: int, mbstd_group_size: int,
                 level: int, alpha: float = 1.0):
        super().__init__()
        L = int(math.log2(resolution))
        self._init_growth(L, level, alpha)
        ch = lambda s: nf(s, fmap_base, fmap_decay, fmap_max)  # noqa: E731
        self.from_rgb = nn.ModuleList(EqualizedConv2d(3, ch(r - 1), 1) for r in range(2, L + 1))
        self.blocks = nn.ModuleList(DBlock(ch(r - 1), ch(r - 2)) for r in range(3, L + 1))
        self.mbstd = MinibatchStddev(mbstd_group_size) if mbstd_group_size > 1 else None
        c4 = ch(1)
        self.conv4 = EqualizedConv2d(c4 + (1 if self.mbstd is not None else 0), c4, 3)
        self.dense0 = EqualizedLinear(c4 * 16, ch(0))
        self.dense1 = EqualizedLinear(ch(0), 1, gain=1.0)

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        """Scores (n, 1) for images at the current resolution 2**level."""
        level, alpha = self.growth()
        r = 2 ** level
        if img.ndim != 4 or tuple(img.shape[1:]) != (3, r, r):
            raise ValueError(f"ProGAN discriminator at level {level} expects images (n, 3, {r}, {r}), "
                             f"got {tuple(img.shape)}")
        x = lrelu(self.from_rgb[level - 2](img))
        if level > 2:
            x = self.blocks[level - 3](x)
            if alpha < 1.0:  # fade-in: the previous fromRGB on the box-downsampled image, blended
                x = torch.lerp(lrelu(self.from_rgb[level - 3](downsample(img))), x, alpha)
            for k in range(level - 1, 2, -1):
                x = self.blocks[k - 3](x)
        if self.mbstd is not None:
            x = self.mbstd(x)
        x = lrelu(self.conv4(x))
        x = lrelu(self.dense0(x.flatten(1)))
        return self.dense1(x)
