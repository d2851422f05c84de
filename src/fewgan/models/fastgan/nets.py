"""FastGAN networks (Liu et al., ICLR 2021): generator with skip-layer excitation (SLE) and the
self-supervised discriminator with three reconstruction decoders.

Written from the paper and REFERENCE.md section 1 (facts checked against the official code as it
survives in hugobb/FastGAN-pytorch `models.py`); the losses live in `fewgan.models.fastgan.model`.

Resolutions 64, 128, 256, 512 and 1024 are supported (the official code builds 256, 512, 1024 and
crashes at 128). Layer widths depend on the *spatial size* of a feature map, never on the image
size, so the layers a 256-px model shares with a 1024-px one have the official widths, and the
parameter counts at 256/512/1024 equal the official ones. How the small sizes are handled:

* Generator: the ladder 4 -> 8 -> ... -> R simply stops at R. SLE pairs (4->64, 8->128, 16->256,
  32->512) exist when both ends do. The auxiliary low-resolution output (official: 1x1 conv on the
  128-px feature) is taken from the feature at min(128, R); at R <= 128 it therefore shares the
  last feature map with the full-resolution 3x3 output head.
* Discriminator, big path: the official stem brings the image to a 256 px feature map (stride-1
  conv at 256; one / two stride-2 convs at 512 / 1024). Below 256 the path starts at the image
  size (stride-1 conv3x3 stem with the width of that spatial size) and the residual down-blocks
  run from there to 8 px; the D-side SLE pairs (256->32, 128->16, 64->8) exist when both ends do.
* Discriminator, small path: takes the image resized to min(128, R). At 128 it is the official
  stack (conv4 s2 + 3 down-blocks to 8 px); at 64 the first stride-2 conv lands directly on the
  32-px width, so the path still ends at 8 px with the official 4*ndf channels and a 5x5 logit map.
* Decoders: the two whole-image decoders output min(128, R) px (official: 128), the quadrant decoder
  min(128, R/2) px (official: 128), so a reconstruction target is never upsampled: at 256 px the
  quadrant target is the 128-px crop itself, as in the official code; at 128 / 64 px it is the
  64 / 32-px crop (one / two nearest-x2 up-blocks fewer than the official decoder).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

SUPPORTED_RESOLUTIONS = (64, 128, 256, 512, 1024)

# Width multipliers per spatial size, x ngf / x ndf (REFERENCE.md section 1; official models.py nfc_multi).
G_MULT = {4: 16, 8: 8, 16: 4, 32: 2, 64: 2, 128: 1, 256: 0.5, 512: 0.25, 1024: 0.125}
D_MULT = {4: 16, 8: 16, 16: 8, 32: 4, 64: 2, 128: 1, 256: 0.5, 512: 0.25, 1024: 0.125}
# Blocks with two convs + noise injection (official: feat_8/32/128/512); the others are plain.
G_COMP_SIZES = {8, 32, 128, 512}
# Generator SLE pairs low -> high (paper Fig. 3; official se_64/128/256/512).
G_SLE = {64: 4, 128: 8, 256: 16, 512: 32}
# Discriminator SLE pairs high-res source -> 8x smaller target (official se_2_16, se_4_32, se_8_64).
D_SLE = {32: 256, 16: 128, 8: 64}
LRELU = 0.2  # LeakyReLU slope in every D block (official models.py)
INIT_STD = 0.02  # conv weights ~ N(0, 0.02), BN weight ~ N(1, 0.02), BN bias 0 (official weights_init)


def _sn(module: nn.Module) -> nn.Module:
    """Official init (N(0, 0.02), bias-free) then spectral normalisation (every conv in FastGAN)."""
    nn.init.normal_(module.weight, 0.0, INIT_STD)
    return spectral_norm(module)


def conv(cin: int, cout: int, k: int, s: int = 1, p: int = 0) -> nn.Module:
    return _sn(nn.Conv2d(cin, cout, k, s, p, bias=False))


def bn(c: int) -> nn.BatchNorm2d:
    m = nn.BatchNorm2d(c)
    nn.init.normal_(m.weight, 1.0, INIT_STD)
    nn.init.zeros_(m.bias)
    return m


class GLU(nn.Module):
    """Gated linear unit over channels: first half * sigmoid(second half)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.glu(x, dim=1)


class NoiseInjection(nn.Module):
    """feat + w * N(0, 1), one noise value per pixel shared over channels; w learned, init 0."""

    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, _, h, w = x.shape
        noise = torch.randn(n, 1, h, w, device=x.device, dtype=x.dtype)
        return x + self.weight * noise


