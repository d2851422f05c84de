"""Projected GAN networks, written from the paper and the official code (autonomousvision/projected-gan,
`pg_modules/networks_fastgan.py`, `blocks.py`, `projector.py`, `discriminator.py`; facts checked there).

* **Generator** (`Generator`): the FastGAN generator as Projected GAN modifies it. `fastgan_lite` (the paper's
  config) uses one conv per up-block; `fastgan` uses FastGAN's two-conv blocks with noise injection. Differences
  from fewgan's own FastGAN generator, which is why it is not reused: z is projected onto the hypersphere
  (second-moment normalisation) before the first layer, there is no auxiliary 128-px output and no tanh, the
  3x3 output conv has a bias, and weights keep PyTorch's default initialisation (no N(0, 0.02) init).
  Layer widths depend on the spatial size only (`G_MULT` x ngf). Resolutions: the official synthesis builds
  the 256-px ladder at every resolution (at 128 px its feat_256/se_256 are built but unused) and fails at
  64 px; here the ladder stops at the image size, so nothing unused is built and 64 px works (SLE 4 -> 64).
  At 256 px and above the parameter counts equal the official ones.
* **Projection** (`Projection`, frozen, random): cross-channel mixing (CCM, 1x1 convs with bias to
  cout x [1, 2, 4, 8] with `expand`) and cross-scale mixing (CSM: top-down, each level = 1x1 conv of the
  bilinear x2 upsampled (align_corners=True) sum of the level below's output and this level's CCM output;
  channels halve with `expand` except at the top level). PyTorch's default conv initialisation, drawn from the
  global RNG when the model is built (as the official code does after seeding), never trained.
* **Discriminators** (`MultiScaleD`): one per feature level. Each is DownBlocks (4x4 stride-2 spectral-norm
  conv with bias, BatchNorm, LeakyReLU 0.2) from the level's *nominal* size (256-px input: 64/32/16/8, doubled
  by CSM) down to 8, then a 4x4 spectral-norm conv without bias to one logit map. Widths per nominal size from
  the official `channel_dict` (or all `ndf` when given, the official switch), the first block's input width
  being the level's channels. The nominal sizes are fixed by 256 whatever the image size (official projector:
  "the best results are achieved by fixing this to 256"), so with 224-px inputs (images below 224 px are
  resized to it) the maps are 112/56/28/14 and every logit map is 4x4; at 256 px they are 5x5.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

SUPPORTED_RESOLUTIONS = (64, 128, 256, 512, 1024)

# networks_fastgan.py nfc_multi: generator width at each spatial size, x ngf (2 and 4 both 16: the init layer)
G_MULT = {4: 16, 8: 8, 16: 4, 32: 2, 64: 2, 128: 1, 256: 0.5, 512: 0.25, 1024: 0.125}
# networks_fastgan.py se_64/128/256/512: skip-layer excitation target size -> source size
G_SLE = {64: 4, 128: 8, 256: 16, 512: 32}
# discriminator.py SingleDisc channel_dict: discriminator width at each nominal spatial size
D_CHANNELS = {4: 512, 8: 512, 16: 256, 32: 128, 64: 64, 128: 64, 256: 32, 512: 16, 1024: 8}
D_END = 8          # discriminator.py MultiScaleD: end_sz=8 (then a 4x4 valid conv)
LRELU = 0.2        # blocks.py DownBlock: LeakyReLU(0.2)
NOMINAL_RES = 256  # projector.py _make_projector: im_res fixed to 256 for the discriminators' layer plan
EPS_Z = 1e-8       # networks_fastgan.py normalize_second_moment eps


def sn(module: nn.Module) -> nn.Module:
    """Spectral normalisation (blocks.py conv2d / convTranspose2d), one power iteration per training forward."""
    return spectral_norm(module)


def normalize_second_moment(z: torch.Tensor, eps: float = EPS_Z) -> torch.Tensor:
    """z / sqrt(mean(z^2) + eps) over the latent dimension: z on the hypersphere of radius sqrt(z_dim)."""
    return z * (z.square().mean(dim=1, keepdim=True) + eps).rsqrt()


class GLU(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.glu(x, dim=1)


class NoiseInjection(nn.Module):
    """x + w * N(0, 1) (one value per pixel, shared over channels), w learned from 0 (blocks.py NoiseInjection)."""

    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, _, h, w = x.shape
        return x + self.weight * torch.randn(n, 1, h, w, device=x.device, dtype=x.dtype)


def up_lite(cin: int, cout: int) -> nn.Sequential:
    """blocks.py UpBlockSmall: nearest x2 -> SN conv3x3 (2*cout, no bias) -> BN -> GLU."""
    return nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), sn(nn.Conv2d(cin, 2 * cout, 3, 1, 1, bias=False)),
                         nn.BatchNorm2d(2 * cout), GLU())


def up_big(cin: int, cout: int) -> nn.Sequential:
    """blocks.py UpBlockBig: nearest x2 -> conv -> noise -> BN -> GLU -> conv -> noise -> BN -> GLU."""
    return nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), sn(nn.Conv2d(cin, 2 * cout, 3, 1, 1, bias=False)),
                         NoiseInjection(), nn.BatchNorm2d(2 * cout), GLU(),
                         sn(nn.Conv2d(cout, 2 * cout, 3, 1, 1, bias=False)), NoiseInjection(),
                         nn.BatchNorm2d(2 * cout), GLU())


class SLE(nn.Module):
    """blocks.py SEBlock: high * sigmoid(conv1x1(swish(conv4x4_valid(adaptive_avgpool_4(low)))))."""

    def __init__(self, c_low: int, c_high: int):
        super().__init__()
        self.main = nn.Sequential(nn.AdaptiveAvgPool2d(4), sn(nn.Conv2d(c_low, c_high, 4, 1, 0, bias=False)), nn.SiLU(),
                                  sn(nn.Conv2d(c_high, c_high, 1, 1, 0, bias=False)), nn.Sigmoid())

    def forward(self, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
        return high * self.main(low)


class Generator(nn.Module):
    """z (N, z_dim) -> image (N, 3, R, R), not squashed (no tanh, as the official synthesis)."""

    def __init__(self, resolution: int, ngf: int = 128, z_dim: int = 256, lite: bool = True):
        super().__init__()
        if int(resolution) not in SUPPORTED_RESOLUTIONS:
            raise ValueError(f"Projected GAN resolution {resolution}: unsupported; use one of {SUPPORTED_RESOLUTIONS}")
        self.resolution, self.z_dim, self.lite = int(resolution), int(z_dim), bool(lite)
        ch = {s: int(m * ngf) for s, m in G_MULT.items()}
        # blocks.py InitLayer: 4x4 transposed SN conv z -> 2*C4 (no bias), BN, GLU
        self.init = nn.Sequential(sn(nn.ConvTranspose2d(self.z_dim, 2 * ch[4], 4, 1, 0, bias=False)),
                                  nn.BatchNorm2d(2 * ch[4]), GLU())
        self.sizes = [2 ** i for i in range(3, self.resolution.bit_length())]  # 8 .. R
        block = up_lite if self.lite else up_big
        self.up = nn.ModuleDict({str(s): block(ch[s // 2], ch[s]) for s in self.sizes})
        self.sle = nn.ModuleDict({str(s): SLE(ch[src], ch[s]) for s, src in G_SLE.items() if s <= self.resolution})
        # networks_fastgan.py to_big: SN conv3x3 with bias to RGB
        self.to_rgb = sn(nn.Conv2d(ch[self.resolution], 3, 3, 1, 1, bias=True))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = self.init(normalize_second_moment(z).reshape(z.shape[0], -1, 1, 1))
        feats = {4: x}
        for s in self.sizes:
            x = self.up[str(s)](x)
            if str(s) in self.sle:
                x = self.sle[str(s)](feats[G_SLE[s]], x)
            if s <= 32:
                feats[s] = x  # the SLE sources
        return self.to_rgb(x)


class FusionBlock(nn.Module):
    """blocks.py FeatureFusionBlock as CSM uses it: (x [+ skip]) -> bilinear x2 (align_corners=True) -> 1x1 conv."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.out_conv = nn.Conv2d(cin, cout, 1, 1, 0, bias=True)

    def forward(self, x: torch.Tensor, skip: torch.Tensor | None = None) -> torch.Tensor:
        if skip is not None:
            x = x + skip
        x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=True)
        return self.out_conv(x)


