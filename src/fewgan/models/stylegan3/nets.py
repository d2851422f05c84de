"""StyleGAN3 generator (configs T and R) in plain PyTorch, no custom CUDA ops.

Karras et al., "Alias-Free Generative Adversarial Networks" (NeurIPS 2021), laid out as NVlabs/stylegan3
`training/networks_stylegan3.py` (written from the paper and that file's documented behaviour; the parameter
layout matches it layer by layer, so the parameter counts equal the official ones, tests/models/test_stylegan3.py):

- mapping: StyleGAN2's (`fewgan.models.stylegan2.nets.MappingNetwork`), 2 layers (train.py map depth for T/R),
  w_avg_beta 0.998 (networks_stylegan3.py MappingNetwork);
- input: Fourier features (`SynthesisInput`): `channels` random frequencies drawn uniformly inside a disc of
  radius = the first layer's cutoff, random phases, rotated and translated per sample by an affine of w0
  (initialised to the identity transform), then a learned channels x channels linear map; a user transform
  (`transform` buffer) lets the equivariance checks translate / rotate the input;
- 14 synthesis layers + one ToRGB (num_ws = 16): each a modulated conv (3x3 for T, 1x1 for R) followed by the
  filtered leaky ReLU (bias, upsample 2x (4x where the sampling rate doubles), Kaiser low-pass, lrelu, low-pass,
  downsample 2x); cutoffs / stopbands grow geometrically from (2, 2**2.1) to (R/2, R/2 * 2**0.3); the last 2
  layers are critically sampled (stopband at Nyquist); every layer but the last two carries a 10 px margin;
  channels = min(channel_base / 2 / cutoff, channel_max); the output is scaled by 0.25;
- no noise inputs; each layer normalises its input by the running mean of its squared magnitude
  (`magnitude_ema`, decay 0.5 ** (batch / 20 kimg), updated by the G forward of the D step only, as the
  reference's update_emas);
- R: radially symmetric (jinc) down-sampling filters in the non-critical layers.

Differences from the reference: no fp16 layers (fp32, or the loop's bf16 autocast with the Fourier input and the
mapping kept in fp32; `conv_clamp` applied as in the reference when it is not None); the modulated convolution is in
the non-fused form (scale activations, shared-weight conv, scale outputs), algebraically equal to the reference's
grouped convolution; on the CPU the separable filters run as matrix products (`upfirdn2d` impl "matmul").
Checked once against NVlabs/stylegan3's own modules on CPU (weights copied, its reference ops): outputs equal within
1.1e-6 for T and R at 32 px.
"""

from __future__ import annotations

import math

import numpy as np
import scipy.signal
import scipy.special
import torch
import torch.nn.functional as F
from torch import nn

from fewgan.models.stylegan2.nets import FullyConnected, MappingNetwork

LRELU_SLOPE = 0.2          # networks_stylegan3.py SynthesisLayer.forward: slope 0.2 (ToRGB: 1, i.e. linear)
LRELU_GAIN = math.sqrt(2)  # ... gain sqrt(2) (ToRGB: 1)


# ---- filters and resampling ------------------------------------------------------------------------
def design_lowpass_filter(numtaps: int, cutoff: float, width: float, fs: float,
                          radial: bool = False) -> torch.Tensor | None:
    """The reference's filter design: None for 1 tap (identity); a separable 1-D Kaiser-windowed sinc
    (scipy.signal.firwin) or a 2-D radially symmetric jinc with the Kaiser window of the same attenuation,
    normalised to unit sum."""
    if numtaps < 1:
        raise ValueError(f"numtaps must be >= 1, got {numtaps}")
    if numtaps == 1:
        return None
    if not radial:
        return torch.as_tensor(scipy.signal.firwin(numtaps=numtaps, cutoff=cutoff, width=width, fs=fs),
                               dtype=torch.float32)
    t = (np.arange(numtaps) - (numtaps - 1) / 2) / fs
    r = np.hypot(*np.meshgrid(t, t))
    with np.errstate(invalid="ignore", divide="ignore"):
        f = np.where(r > 0, scipy.special.j1(2 * cutoff * np.pi * r) / (np.pi * r), cutoff)  # jinc; limit c at r=0
    beta = scipy.signal.kaiser_beta(scipy.signal.kaiser_atten(numtaps, width / (fs / 2)))
    window = np.kaiser(numtaps, beta)
    f = f * np.outer(window, window)
    return torch.as_tensor(f / f.sum(), dtype=torch.float32)


