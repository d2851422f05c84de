"""StyleGAN (Karras, Laine & Aila, "A Style-Based Generator Architecture for GANs", CVPR 2019) networks.

Written from the paper and NVlabs/stylegan `training/networks_stylegan.py` (G_style / G_mapping / G_synthesis /
D_basic, the FFHQ configuration of train.py); the trainable parameters match it tensor by tensor, so the counts
equal the official printout at 1024 px (README: G 26,219,627; D 23,087,249). Built from ProGAN's pieces
(`fewgan.models.progan.nets`: equalised-lr layers, pixel norm, minibatch stddev, the growth-state buffers) where
the StyleGAN code builds on ProGAN's.

- Mapping (G_mapping): pixel norm of z, 8 dense layers 512 -> 512 with leaky ReLU 0.2, equalised lr with
  lr multiplier 0.01 (weights N(0, 1/lrmul^2), runtime scale sqrt(2)/sqrt(fan_in) * lrmul, bias * lrmul).
- Synthesis (G_synthesis): a learned 4x4 constant (ones); per layer (2 per resolution, 18 at 1024 px) the epilogue
  noise (per-pixel N(0, 1) image times a learned per-channel weight, init 0) -> bias -> leaky ReLU -> instance norm
  -> AdaIN style (dense w -> 2C, gain 1: x * (y_s + 1) + y_b); up-blocks: nearest x2 -> conv3x3 -> blur [1,2,1]
  (the reference's fused transposed conv at >= 128 px is the same maths) -> epilogue -> conv3x3 -> epilogue;
  ToRGB 1x1 (gain 1) per resolution for progressive growing.
- D (D_basic): ProGAN's discriminator with a [1,2,1] blur before each down-sampling conv: fromRGB 1x1 + lrelu;
  blocks conv3x3 -> lrelu -> blur -> conv3x3 -> 2x2 average (the fused strided conv) -> bias -> lrelu; at 4x4
  minibatch stddev (group 4) -> conv3x3 -> dense -> dense to 1.
- Growth: the networks run at the current resolution 2**level; during a fade the new ToRGB / fromRGB output is
  blended with the previous level's (the `recursive` structure; lod = log2(R) - level + 1 - alpha).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from fewgan.models.progan.nets import (SQRT2, EqualizedConv2d, EqualizedLinear, MinibatchStddev, _GrowthState,
                                       downsample, lrelu, nf, pixel_norm, upsample)

BLUR_FILTER = (1.0, 2.0, 1.0)  # networks_stylegan.py blur_filter=[1,2,1], normalised
INSTANCE_NORM_EPS = 1e-8       # networks_stylegan.py instance_norm epsilon=1e-8


def blur2d(x: torch.Tensor) -> torch.Tensor:
    """[1,2,1] x [1,2,1] / 16 depthwise filter, zero padding (SAME) (networks_stylegan.py _blur2d)."""
    f = torch.tensor(BLUR_FILTER, dtype=x.dtype, device=x.device)
    f = torch.outer(f, f)
    f = f / f.sum()
    c = x.shape[1]
    return F.conv2d(x, f[None, None].expand(c, 1, 3, 3), padding=1, groups=c)


def instance_norm(x: torch.Tensor, eps: float = INSTANCE_NORM_EPS) -> torch.Tensor:
    x = x - x.mean(dim=[2, 3], keepdim=True)
    return x * (x.square().mean(dim=[2, 3], keepdim=True) + eps).rsqrt()


class MappedLinear(nn.Module):
    """Dense layer with equalised lr and a learning-rate multiplier (networks_stylegan.py get_weight/apply_bias)."""

    def __init__(self, fin: int, fout: int, gain: float = SQRT2, lrmul: float = 1.0):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(fout, fin) / lrmul)  # init_std = 1 / lrmul
        self.bias = nn.Parameter(torch.zeros(fout))
        self.weight_scale = gain / math.sqrt(fin) * lrmul          # runtime_coef = he_std * lrmul
        self.lrmul = lrmul

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight * self.weight_scale, self.bias * self.lrmul)


class MappingNetwork(nn.Module):
    def __init__(self, latent_size: int, dlatent_size: int, num_layers: int, lrmul: float, eps: float):
        super().__init__()
        self.latent_size, self.eps = latent_size, eps
        feats = [latent_size] + [dlatent_size] * num_layers
        self.layers = nn.ModuleList(MappedLinear(feats[i], feats[i + 1], lrmul=lrmul) for i in range(num_layers))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        if z.ndim != 2 or z.shape[1] != self.latent_size:
            raise ValueError(f"StyleGAN mapping expects z of shape (n, {self.latent_size}), got {tuple(z.shape)}")
        x = pixel_norm(z, self.eps)
        for layer in self.layers:
            x = lrelu(layer(x))
        return x


class LayerEpilogue(nn.Module):
    """Noise -> bias -> leaky ReLU -> instance norm -> AdaIN style (networks_stylegan.py layer_epilogue)."""

    def __init__(self, channels: int, dlatent_size: int, resolution: int):
        super().__init__()
        self.resolution = resolution
        self.noise_weight = nn.Parameter(torch.zeros(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.style = EqualizedLinear(dlatent_size, channels * 2, gain=1.0)
        # the reference's non-trainable noise%d variables (used when randomize_noise=False)
        self.register_buffer("noise_const", torch.randn(1, 1, resolution, resolution))

    def forward(self, x: torch.Tensor, w: torch.Tensor, noise_mode: str) -> torch.Tensor:
        if noise_mode == "random":
            noise = torch.randn(x.shape[0], 1, x.shape[2], x.shape[3], device=x.device, dtype=x.dtype)
        elif noise_mode == "const":
            noise = self.noise_const.to(x.dtype)
        elif noise_mode == "none":
            noise = None
        else:
            raise ValueError(f"noise_mode must be 'random', 'const' or 'none', got {noise_mode!r}")
        if noise is not None:
            x = x + noise * self.noise_weight[None, :, None, None]
        x = instance_norm(lrelu(x + self.bias[None, :, None, None]))
        s = self.style(w).view(w.shape[0], 2, -1, 1, 1)
        return x * (s[:, 0] + 1) + s[:, 1]


class SynthesisBlock(nn.Module):
    """conv0_up (nearest x2, conv3x3, blur) and conv1 at resolution 2**res (res >= 3)."""

    def __init__(self, cin: int, cout: int, dlatent_size: int, resolution: int):
        super().__init__()
        self.conv0 = EqualizedConv2d(cin, cout, 3, bias=False)
        self.epi0 = LayerEpilogue(cout, dlatent_size, resolution)
        self.conv1 = EqualizedConv2d(cout, cout, 3, bias=False)
        self.epi1 = LayerEpilogue(cout, dlatent_size, resolution)

    def forward(self, x: torch.Tensor, w0: torch.Tensor, w1: torch.Tensor, noise_mode: str) -> torch.Tensor:
        x = self.epi0(blur2d(self.conv0(upsample(x))), w0, noise_mode)
        return self.epi1(self.conv1(x), w1, noise_mode)


class Generator(_GrowthState):
    """Mapping + synthesis with the growth state; forward(z) or forward(ws=...) returns images at 2**level."""

    def __init__(self, resolution: int, *, latent_size: int, dlatent_size: int, mapping_layers: int,
                 mapping_lrmul: float, fmap_base: int, fmap_decay: float, fmap_max: int, dlatent_avg_beta: float,
                 pixelnorm_epsilon: float, level: int, alpha: float = 1.0):
        super().__init__()
        L = int(math.log2(resolution))
        self._init_growth(L, level, alpha)
        self.latent_size, self.dlatent_size = latent_size, dlatent_size
        self.num_ws = 2 * L - 2  # networks_stylegan.py num_layers = resolution_log2 * 2 - 2
        self.dlatent_avg_beta = dlatent_avg_beta
        ch = lambda s: nf(s, fmap_base, fmap_decay, fmap_max)  # noqa: E731
        self.mapping = MappingNetwork(latent_size, dlatent_size, mapping_layers, mapping_lrmul, pixelnorm_epsilon)
        self.const = nn.Parameter(torch.ones(1, ch(1), 4, 4))
        self.epi4_0 = LayerEpilogue(ch(1), dlatent_size, 4)
        self.conv4 = EqualizedConv2d(ch(1), ch(1), 3, bias=False)
        self.epi4_1 = LayerEpilogue(ch(1), dlatent_size, 4)
        self.blocks = nn.ModuleList(SynthesisBlock(ch(r - 2), ch(r - 1), dlatent_size, 2 ** r) for r in range(3, L + 1))
        self.to_rgb = nn.ModuleList(EqualizedConv2d(ch(r - 1), 3, 1, gain=1.0) for r in range(2, L + 1))
        self.register_buffer("dlatent_avg", torch.zeros(dlatent_size))

    def current_layers(self) -> int:
        """Style inputs in use at the current level (G_style cur_layers = num_layers - 2 floor(lod))."""
        return 2 * self.growth()[0] - 2

    def map(self, z: torch.Tensor, update_avg: bool = True) -> torch.Tensor:
        """z -> ws (n, num_ws, dlatent), tracking dlatent_avg in training mode (G_style DlatentAvg). In float32
        even under bf16 autocast (the running average and the truncation lerp need it)."""
        with torch.autocast(device_type=z.device.type, enabled=False):
            w = self.mapping(z.float())
        if update_avg and self.training:
            with torch.no_grad():
                self.dlatent_avg.copy_(w.detach().mean(dim=0).lerp(self.dlatent_avg, self.dlatent_avg_beta))
        return w.unsqueeze(1).repeat(1, self.num_ws, 1)

    def forward(self, z: torch.Tensor | None = None, *, ws: torch.Tensor | None = None, noise_mode: str = "random",
                style_mixing_prob: float = 0.0, truncation_psi: float = 1.0, truncation_cutoff: int | None = None,
                return_ws: bool = False):
        if ws is None:
            if z is None:
                raise ValueError("StyleGAN generator needs z or ws")
            ws = self.map(z)
            if style_mixing_prob > 0:
                # G_style StyleMix: with probability p, layers >= cutoff ~ U{1..cur_layers-1} take a second w.
                # Both draws are made every time, so RNG use does not depend on the outcome.
                cur = self.current_layers()
                cutoff = int(torch.randint(1, cur, ()).item())
                use = bool((torch.rand(()) < style_mixing_prob).item())
                ws2 = self.map(torch.randn_like(z), update_avg=False)
                if use:
                    ws = torch.cat([ws[:, :cutoff], ws2[:, cutoff:]], dim=1)
            if truncation_psi != 1.0:  # G_style Truncation: layers < cutoff lerp towards dlatent_avg
                cut = self.num_ws if truncation_cutoff is None else truncation_cutoff
                ws = torch.cat([self.dlatent_avg.lerp(ws[:, :cut], truncation_psi), ws[:, cut:]], dim=1)
        if ws.ndim != 3 or ws.shape[1:] != (self.num_ws, self.dlatent_size):
            raise ValueError(f"StyleGAN synthesis expects ws (n, {self.num_ws}, {self.dlatent_size}), got {tuple(ws.shape)}")
        level, alpha = self.growth()
        x = self.epi4_0(self.const.expand(ws.shape[0], -1, -1, -1), ws[:, 0], noise_mode)
        x = self.epi4_1(self.conv4(x), ws[:, 1], noise_mode)
        prev = x
        for r in range(3, level + 1):
            prev = x
            x = self.blocks[r - 3](x, ws[:, 2 * r - 4], ws[:, 2 * r - 3], noise_mode)
        img = self.to_rgb[level - 2](x)
        if alpha < 1.0:  # fade-in: lerp(upscale(ToRGB_prev), ToRGB_new, alpha)
            img = torch.lerp(upsample(self.to_rgb[level - 3](prev)), img, alpha)
        return (img, ws) if return_ws else img


class DBlock(nn.Module):
    """conv3x3 -> lrelu -> blur -> conv3x3 -> 2x2 average -> bias -> lrelu (D_basic block, res >= 3). The conv's bias
    is added before the average: identical, as averaging preserves a constant."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv0 = EqualizedConv2d(cin, cin, 3)
        self.conv1 = EqualizedConv2d(cin, cout, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return lrelu(downsample(self.conv1(blur2d(lrelu(self.conv0(x))))))


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
        level, alpha = self.growth()
        r = 2 ** level
        if img.ndim != 4 or tuple(img.shape[1:]) != (3, r, r):
            raise ValueError(f"StyleGAN discriminator at level {level} expects images (n, 3, {r}, {r}), "
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