class SLE(nn.Module):
    """Skip-layer excitation: x_high * sigmoid(conv1x1(swish(conv4x4_valid(avgpool_4(x_low)))))."""

    def __init__(self, c_low: int, c_high: int):
        super().__init__()
        self.main = nn.Sequential(nn.AdaptiveAvgPool2d(4), conv(c_low, c_high, 4), nn.SiLU(),
                                  conv(c_high, c_high, 1), nn.Sigmoid())

    def forward(self, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
        return high * self.main(low)


def up_plain(cin: int, cout: int) -> nn.Sequential:
    """nearest x2 -> conv3x3 (-> 2*cout) -> BN -> GLU."""
    return nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), conv(cin, 2 * cout, 3, 1, 1),
                         bn(2 * cout), GLU())


def up_comp(cin: int, cout: int) -> nn.Sequential:
    """nearest x2 -> conv3x3 -> noise -> BN -> GLU -> conv3x3 -> noise -> BN -> GLU."""
    return nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), conv(cin, 2 * cout, 3, 1, 1),
                         NoiseInjection(), bn(2 * cout), GLU(), conv(cout, 2 * cout, 3, 1, 1),
                         NoiseInjection(), bn(2 * cout), GLU())


def _check_resolution(resolution: int) -> int:
    r = int(resolution)
    if r not in SUPPORTED_RESOLUTIONS:
        raise ValueError(f"FastGAN resolution {resolution}: unsupported; use one of {SUPPORTED_RESOLUTIONS} "
                         "(datasets.<name>.resolution in params)")
    return r