def fir_matrix(f: torch.Tensor, n_in: int, *, up: int = 1, down: int = 1, pad0: int = 0, pad1: int = 0,
               gain: float = 1.0) -> torch.Tensor:
    """The (n_in, n_out) matrix of one axis of upfirdn: insert up-1 zeros after each sample, pad by pad0 / pad1
    (negative = crop), convolve with the 1-D filter f (a "valid" convolution, not a correlation), keep every
    down-th sample. Entry [j, i] = gain * f[k - 1 + down * i - pad0 - up * j] where that tap exists."""
    k = f.numel()
    n_conv = n_in * up + pad0 + pad1 - k + 1
    if n_conv < 1:
        raise ValueError(f"upfirdn2d: {n_in} samples, up {up}, padding ({pad0}, {pad1}) leave nothing for {k} taps")
    n_out = (n_conv + down - 1) // down
    taps = (k - 1) + down * torch.arange(n_out, device=f.device)[None, :] - pad0 \
        - up * torch.arange(n_in, device=f.device)[:, None]
    inside = (taps >= 0) & (taps < k)
    return torch.where(inside, (f * gain)[taps.clamp(0, k - 1)], torch.zeros((), dtype=f.dtype, device=f.device))


def upfirdn2d(x: torch.Tensor, f: torch.Tensor | None, *, up: int = 1, down: int = 1,
              padding: tuple[int, int, int, int] = (0, 0, 0, 0), gain: float = 1.0, impl: str = "auto") -> torch.Tensor:
    """Upsample by zero insertion, pad (x0, x1, y0, y1; negative = crop), convolve with FIR filter f
    (1-D = separable, the same taps along x and y; 2-D; None = identity), keep every `down`-th sample.
    `gain` scales the 2-D filter (each 1-D pass by sqrt(gain)), as the reference's upfirdn2d does.

    Two exact implementations: "matmul" (each axis one product with `fir_matrix`: BLAS instead of a depthwise
    convolution, no zero taps multiplied into a strided result; 1-D filters only) and "conv" (zero insertion and
    a depthwise convolution, strided when down-sampling, as the reference's pure-PyTorch path). "auto" takes
    matmul for 1-D filters on the CPU (3-4x faster there, measured) and conv otherwise."""
    if impl not in ("auto", "matmul", "conv"):
        raise ValueError(f"upfirdn2d impl must be auto, matmul or conv, got {impl!r}")
    n, c, h, w = x.shape
    px0, px1, py0, py1 = padding
    if f is not None and f.ndim == 1 and (impl == "matmul" or (impl == "auto" and x.device.type == "cpu")):
        g = math.sqrt(gain)
        mw = fir_matrix(f.to(x.dtype), w, up=up, down=down, pad0=px0, pad1=px1, gain=g)
        mh = fir_matrix(f.to(x.dtype), h, up=up, down=down, pad0=py0, pad1=py1, gain=g)
        return mh.t() @ (x @ mw)
    if impl == "matmul" and f is not None:
        raise ValueError("upfirdn2d: the matmul implementation takes 1-D (separable) filters only")
    if up > 1:
        x = F.pad(x.reshape(n, c, h, 1, w, 1), [0, up - 1, 0, 0, 0, up - 1]).reshape(n, c, h * up, w * up)
    x = F.pad(x, [max(px0, 0), max(px1, 0), max(py0, 0), max(py1, 0)])
    x = x[:, :, max(-py0, 0):x.shape[2] - max(-py1, 0), max(-px0, 0):x.shape[3] - max(-px1, 0)]
    if f is None:
        x = x * gain if gain != 1.0 else x
        return x[:, :, ::down, ::down] if down > 1 else x
    f = f.to(x.dtype).flip(list(range(f.ndim)))  # convolution, not correlation (the filters are symmetric anyway)
    if f.ndim == 1:
        k = f * math.sqrt(gain)
        x = F.conv2d(x, k.view(1, 1, 1, -1).expand(c, 1, 1, k.numel()), groups=c, stride=(1, down))
        return F.conv2d(x, k.view(1, 1, -1, 1).expand(c, 1, k.numel(), 1), groups=c, stride=(down, 1))
    k = f * gain
    return F.conv2d(x, k[None, None].expand(c, 1, *k.shape), groups=c, stride=down)