class Projection(nn.Module):
    """Frozen random CCM (+ CSM for proj_type 2) on the four feature levels; proj_type 0 passes them through.

    `channels` / `resolutions`: each output level's channels and nominal size (official F_RandomProj.CHANNELS /
    RESOLUTIONS), which size the discriminators."""

    def __init__(self, in_channels=(24, 40, 112, 320), cout: int = 64, expand: bool = True, proj_type: int = 2):
        super().__init__()
        if proj_type not in (0, 1, 2):
            raise ValueError(f"Projected GAN proj_type {proj_type}: use 0 (none), 1 (CCM) or 2 (CCM + CSM)")
        self.proj_type = int(proj_type)
        n = NOMINAL_RES
        self.resolutions = [n // 4, n // 8, n // 16, n // 32]  # projector.py: the backbone's strides 4..32
        self.channels = list(in_channels)
        if proj_type >= 1:
            ccm = [cout, 2 * cout, 4 * cout, 8 * cout] if expand else [cout] * 4
            self.ccm = nn.ModuleList(nn.Conv2d(i, o, 1, 1, 0, bias=True) for i, o in zip(in_channels, ccm))
            self.channels = ccm
        if proj_type == 2:
            # level 3 (lowest resolution) first; every level but the top one halves its channels with expand
            outs = [c // 2 if (expand and i > 0) else c for i, c in enumerate(ccm)]
            self.csm = nn.ModuleList(FusionBlock(c, o) for c, o in zip(ccm, outs))
            self.channels = outs
            self.resolutions = [2 * r for r in self.resolutions]  # CSM upsamples x2
        self.requires_grad_(False)

    def forward(self, levels: list[torch.Tensor]) -> list[torch.Tensor]:
        if self.proj_type == 0:
            return list(levels)
        mixed = [conv(x) for conv, x in zip(self.ccm, levels)]
        if self.proj_type == 1:
            return mixed
        out = [None] * 4
        out[3] = self.csm[3](mixed[3])
        for i in (2, 1, 0):
            out[i] = self.csm[i](out[i + 1], mixed[i])
        return out


def down_block(cin: int, cout: int) -> nn.Sequential:
    """blocks.py DownBlock: SN conv4x4 stride 2 (with bias) -> BatchNorm -> LeakyReLU(0.2)."""
    return nn.Sequential(sn(nn.Conv2d(cin, cout, 4, 2, 1)), nn.BatchNorm2d(cout), nn.LeakyReLU(LRELU))


class SingleDisc(nn.Module):
    """discriminator.py SingleDisc (unconditional, not separable, not patch): DownBlocks from `start` to 8, then
    a 4x4 valid SN conv (no bias) to one channel."""

    def __init__(self, cin: int, start: int, ndf: int | None = None, end: int = D_END):
        super().__init__()
        nfc = dict(D_CHANNELS) if ndf is None else {k: int(ndf) for k in D_CHANNELS}
        nfc[start] = cin
        layers, s = [], start
        while s > end:
            layers.append(down_block(nfc[s], nfc[s // 2]))
            s //= 2
        layers.append(sn(nn.Conv2d(nfc[end], 1, 4, 1, 0, bias=False)))
        self.main = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.main(x)


class ProjectedDiscriminator(nn.Module):
    """The trainable part `discs` (one SingleDisc per level, the first `num_discs` levels) behind the frozen
    `projection`. forward(levels) takes the feature network's four maps and returns the logit maps of every
    discriminator, flattened and concatenated per image (official MultiScaleD)."""

    def __init__(self, in_channels=(24, 40, 112, 320), cout: int = 64, expand: bool = True, proj_type: int = 2,
                 num_discs: int = 4, ndf: int | None = None):
        super().__init__()
        if not 1 <= num_discs <= 4:
            raise ValueError(f"Projected GAN num_discs {num_discs}: use 1..4")
        self.projection = Projection(in_channels, cout, expand, proj_type)
        p = self.projection
        self.discs = nn.ModuleList(SingleDisc(c, r, ndf) for c, r in zip(p.channels[:num_discs], p.resolutions[:num_discs]))

    def trainable_parameters(self):
        return self.discs.parameters()

    def forward(self, levels: list[torch.Tensor]) -> torch.Tensor:
        feats = self.projection(levels)
        n = levels[0].shape[0]
        return torch.cat([d(f).reshape(n, -1) for d, f in zip(self.discs, feats)], dim=1)