class Generator(nn.Module):
    """z (N, nz) -> image (N, 3, R, R); `forward(z, with_small=True)` also returns the auxiliary
    min(128, R)-px image that the discriminator's small path sees for fakes."""

    def __init__(self, resolution: int, ngf: int = 64, nz: int = 256, tanh: bool = True):
        super().__init__()
        self.resolution = _check_resolution(resolution)
        self.small_size = min(128, self.resolution)
        self.nz = int(nz)
        self.tanh = bool(tanh)
        ch = {s: int(m * ngf) for s, m in G_MULT.items()}
        # init: 4x4 transposed conv nz -> 2*C4, BN, GLU (official InitLayer)
        self.init = nn.Sequential(_sn(nn.ConvTranspose2d(nz, 2 * ch[4], 4, 1, 0, bias=False)), bn(2 * ch[4]), GLU())
        self.sizes = [2 ** i for i in range(3, self.resolution.bit_length())]  # 8 .. R
        self.up = nn.ModuleDict()
        self.sle = nn.ModuleDict()
        for s in self.sizes:
            block = up_comp if s in G_COMP_SIZES else up_plain
            self.up[str(s)] = block(ch[s // 2], ch[s])
            if s in G_SLE:
                self.sle[str(s)] = SLE(ch[G_SLE[s]], ch[s])
        self.to_small = conv(ch[self.small_size], 3, 1)  # official to_128: 1x1 conv on the 128-px feature
        self.to_big = conv(ch[self.resolution], 3, 3, 1, 1)  # official to_big: 3x3 conv at full size

    def forward(self, z: torch.Tensor, with_small: bool = False, style_z: torch.Tensor | None = None):
        """`style_z`: style mixing (FastGAN paper, section 4.4, style/content disentanglement): every skip-layer
        excitation takes its low-resolution source (4..32 px) from `style_z`'s path instead of `z`'s."""
        feats = {4: self.init(z.reshape(z.shape[0], -1, 1, 1))}
        sources = feats if style_z is None else self.sle_sources(style_z)
        x = feats[4]
        for s in self.sizes:
            x = self.up[str(s)](x)
            if s in G_SLE:
                x = self.sle[str(s)](sources[G_SLE[s]], x)
            if s <= 32 or s == self.small_size:
                feats[s] = x  # only the sources of SLE and the small output are kept
        img = self.to_big(x)
        if self.tanh:
            img = torch.tanh(img)
        if not with_small:
            return img
        small = self.to_small(feats[self.small_size])
        if self.tanh:
            small = torch.tanh(small)
        return img, small


    def sle_sources(self, z: torch.Tensor) -> dict[int, torch.Tensor]:
        """The features at 4..32 px of `z` (the sources of the skip-layer excitations; sizes below the first
        excitation's target only, so no excitation is applied on the way)."""
        feats = {4: self.init(z.reshape(z.shape[0], -1, 1, 1))}
        x = feats[4]
        for s in self.sizes:
            if s > max(G_SLE.values()):
                break
            x = self.up[str(s)](x)
            if s in G_SLE:
                x = self.sle[str(s)](feats[G_SLE[s]], x)
            feats[s] = x
        return feats


class DownComp(nn.Module):
    """Residual down-block: (conv4 s2-BN-LReLU-conv3-BN-LReLU + avgpool2-conv1x1-BN-LReLU) / 2."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.main = nn.Sequential(conv(cin, cout, 4, 2, 1), bn(cout), nn.LeakyReLU(LRELU),
                                  conv(cout, cout, 3, 1, 1), bn(cout), nn.LeakyReLU(LRELU))
        self.direct = nn.Sequential(nn.AvgPool2d(2, 2), conv(cin, cout, 1), bn(cout), nn.LeakyReLU(LRELU))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (self.main(x) + self.direct(x)) / 2


def down_plain(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(conv(cin, cout, 4, 2, 1), bn(cout), nn.LeakyReLU(LRELU))


class Decoder(nn.Module):
    """Self-supervision decoder: adaptive-avgpool 8 -> nearest-up blocks -> conv3 -> tanh.

    Widths are fixed by `width` (official: 32, independent of ndf) with G-style multipliers."""

    def __init__(self, cin: int, out_size: int, width: int = 32):
        super().__init__()
        ch = {s: int(m * width) for s, m in G_MULT.items()}
        layers: list[nn.Module] = [nn.AdaptiveAvgPool2d(8)]
        c, s = cin, 8
        while s < out_size:
            s *= 2
            layers.append(up_plain(c, ch[s]))
            c = ch[s]
        layers += [conv(c, 3, 3, 1, 1), nn.Tanh()]
        self.main = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.main(x)


class Discriminator(nn.Module):
    """Two-path discriminator. `forward(big, small)` -> logits (N, 50): the big path's 5x5 map and
    the small path's 5x5 map, flattened per image. With `part` in 0..3 it also returns the three
    reconstructions (whole image from the big path's 8-px feature, whole image from the small path's
    8-px feature, quadrant `part` (0 TL, 1 TR, 2 BL, 3 BR) from the big path's 16-px feature)."""

    def __init__(self, resolution: int, ndf: int = 64, dec_width: int = 32):
        super().__init__()
        self.resolution = _check_resolution(resolution)
        self.small_size = min(128, self.resolution)
        self.rec_size = min(128, self.resolution)
        self.part_size = min(128, self.resolution // 2)
        ch = {s: int(D_MULT[2 * s] * ndf) for s in (8, 16, 32, 64, 128, 256, 512)}  # width at spatial s
        act = lambda: nn.LeakyReLU(LRELU)  # noqa: E731
        # big-path stem -> feature at S0 = min(R, 256)
        self.top = min(self.resolution, 256)
        if self.resolution <= 256:
            stem: list[nn.Module] = [conv(3, ch[self.top], 3, 1, 1), act()]
        else:
            stem, s, c = [], self.resolution, 3
            while s > 256:
                s //= 2
                stem.append(conv(c, ch[s], 4, 2, 1))
                if c != 3:
                    stem.append(bn(ch[s]))
                stem.append(act())
                c = ch[s]
        self.stem = nn.Sequential(*stem)
        self.big_sizes = [2 ** i for i in range(self.top.bit_length() - 2, 2, -1)]  # S0/2 .. 8
        self.down = nn.ModuleDict({str(s): DownComp(ch[2 * s], ch[s]) for s in self.big_sizes})
        self.sle = nn.ModuleDict({str(t): SLE(ch[src], ch[t]) for t, src in D_SLE.items() if src <= self.top})
        self.logits_big = nn.Sequential(conv(ch[8], int(D_MULT[8] * ndf), 1), bn(int(D_MULT[8] * ndf)), act(),
                                        conv(int(D_MULT[8] * ndf), 1, 4))
        cs = {s: int(D_MULT[4 * s] * ndf) for s in (8, 16, 32, 64)}  # small-path width at spatial s
        first = self.small_size // 2
        small: list[nn.Module] = [conv(3, cs[first], 4, 2, 1), act()]
        s = first
        while s > 8:
            small.append(down_plain(cs[s], cs[s // 2]))
            s //= 2
        self.small = nn.Sequential(*small)
        self.logits_small = conv(cs[8], 1, 4)
        self.dec_big = Decoder(ch[8], self.rec_size, dec_width)
        self.dec_part = Decoder(ch[16], self.part_size, dec_width)
        self.dec_small = Decoder(cs[8], self.rec_size, dec_width)

    def forward(self, big: torch.Tensor, small: torch.Tensor, part: int | None = None):
        x = self.stem(big)
        feats = {self.top: x}
        for s in self.big_sizes:
            x = self.down[str(s)](x)
            if str(s) in self.sle:
                x = self.sle[str(s)](feats[D_SLE[s]], x)
            feats[s] = x
        n = big.shape[0]
        logits = torch.cat([self.logits_big(x).reshape(n, -1),
                            self.logits_small(fs := self.small(small)).reshape(n, -1)], dim=1)
        if part is None:
            return logits
        f16 = feats[16]
        h = f16.shape[-1] // 2
        r0, c0 = (part // 2) * h, (part % 2) * h
        rec_big = self.dec_big(x)
        rec_small = self.dec_small(fs)
        rec_part = self.dec_part(f16[:, :, r0:r0 + h, c0:c0 + h])
        return logits, (rec_big, rec_small, rec_part)