def filtered_lrelu(x: torch.Tensor, fu: torch.Tensor | None, fd: torch.Tensor | None, b: torch.Tensor | None, *,
                   up: int = 1, down: int = 1, padding: tuple[int, int, int, int] = (0, 0, 0, 0),
                   gain: float = LRELU_GAIN, slope: float = LRELU_SLOPE, clamp: float | None = None,
                   impl: str = "auto") -> torch.Tensor:
    """Bias, upsample `up`x with low-pass fu (gain up**2), leaky ReLU (times gain, clamped to +-clamp),
    low-pass fd and downsample `down`x: the reference's pure-PyTorch path (filtered_lrelu.py
    _filtered_lrelu_ref), here without its CUDA kernel."""
    if b is not None:
        x = x + b.to(x.dtype)[None, :, None, None]
    x = upfirdn2d(x, fu, up=up, padding=padding, gain=float(up * up), impl=impl)
    x = F.leaky_relu(x, slope) * gain if slope != 1.0 else x * gain
    if clamp is not None:
        x = x.clamp(-clamp, clamp)
    return upfirdn2d(x, fd, down=down, impl=impl)


def gaussian_blur(img: torch.Tensor, sigma: float) -> torch.Tensor:
    """StyleGAN3-R's blur of D's input (loss.py run_D): taps exp2(-(k / sigma)^2), k = -floor(3 sigma)..floor(3 sigma),
    normalised, applied separably with zero padding (same size). No-op when floor(3 sigma) = 0."""
    size = math.floor(sigma * 3)
    if size <= 0:
        return img
    f = torch.arange(-size, size + 1, device=img.device, dtype=torch.float32).div(sigma).square().neg().exp2()
    return upfirdn2d(img, f / f.sum(), padding=(size, size, size, size))


# ---- layers ------------------------------------------------------------------------------------------------
def modulated_conv2d(x: torch.Tensor, weight: torch.Tensor, styles: torch.Tensor, *, demodulate: bool,
                     padding: int, input_gain: torch.Tensor | None = None) -> torch.Tensor:
    """networks_stylegan3.py modulated_conv2d in the non-fused form. With demodulation the weight is first
    normalised per output channel and the styles by their overall RMS (numerical pre-normalisation; the
    demodulation cancels it), then y = conv(x * s * input_gain, W) * d, d_o = (sum_ik (W_oik s_i)^2 + 1e-8)^-1/2."""
    if demodulate:
        weight = weight * weight.square().mean(dim=[1, 2, 3], keepdim=True).rsqrt()
        styles = styles * styles.square().mean().rsqrt()
    scale = styles if input_gain is None else styles * input_gain
    x = F.conv2d(x * scale[:, :, None, None].to(x.dtype), weight.to(x.dtype), padding=padding)
    if demodulate:
        dcoefs = (styles.square() @ weight.square().sum(dim=[2, 3]).t() + 1e-8).rsqrt()  # [N, O]
        x = x * dcoefs[:, :, None, None].to(x.dtype)
    return x


