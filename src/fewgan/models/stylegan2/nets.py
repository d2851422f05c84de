"""StyleGAN2 networks in plain PyTorch (no custom CUDA ops).

Architecture follows Karras et al., "Analyzing and Improving the Image Quality of StyleGAN" (CVPR 2020)
as laid out in NVlabs/stylegan2-ada-pytorch `training/networks.py` (config-f layout: skip generator,
residual discriminator). Written from the paper and that file's documented behaviour; the parameter
layout matches it layer by layer so parameter counts can be compared (see tests/models/test_stylegan2.py).

Differences from the reference, all numerically neutral in fp32:
- upfirdn2d / conv2d_resample / bias_act are plain PyTorch (zero-insertion + depthwise conv2d with the
  [1,3,3,1] filter), no fp16 and no activation clamping (`conv_clamp` only matters for fp16).
- modulated convolution always uses the non-fused form (scale activations, shared-weight conv, scale
  by the demodulation coefficients), which is algebraically equal to the fused grouped convolution.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

#: stylegan2-ada networks.py: resample_filter=[1,3,3,1] everywhere.
RESAMPLE_FILTER = (1.0, 3.0, 3.0, 1.0)
#: bias_act.py: 'lrelu' has alpha 0.2 and def_gain sqrt(2).
LRELU_SLOPE = 0.2
LRELU_GAIN = math.sqrt(2.0)


def setup_filter(taps: Sequence[float] = RESAMPLE_FILTER) -> torch.Tensor:
    """Separable 2-D low-pass filter normalised to unit sum (upfirdn2d.setup_filter)."""
    f = torch.as_tensor(taps, dtype=torch.float32)
    f = torch.outer(f, f)
    return f / f.sum()


def upfirdn2d(x: torch.Tensor, f: torch.Tensor, up: int = 1, down: int = 1,
              pad: tuple[int, int, int, int] = (0, 0, 0, 0), gain: float = 1.0) -> torch.Tensor:
    """Upsample (zero insertion), pad (x0, x1, y0, y1), FIR-filter, downsample (keep every `down`-th).

    The filter is symmetric, so correlation equals convolution; `gain` scales the filter (4 when up=2
    keeps the signal's mean, as in upfirdn2d with gain=up**2)."""
    n, c, h, w = x.shape
    if up > 1:
        x = x.reshape(n, c, h, 1, w, 1)
        x = F.pad(x, [0, up - 1, 0, 0, 0, up - 1])
        x = x.reshape(n, c, h * up, w * up)
    x = F.pad(x, list(pad))
    weight = (f * gain).to(x.dtype)[None, None].expand(c, 1, *f.shape)
    x = F.conv2d(x, weight, groups=c)
    if down > 1:
        x = x[:, :, ::down, ::down]
    return x


def upsample2d(x: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    """2x upsampling with the FIR filter (upfirdn2d.upsample2d: pad [(fw+1)//2, (fw-2)//2], gain 4)."""
    fw = f.shape[-1]
    p0, p1 = (fw + 1) // 2, (fw - 2) // 2
    return upfirdn2d(x, f, up=2, pad=(p0, p1, p0, p1), gain=4.0)


def _lrelu(x: torch.Tensor, gain: float = 1.0) -> torch.Tensor:
    return F.leaky_relu(x, LRELU_SLOPE) * (LRELU_GAIN * gain)


class FullyConnected(nn.Module):
    """Equalised-learning-rate linear layer with a learning-rate multiplier (networks.py FullyConnectedLayer)."""

    def __init__(self, in_features: int, out_features: int, *, bias: bool = True, activation: str = "linear",
                 lr_multiplier: float = 1.0, bias_init: float = 0.0):
        super().__init__()
        if activation not in ("linear", "lrelu"):
            raise ValueError(f"activation must be 'linear' or 'lrelu', got {activation!r}")
        self.activation = activation
        self.weight = nn.Parameter(torch.randn(out_features, in_features) / lr_multiplier)
        self.bias = nn.Parameter(torch.full([out_features], float(bias_init))) if bias else None
        self.weight_gain = lr_multiplier / math.sqrt(in_features)
        self.bias_gain = lr_multiplier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b = self.bias * self.bias_gain if self.bias is not None else None
        x = F.linear(x, self.weight * self.weight_gain, b)
        return _lrelu(x) if self.activation == "lrelu" else x


class Conv2dLayer(nn.Module):
    """Equalised-lr convolution with optional FIR 2x downsampling (discriminator layers)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, *, bias: bool = True,
                 activation: str = "linear", down: int = 1):
        super().__init__()
        self.activation = activation
        self.down = down
        self.kernel_size = kernel_size
        self.padding = kernel_size // 2
        self.register_buffer("resample_filter", setup_filter(), persistent=False)
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        self.weight_gain = 1.0 / math.sqrt(in_channels * kernel_size * kernel_size)

    def forward(self, x: torch.Tensor, gain: float = 1.0) -> torch.Tensor:
        w = self.weight * self.weight_gain
        if self.down > 1:
            # conv2d_resample, down only: blur with padding p + 1 each side, then strided conv (k>1) or
            # blur-and-subsample then 1x1 conv (k=1).
            f = self.resample_filter
            p = self.padding + (f.shape[-1] - self.down + 1) // 2
            q = self.padding + (f.shape[-1] - self.down) // 2
            if self.kernel_size == 1:
                x = upfirdn2d(x, f, down=self.down, pad=(p, q, p, q))
                x = F.conv2d(x, w)
            else:
                x = upfirdn2d(x, f, pad=(p, q, p, q))
                x = F.conv2d(x, w, stride=self.down)
        else:
            x = F.conv2d(x, w, padding=self.padding)
        if self.bias is not None:
            x = x + self.bias[None, :, None, None]
        if self.activation == "lrelu":
            return _lrelu(x, gain)
        return x * gain if gain != 1.0 else x


def modulated_conv2d(x: torch.Tensor, weight: torch.Tensor, styles: torch.Tensor, *, demodulate: bool = True,
                     up: int = 1, padding: int = 0, resample_filter: torch.Tensor | None = None) -> torch.Tensor:
    """Weight (de)modulation (StyleGAN2 paper, Sec. 2.2, eqs. 1-3) in its non-fused form."""
    n = x.shape[0]
    x = x * styles[:, :, None, None]
    if up > 1:
        # conv2d_resample with up=2: transposed conv (stride 2, no padding) then FIR filter with
        # padding [p0, p1] so the output is exactly 2x (derived from conv2d_resample's padding rules).
        assert resample_filter is not None
        k = weight.shape[-1]
        fw = resample_filter.shape[-1]
        p0 = padding + (fw + up - 1) // 2 - (k - 1)
        p1 = padding + (fw - up) // 2 - (k - up)
        x = F.conv_transpose2d(x, weight.transpose(0, 1), stride=up)
        x = upfirdn2d(x, resample_filter, pad=(p0, p1, p0, p1), gain=float(up * up))
    else:
        x = F.conv2d(x, weight, padding=padding)
    if demodulate:
        # sum_{i,k} (w_oik s_ni)^2 = sum_i s_ni^2 * sum_k w_oik^2
        dcoefs = (styles.square() @ weight.square().sum(dim=[2, 3]).t() + 1e-8).rsqrt()  # [N, O]
        x = x * dcoefs.reshape(n, -1, 1, 1)
    return x


class MappingNetwork(nn.Module):
    """z -> w: pixel-norm, `num_layers` equalised-lr FC layers with lr multiplier 0.01, tracked w_avg."""

    def __init__(self, z_dim: int, w_dim: int, num_ws: int, num_layers: int = 8, lr_multiplier: float = 0.01,
                 w_avg_beta: float = 0.995):
        super().__init__()
        self.z_dim, self.w_dim, self.num_ws, self.num_layers = z_dim, w_dim, num_ws, num_layers
        self.w_avg_beta = w_avg_beta  # networks.py MappingNetwork: w_avg_beta=0.995
        feats = [z_dim] + [w_dim] * num_layers
        self.layers = nn.ModuleList(
            FullyConnected(feats[i], feats[i + 1], activation="lrelu", lr_multiplier=lr_multiplier)
            for i in range(num_layers))
        self.register_buffer("w_avg", torch.zeros(w_dim))

    def forward(self, z: torch.Tensor, *, update_w_avg: bool = True) -> torch.Tensor:
        if z.ndim != 2 or z.shape[1] != self.z_dim:
            raise ValueError(f"StyleGAN2 mapping expects z of shape (n, {self.z_dim}), got {tuple(z.shape)}")
        x = z * (z.square().mean(dim=1, keepdim=True) + 1e-8).rsqrt()  # normalize_2nd_moment
        for layer in self.layers:
            x = layer(x)
        if update_w_avg and self.training:
            with torch.no_grad():
                self.w_avg.copy_(x.detach().float().mean(dim=0).lerp(self.w_avg, self.w_avg_beta))  # fp32 under bf16 autocast
        return x.unsqueeze(1).repeat(1, self.num_ws, 1)


class SynthesisLayer(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, w_dim: int, resolution: int, *, up: int = 1,
                 kernel_size: int = 3):
        super().__init__()
        self.resolution, self.up = resolution, up
        self.padding = kernel_size // 2
        self.register_buffer("resample_filter", setup_filter(), persistent=False)
        self.affine = FullyConnected(w_dim, in_channels, bias_init=1.0)
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        # const noise buffer for noise_mode='const' (deterministic synthesis); persistent so that an
        # EMA copy / snapshot reproduces it exactly.
        self.register_buffer("noise_const", torch.randn(resolution, resolution))
        self.noise_strength = nn.Parameter(torch.zeros([]))
        self.bias = nn.Parameter(torch.zeros(out_channels))

    def forward(self, x: torch.Tensor, w: torch.Tensor, noise_mode: str = "random", gain: float = 1.0):
        styles = self.affine(w)
        x = modulated_conv2d(x, self.weight, styles, up=self.up, padding=self.padding,
                             resample_filter=self.resample_filter)
        if noise_mode == "random":
            x = x + torch.randn(x.shape[0], 1, self.resolution, self.resolution, device=x.device,
                                dtype=x.dtype) * self.noise_strength
        elif noise_mode == "const":
            x = x + self.noise_const * self.noise_strength
        elif noise_mode != "none":
            raise ValueError(f"noise_mode must be 'random', 'const' or 'none', got {noise_mode!r}")
        return _lrelu(x + self.bias[None, :, None, None], gain)


class ToRGB(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, w_dim: int):
        super().__init__()
        self.affine = FullyConnected(w_dim, in_channels, bias_init=1.0)
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, 1, 1))
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.weight_gain = 1.0 / math.sqrt(in_channels)

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        styles = self.affine(w) * self.weight_gain
        x = modulated_conv2d(x, self.weight, styles, demodulate=False)
        return x + self.bias[None, :, None, None]


class SynthesisBlock(nn.Module):
    """One resolution of the skip generator: [conv0 (up)] conv1, ToRGB added to the upsampled image."""

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, resolution: int, img_channels: int = 3):
        super().__init__()
        self.in_channels, self.resolution = in_channels, resolution
        self.register_buffer("resample_filter", setup_filter(), persistent=False)
        if in_channels == 0:
            self.const = nn.Parameter(torch.randn(out_channels, resolution, resolution))
        else:
            self.conv0 = SynthesisLayer(in_channels, out_channels, w_dim, resolution, up=2)
        self.conv1 = SynthesisLayer(out_channels, out_channels, w_dim, resolution)
        self.torgb = ToRGB(out_channels, img_channels, w_dim)
        self.num_conv = 1 if in_channels == 0 else 2
        self.num_torgb = 1

    def forward(self, x, img, ws: torch.Tensor, noise_mode: str = "random"):
        w_iter = iter(ws.unbind(dim=1))
        if self.in_channels == 0:
            x = self.const.unsqueeze(0).repeat(ws.shape[0], 1, 1, 1)
            x = self.conv1(x, next(w_iter), noise_mode)
        else:
            x = self.conv0(x, next(w_iter), noise_mode)
            x = self.conv1(x, next(w_iter), noise_mode)
        if img is not None:
            img = upsample2d(img, self.resample_filter)
        y = self.torgb(x, next(w_iter))
        img = y if img is None else img + y
        return x, img


def channels_for(resolution: int, channel_base: int, channel_max: int) -> int:
    """networks.py: channels at a resolution = min(channel_base // res, channel_max)."""
    return min(channel_base // resolution, channel_max)


class SynthesisNetwork(nn.Module):
    def __init__(self, w_dim: int, img_resolution: int, channel_base: int, channel_max: int, img_channels: int = 3):
        super().__init__()
        log2 = int(math.log2(img_resolution))
        self.block_resolutions = [2 ** i for i in range(2, log2 + 1)]
        self.w_dim = w_dim
        self.blocks = nn.ModuleList()
        self.num_ws = 0
        for res in self.block_resolutions:
            in_ch = channels_for(res // 2, channel_base, channel_max) if res > 4 else 0
            out_ch = channels_for(res, channel_base, channel_max)
            if out_ch < 1:
                raise ValueError(f"channel_base {channel_base} gives 0 channels at {res} px; "
                                 f"raise channel_base to at least {res}")
            block = SynthesisBlock(in_ch, out_ch, w_dim, res, img_channels)
            self.num_ws += block.num_conv
            self.blocks.append(block)
        self.num_ws += 1  # the last block's ToRGB

    def forward(self, ws: torch.Tensor, noise_mode: str = "random") -> torch.Tensor:
        if ws.ndim != 3 or ws.shape[1] != self.num_ws or ws.shape[2] != self.w_dim:
            raise ValueError(f"synthesis expects ws of shape (n, {self.num_ws}, {self.w_dim}), got {tuple(ws.shape)}")
        x = img = None
        w_idx = 0
        for block in self.blocks:
            cur = ws.narrow(1, w_idx, block.num_conv + block.num_torgb)
            w_idx += block.num_conv
            x, img = block(x, img, cur, noise_mode)
        return img


class Generator(nn.Module):
    """Mapping + synthesis. One forward serves sampling, training (style mixing, ws for path length) and
    inversion (given ws), so a DDP wrapper around it sees every use through `forward`."""

    def __init__(self, z_dim: int, w_dim: int, img_resolution: int, *, channel_base: int, channel_max: int,
                 mapping_layers: int, mapping_lr_multiplier: float, w_avg_beta: float = 0.995):
        super().__init__()
        self.z_dim, self.w_dim, self.img_resolution = z_dim, w_dim, img_resolution
        self.synthesis = SynthesisNetwork(w_dim, img_resolution, channel_base, channel_max)
        self.num_ws = self.synthesis.num_ws
        self.mapping = MappingNetwork(z_dim, w_dim, self.num_ws, mapping_layers, mapping_lr_multiplier, w_avg_beta)
        # Path-length running mean lives here so it is saved/resumed with G's state_dict
        # (loss.py: pl_mean, lerp with pl_decay).
        self.register_buffer("pl_mean", torch.zeros([]))

    def forward(self, z: torch.Tensor | None = None, *, ws: torch.Tensor | None = None,
                truncation_psi: float = 1.0, truncation_cutoff: int | None = None, noise_mode: str = "random",
                style_mixing_prob: float = 0.0, return_ws: bool = False):
        if ws is None:
            if z is None:
                raise ValueError("Generator needs z or ws")
            ws = self.mapping(z)
            if truncation_psi != 1.0:
                cut = self.num_ws if truncation_cutoff is None else truncation_cutoff
                head = self.mapping.w_avg.lerp(ws[:, :cut], truncation_psi)
                ws = torch.cat([head, ws[:, cut:]], dim=1)
            if style_mixing_prob > 0:
                # loss.py run_G: cutoff ~ U{1..num_ws-1}, used with probability p, else no mixing.
                # Random draws are made every time so RNG consumption does not depend on the outcome.
                cutoff = int(torch.randint(1, self.num_ws, (), device=ws.device).item()) if self.num_ws > 1 else 1
                use = bool((torch.rand((), device=ws.device) < style_mixing_prob).item())
                ws2 = self.mapping(torch.randn_like(z), update_w_avg=False)
                if use and self.num_ws > 1:
                    ws = torch.cat([ws[:, :cutoff], ws2[:, cutoff:]], dim=1)
        img = self.synthesis(ws, noise_mode=noise_mode)
        return (img, ws) if return_ws else img


class MinibatchStd(nn.Module):
    """Minibatch standard deviation (ProGAN; networks.py MinibatchStdLayer)."""

    def __init__(self, group_size: int, num_channels: int = 1):
        super().__init__()
        self.group_size, self.num_channels = group_size, num_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        g = min(self.group_size, n)
        if n % g:
            raise ValueError(f"StyleGAN2 discriminator: batch size {n} is not divisible by mbstd_group_size "
                             f"{self.group_size}; use a batch size that is a multiple of it (or set the key "
                             "mbstd_group_size in params/models/stylegan2.yaml)")
        f = self.num_channels
        y = x.reshape(g, -1, f, c // f, h, w)
        y = y - y.mean(dim=0)
        y = (y.square().mean(dim=0) + 1e-8).sqrt()
        y = y.mean(dim=[2, 3, 4]).reshape(-1, f, 1, 1).repeat(g, 1, h, w)
        return torch.cat([x, y], dim=1)


class DiscriminatorBlock(nn.Module):
    """Residual block: [fromrgb] conv3 -> conv3 down, plus 1x1 down skip, both scaled by sqrt(0.5)."""

    def __init__(self, in_channels: int, tmp_channels: int, out_channels: int, img_channels: int = 3):
        super().__init__()
        self.in_channels = in_channels
        if in_channels == 0:
            self.fromrgb = Conv2dLayer(img_channels, tmp_channels, 1, activation="lrelu")
        self.conv0 = Conv2dLayer(tmp_channels, tmp_channels, 3, activation="lrelu")
        self.conv1 = Conv2dLayer(tmp_channels, out_channels, 3, activation="lrelu", down=2)
        self.skip = Conv2dLayer(tmp_channels, out_channels, 1, bias=False, down=2)

    def forward(self, x: torch.Tensor | None, img: torch.Tensor) -> torch.Tensor:
        if self.in_channels == 0:
            x = self.fromrgb(img)
        y = self.skip(x, gain=math.sqrt(0.5))
        x = self.conv1(self.conv0(x), gain=math.sqrt(0.5))
        return y + x


class Discriminator(nn.Module):
    def __init__(self, img_resolution: int, *, channel_base: int, channel_max: int, mbstd_group_size: int = 4,
                 mbstd_num_channels: int = 1, img_channels: int = 3):
        super().__init__()
        self.img_resolution = img_resolution
        log2 = int(math.log2(img_resolution))
        resolutions = [2 ** i for i in range(log2, 2, -1)]
        ch = {r: channels_for(r, channel_base, channel_max) for r in resolutions + [4]}
        if min(ch.values()) < 1:
            raise ValueError(f"channel_base {channel_base} gives 0 channels at {img_resolution} px; "
                             f"raise channel_base to at least {img_resolution}")
        self.blocks = nn.ModuleList(
            DiscriminatorBlock(ch[r] if r < img_resolution else 0, ch[r], ch[r // 2], img_channels)
            for r in resolutions)
        c4 = ch[4]
        self.mbstd = MinibatchStd(mbstd_group_size, mbstd_num_channels) if mbstd_num_channels > 0 else None
        self.conv = Conv2dLayer(c4 + mbstd_num_channels, c4, 3, activation="lrelu")
        self.fc = FullyConnected(c4 * 16, c4, activation="lrelu")
        self.out = FullyConnected(c4, 1)

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        r = self.img_resolution
        if img.ndim != 4 or img.shape[1:] != (3, r, r):
            raise ValueError(f"StyleGAN2 discriminator expects images (n, 3, {r}, {r}), got {tuple(img.shape)}")
        x = None
        for block in self.blocks:
            x = block(x, img)
        if self.mbstd is not None:
            x = self.mbstd(x)
        x = self.conv(x)
        x = self.fc(x.flatten(1))
        return self.out(x)