class SynthesisInput(nn.Module):
    """Fourier features (paper Sec. 3.2 and App. D; networks_stylegan3.py SynthesisInput)."""

    def __init__(self, w_dim: int, channels: int, size: int, sampling_rate: float, bandwidth: float):
        super().__init__()
        self.w_dim, self.channels, self.size = w_dim, channels, int(size)
        self.sampling_rate, self.bandwidth = float(sampling_rate), float(bandwidth)
        freqs = torch.randn(channels, 2)
        radii = freqs.square().sum(dim=1, keepdim=True).sqrt()
        freqs = freqs / (radii * radii.square().exp().pow(0.25)) * bandwidth  # uniform in the disc of radius bandwidth
        phases = torch.rand(channels) - 0.5
        self.weight = nn.Parameter(torch.randn(channels, channels))
        # affine of w0 -> (r_c, r_s, t_x, t_y), initialised to the identity transform (weight 0, bias [1, 0, 0, 0])
        self.affine = FullyConnected(w_dim, 4)
        with torch.no_grad():
            self.affine.weight.zero_()
            self.affine.bias.copy_(torch.tensor([1.0, 0.0, 0.0, 0.0]))
        self.register_buffer("transform", torch.eye(3))  # user-specified inverse transform of the image
        self.register_buffer("freqs", freqs)
        self.register_buffer("phases", phases)

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        # float32 even under bf16 autocast: phases of up to a few cycles lose ~1e-2 cycle in bf16, which would
        # break the equivariance the input exists for (the reference runs this layer in fp32)
        with torch.autocast(device_type=w.device.type, enabled=False):
            return self._features(w.float())

    def _features(self, w: torch.Tensor) -> torch.Tensor:
        n = w.shape[0]
        t = self.affine(w)
        t = t / t[:, :2].norm(dim=1, keepdim=True)  # rotation part normalised to a unit complex number
        m_r = torch.eye(3, device=w.device).unsqueeze(0).repeat(n, 1, 1)
        m_r[:, 0, 0], m_r[:, 0, 1], m_r[:, 1, 0], m_r[:, 1, 1] = t[:, 0], -t[:, 1], t[:, 1], t[:, 0]
        m_t = torch.eye(3, device=w.device).unsqueeze(0).repeat(n, 1, 1)
        m_t[:, 0, 2], m_t[:, 1, 2] = -t[:, 2], -t[:, 3]
        transforms = m_r @ m_t @ self.transform.unsqueeze(0)
        phases = self.phases.unsqueeze(0) + (self.freqs.unsqueeze(0) @ transforms[:, :2, 2:]).squeeze(2)
        freqs = self.freqs.unsqueeze(0) @ transforms[:, :2, :2]
        # frequencies pushed out of band by the user transform fade out
        amplitudes = (1 - (freqs.norm(dim=2) - self.bandwidth) / (self.sampling_rate / 2 - self.bandwidth)).clamp(0, 1)
        theta = torch.eye(2, 3, device=w.device)
        theta[0, 0] = theta[1, 1] = 0.5 * self.size / self.sampling_rate
        grid = F.affine_grid(theta.unsqueeze(0), [1, 1, self.size, self.size], align_corners=False)  # [1, H, W, 2]
        x = torch.einsum("hwk,nck->nhwc", grid[0], freqs) + phases[:, None, None, :]
        x = torch.sin(x * (2 * math.pi)) * amplitudes[:, None, None, :]
        x = x @ (self.weight / math.sqrt(self.channels)).t()
        return x.permute(0, 3, 1, 2).contiguous()


class SynthesisLayer(nn.Module):
    """Modulated conv + filtered leaky ReLU between two sampling grids (networks_stylegan3.py SynthesisLayer)."""

    def __init__(self, w_dim: int, *, is_torgb: bool, is_critically_sampled: bool, in_channels: int,
                 out_channels: int, in_size: int, out_size: int, in_sampling_rate: int, out_sampling_rate: int,
                 in_cutoff: float, out_cutoff: float, in_half_width: float, out_half_width: float,
                 conv_kernel: int = 3, filter_size: int = 6, lrelu_upsampling: int = 2,
                 use_radial_filters: bool = False, conv_clamp: float | None = 256):
        super().__init__()
        self.is_torgb, self.is_critically_sampled = is_torgb, is_critically_sampled
        self.in_channels, self.out_channels = in_channels, out_channels
        self.in_size, self.out_size = int(in_size), int(out_size)
        self.conv_kernel = 1 if is_torgb else conv_kernel
        self.conv_clamp = conv_clamp
        self.magnitude_ema_beta: float | None = None  # set by the model from the batch (Generator.set_magnitude_ema_beta)
        tmp_rate = max(in_sampling_rate, out_sampling_rate) * (1 if is_torgb else lrelu_upsampling)
        self.affine = FullyConnected(w_dim, in_channels, bias_init=1.0)
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, self.conv_kernel, self.conv_kernel))
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.register_buffer("magnitude_ema", torch.ones([]))
        self.up_factor = int(round(tmp_rate / in_sampling_rate))
        self.down_factor = int(round(tmp_rate / out_sampling_rate))
        if in_sampling_rate * self.up_factor != tmp_rate or out_sampling_rate * self.down_factor != tmp_rate:
            raise ValueError("StyleGAN3 layer: sampling rates are not integer ratios")
        self.up_taps = filter_size * self.up_factor if self.up_factor > 1 and not is_torgb else 1
        self.down_taps = filter_size * self.down_factor if self.down_factor > 1 and not is_torgb else 1
        self.down_radial = use_radial_filters and not is_critically_sampled
        # derived from the config: not saved (persistent=False), rebuilt identically on load
        self.register_buffer("up_filter", design_lowpass_filter(self.up_taps, in_cutoff, in_half_width * 2, tmp_rate),
                             persistent=False)
        self.register_buffer("down_filter", design_lowpass_filter(self.down_taps, out_cutoff, out_half_width * 2,
                                                                  tmp_rate, radial=self.down_radial), persistent=False)
        # padding so that the output lands on the out grid, symmetric interpretation (paper App. C.3)
        pad_total = (self.out_size - 1) * self.down_factor + 1
        pad_total -= (self.in_size + self.conv_kernel - 1) * self.up_factor
        pad_total += self.up_taps + self.down_taps - 2
        pad_lo = (pad_total + self.up_factor) // 2
        pad_hi = pad_total - pad_lo
        self.padding = (pad_lo, pad_hi, pad_lo, pad_hi)

    def forward(self, x: torch.Tensor, w: torch.Tensor, update_emas: bool = False) -> torch.Tensor:
        if x.shape[1:] != (self.in_channels, self.in_size, self.in_size):
            raise ValueError(f"StyleGAN3 layer expects (n, {self.in_channels}, {self.in_size}, {self.in_size}), "
                             f"got {tuple(x.shape)}")
        if update_emas:
            if self.magnitude_ema_beta is None:
                raise RuntimeError("StyleGAN3: magnitude_ema_beta is unset; call model.setup(TrainContext(...)) "
                                   "before training (it depends on the batch size)")
            with torch.no_grad():
                cur = x.detach().float().square().mean()
                self.magnitude_ema.copy_(cur.lerp(self.magnitude_ema, self.magnitude_ema_beta))
        input_gain = self.magnitude_ema.rsqrt()
        styles = self.affine(w)
        if self.is_torgb:
            styles = styles / math.sqrt(self.in_channels * self.conv_kernel ** 2)
        x = modulated_conv2d(x, self.weight, styles, demodulate=not self.is_torgb, padding=self.conv_kernel - 1,
                             input_gain=input_gain)
        x = filtered_lrelu(x, self.up_filter, self.down_filter, self.bias, up=self.up_factor, down=self.down_factor,
                           padding=self.padding, gain=1.0 if self.is_torgb else LRELU_GAIN,
                           slope=1.0 if self.is_torgb else LRELU_SLOPE, clamp=self.conv_clamp)
        return x


def layer_specs(img_resolution: int, *, channel_base: int, channel_max: int, num_layers: int, num_critical: int,
                first_cutoff: float, first_stopband: float, last_stopband_rel: float, margin_size: int,
                img_channels: int = 3) -> dict[str, np.ndarray]:
    """Cutoffs, stopbands, sampling rates, half-widths, sizes and channels of the input (index 0) and the
    num_layers + 1 layers (networks_stylegan3.py SynthesisNetwork.__init__)."""
    last_cutoff = img_resolution / 2
    last_stopband = last_cutoff * last_stopband_rel
    exponents = np.minimum(np.arange(num_layers + 1) / (num_layers - num_critical), 1)
    cutoffs = first_cutoff * (last_cutoff / first_cutoff) ** exponents
    stopbands = first_stopband * (last_stopband / first_stopband) ** exponents
    rates = np.exp2(np.ceil(np.log2(np.minimum(stopbands * 2, img_resolution))))
    half_widths = np.maximum(stopbands, rates / 2) - cutoffs
    sizes = rates + margin_size * 2
    sizes[-2:] = img_resolution
    channels = np.rint(np.minimum((channel_base / 2) / cutoffs, channel_max))
    channels[-1] = img_channels
    return {"cutoffs": cutoffs, "stopbands": stopbands, "sampling_rates": rates, "half_widths": half_widths,
            "sizes": sizes, "channels": channels}


class SynthesisNetwork(nn.Module):
    def __init__(self, w_dim: int, img_resolution: int, *, channel_base: int, channel_max: int, num_layers: int = 14,
                 num_critical: int = 2, first_cutoff: float = 2.0, first_stopband: float = 2 ** 2.1,
                 last_stopband_rel: float = 2 ** 0.3, margin_size: int = 10, output_scale: float = 0.25,
                 conv_kernel: int = 3, filter_size: int = 6, lrelu_upsampling: int = 2,
                 use_radial_filters: bool = False, conv_clamp: float | None = 256, img_channels: int = 3):
        super().__init__()
        self.w_dim, self.img_resolution, self.num_layers = w_dim, img_resolution, num_layers
        self.num_ws = num_layers + 2  # input + layers + ToRGB
        self.output_scale = output_scale
        s = layer_specs(img_resolution, channel_base=channel_base, channel_max=channel_max, num_layers=num_layers,
                        num_critical=num_critical, first_cutoff=first_cutoff, first_stopband=first_stopband,
                        last_stopband_rel=last_stopband_rel, margin_size=margin_size, img_channels=img_channels)
        if s["channels"][:-1].min() < 1:
            raise ValueError(f"StyleGAN3: channel_base {channel_base} leaves a layer without channels at "
                             f"{img_resolution} px; raise channel_base")
        self.specs = s
        self.input = SynthesisInput(w_dim, int(s["channels"][0]), int(s["sizes"][0]), s["sampling_rates"][0],
                                    s["cutoffs"][0])
        self.layers = nn.ModuleList()
        for i in range(num_layers + 1):
            p = max(i - 1, 0)
            self.layers.append(SynthesisLayer(
                w_dim, is_torgb=i == num_layers, is_critically_sampled=i >= num_layers - num_critical,
                in_channels=int(s["channels"][p]), out_channels=int(s["channels"][i]),
                in_size=int(s["sizes"][p]), out_size=int(s["sizes"][i]),
                in_sampling_rate=int(s["sampling_rates"][p]), out_sampling_rate=int(s["sampling_rates"][i]),
                in_cutoff=float(s["cutoffs"][p]), out_cutoff=float(s["cutoffs"][i]),
                in_half_width=float(s["half_widths"][p]), out_half_width=float(s["half_widths"][i]),
                conv_kernel=conv_kernel, filter_size=filter_size, lrelu_upsampling=lrelu_upsampling,
                use_radial_filters=use_radial_filters, conv_clamp=conv_clamp))

    def forward(self, ws: torch.Tensor, update_emas: bool = False) -> torch.Tensor:
        if ws.ndim != 3 or ws.shape[1] != self.num_ws or ws.shape[2] != self.w_dim:
            raise ValueError(f"synthesis expects ws of shape (n, {self.num_ws}, {self.w_dim}), got {tuple(ws.shape)}")
        w = ws.unbind(dim=1)
        x = self.input(w[0])
        for layer, wi in zip(self.layers, w[1:]):
            x = layer(x, wi, update_emas=update_emas)
        return x * self.output_scale if self.output_scale != 1 else x


class Generator(nn.Module):
    """Mapping (StyleGAN2's) + alias-free synthesis. One forward for sampling, training and inversion (given ws),
    with the keyword interface of fewgan's StyleGAN2 Generator (noise_mode is accepted and unused: no noise)."""

    def __init__(self, z_dim: int, w_dim: int, img_resolution: int, *, mapping_layers: int,
                 mapping_lr_multiplier: float, w_avg_beta: float, **synthesis_kwargs):
        super().__init__()
        self.z_dim, self.w_dim, self.img_resolution = z_dim, w_dim, img_resolution
        self.synthesis = SynthesisNetwork(w_dim, img_resolution, **synthesis_kwargs)
        self.num_ws = self.synthesis.num_ws
        self.mapping = MappingNetwork(z_dim, w_dim, self.num_ws, mapping_layers, mapping_lr_multiplier, w_avg_beta)
        self.register_buffer("pl_mean", torch.zeros([]))  # path length (off in StyleGAN3; the parent's loss reads it)

    def set_magnitude_ema_beta(self, beta: float) -> None:
        for layer in self.synthesis.layers:
            layer.magnitude_ema_beta = float(beta)

    def forward(self, z: torch.Tensor | None = None, *, ws: torch.Tensor | None = None, truncation_psi: float = 1.0,
                truncation_cutoff: int | None = None, noise_mode: str = "none", style_mixing_prob: float = 0.0,
                return_ws: bool = False, update_emas: bool = False):
        if noise_mode not in ("random", "const", "none"):
            raise ValueError(f"noise_mode must be 'random', 'const' or 'none', got {noise_mode!r}")
        if update_emas and any(L.magnitude_ema_beta is None for L in self.synthesis.layers):
            raise RuntimeError("StyleGAN3: magnitude_ema_beta is unset; call model.setup(TrainContext(...)) before "
                               "training (it depends on the batch size)")
        if ws is None:
            if z is None:
                raise ValueError("Generator needs z or ws")
            with torch.autocast(device_type=z.device.type, enabled=False):  # the reference's mapping runs in fp32
                ws = self.mapping(z.float(), update_w_avg=update_emas)
            if truncation_psi != 1.0:
                cut = self.num_ws if truncation_cutoff is None else truncation_cutoff
                ws = torch.cat([self.mapping.w_avg.lerp(ws[:, :cut], truncation_psi), ws[:, cut:]], dim=1)
            if style_mixing_prob > 0:  # loss.py run_G (off in StyleGAN3's configs; kept as a switch)
                cutoff = int(torch.randint(1, self.num_ws, ()).item())
                use = bool((torch.rand(()) < style_mixing_prob).item())
                with torch.autocast(device_type=z.device.type, enabled=False):
                    ws2 = self.mapping(torch.randn_like(z, dtype=torch.float32), update_w_avg=False)
                if use:
                    ws = torch.cat([ws[:, :cutoff], ws2[:, cutoff:]], dim=1)
        img = self.synthesis(ws, update_emas=update_emas)
        return (img, ws) if return_ws else img
