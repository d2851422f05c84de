"""BigGAN networks (Brock et al., ICLR 2019), structured like ajbrock/BigGAN-PyTorch BigGAN.py/layers.py.

Written independently from the paper and the reference's architecture tables; not copied.

- Spectral norm on every conv/linear of G and D and on D's class embedding (torch's parametrization:
  the power-iteration vectors are buffers, one iteration per training forward, eps from cfg), so the
  parameter counts equal the reference's. G's shared class embedding is not normalised (BigGAN.py).
- Orthogonal init of every conv/linear/embedding weight (launch script --G_init ortho --D_init ortho),
  PyTorch's default init for biases, learnable attention gain gamma = 0.
- G: hierarchical z (one chunk for the first linear layer, one per block), a shared class embedding
  concatenated with each z chunk ([embedding, chunk], as BigGAN.py) feeding the conditional BatchNorm of
  every residual up-block (gain = 1 + SNLinear(cond), bias = SNLinear(cond), both bias-free);
  up-block: CBN -> ReLU -> nearest x2 -> conv3x3 -> CBN -> ReLU -> conv3x3, shortcut nearest x2 -> conv1x1;
  output BN -> ReLU -> conv3x3 -> tanh.
- D: residual down-blocks (wide: hidden = out channels; pre-activation ReLU except in the first block;
  conv3x3 -> ReLU -> conv3x3 -> avgpool 2; shortcut conv1x1 then pool, or pool then conv1x1 in the first
  block), ReLU, global sum pooling, linear + projection <embed(y), h>.
- Self-attention (SAGAN non-local block as in the reference code): theta/phi C/8, g C/2 channels, phi and g
  max-pooled 2x2, softmax over the pooled positions, 1x1 conv back to C, out = gamma * o + x; placed after
  the first block whose output has the `attention` resolution (the reference's tables place it by
  resolution; its 32-px D table labels every block 16 px and so adds one attention block per D block, a quirk
  not reproduced: at most one attention block per network here).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

SUPPORTED_RESOLUTIONS = (32, 64, 128, 256)

#: channel multipliers per block (BigGAN.py G_arch / D_arch), times g_ch / d_ch
G_ARCH: dict[int, tuple[list[int], list[int]]] = {
    256: ([16, 16, 8, 8, 4, 2], [16, 8, 8, 4, 2, 1]),
    128: ([16, 16, 8, 4, 2], [16, 8, 4, 2, 1]),
    64: ([16, 16, 8, 4], [16, 8, 4, 2]),
    32: ([4, 4, 4], [4, 4, 4]),
}
#: D: (in multipliers after the RGB input, out multipliers, downsample flags)
D_ARCH: dict[int, tuple[list[int], list[int], list[bool]]] = {
    256: ([1, 2, 4, 8, 8, 16], [1, 2, 4, 8, 8, 16, 16], [True] * 6 + [False]),
    128: ([1, 2, 4, 8, 16], [1, 2, 4, 8, 16, 16], [True] * 5 + [False]),
    64: ([1, 2, 4, 8], [1, 2, 4, 8, 16], [True] * 4 + [False]),
    32: ([4, 4, 4], [4, 4, 4, 4], [True, True, False, False]),
}
BOTTOM_WIDTH = 4  # BigGAN.py bottom_width=4
BN_MOMENTUM = 0.1  # layers.py ccbn/bn momentum=0.1


def _sn(module: nn.Module, eps: float, init: bool) -> nn.Module:
    if init:
        nn.init.orthogonal_(module.weight)
    return spectral_norm(module, n_power_iterations=1, eps=eps)


def sn_conv(cin: int, cout: int, k: int, eps: float, init: bool, bias: bool = True) -> nn.Module:
    return _sn(nn.Conv2d(cin, cout, k, padding=k // 2, bias=bias), eps, init)


def sn_linear(fin: int, fout: int, eps: float, init: bool, bias: bool = True) -> nn.Module:
    return _sn(nn.Linear(fin, fout, bias=bias), eps, init)


def attention_index(resolutions: list[int], attention: int | None) -> int | None:
    """Index of the first block whose output resolution is `attention` (None: no attention block)."""
    if attention is None:
        return None
    return next((i for i, r in enumerate(resolutions) if r == attention), None)


class Attention(nn.Module):
    """SAGAN non-local block with the reference code's channel reductions."""

    def __init__(self, ch: int, eps: float, init: bool):
        super().__init__()
        if ch < 8:
            raise ValueError(f"BigGAN attention needs at least 8 channels (C/8 >= 1), got {ch}: raise g_ch/d_ch or "
                             "move/disable `attention` in params/models/biggan.yaml")
        self.ch = ch
        self.theta = sn_conv(ch, ch // 8, 1, eps, init, bias=False)
        self.phi = sn_conv(ch, ch // 8, 1, eps, init, bias=False)
        self.g = sn_conv(ch, ch // 2, 1, eps, init, bias=False)
        self.o = sn_conv(ch // 2, ch, 1, eps, init, bias=False)
        self.gamma = nn.Parameter(torch.tensor(0.0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        theta = self.theta(x).view(n, c // 8, h * w)
        phi = F.max_pool2d(self.phi(x), 2).view(n, c // 8, h * w // 4)
        g = F.max_pool2d(self.g(x), 2).view(n, c // 2, h * w // 4)
        beta = F.softmax(torch.bmm(theta.transpose(1, 2), phi), dim=-1)  # (n, hw, hw/4)
        o = self.o(torch.bmm(g, beta.transpose(1, 2)).view(n, c // 2, h, w))
        return self.gamma * o + x


class ConditionalBatchNorm(nn.Module):
    """BatchNorm without affine parameters; per-sample gain 1 + W_g c and bias W_b c (layers.py ccbn)."""

    def __init__(self, channels: int, cond_dim: int, bn_eps: float, sn_eps: float, init: bool):
        super().__init__()
        self.gain = sn_linear(cond_dim, channels, sn_eps, init, bias=False)
        self.bias = sn_linear(cond_dim, channels, sn_eps, init, bias=False)
        self.eps = bn_eps
        self.register_buffer("running_mean", torch.zeros(channels))
        self.register_buffer("running_var", torch.ones(channels))

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        gain = (1.0 + self.gain(cond)).view(cond.shape[0], -1, 1, 1)
        bias = self.bias(cond).view(cond.shape[0], -1, 1, 1)
        out = F.batch_norm(x, self.running_mean, self.running_var, None, None, self.training, BN_MOMENTUM, self.eps)
        return out * gain + bias


class GBlock(nn.Module):
    def __init__(self, cin: int, cout: int, cond_dim: int, bn_eps: float, sn_eps: float, init: bool):
        super().__init__()
        self.bn1 = ConditionalBatchNorm(cin, cond_dim, bn_eps, sn_eps, init)
        self.conv1 = sn_conv(cin, cout, 3, sn_eps, init)
        self.bn2 = ConditionalBatchNorm(cout, cond_dim, bn_eps, sn_eps, init)
        self.conv2 = sn_conv(cout, cout, 3, sn_eps, init)
        self.conv_sc = sn_conv(cin, cout, 1, sn_eps, init)  # every G block upsamples: learnable shortcut

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        h = F.interpolate(F.relu(self.bn1(x, cond)), scale_factor=2, mode="nearest")
        h = self.conv2(F.relu(self.bn2(self.conv1(h), cond)))
        return h + self.conv_sc(F.interpolate(x, scale_factor=2, mode="nearest"))


class Generator(nn.Module):
    def __init__(self, resolution: int, *, ch: int, z_chunk: int, shared_dim: int, n_classes: int,
                 attention: int | None, bn_eps: float, sn_eps: float, init: bool = True):
        super().__init__()
        if resolution not in G_ARCH:
            raise ValueError(f"BigGAN supports resolutions {SUPPORTED_RESOLUTIONS}, got {resolution}")
        cin, cout = ([ch * m for m in ms] for ms in G_ARCH[resolution])
        self.n_blocks = len(cout)
        self.z_chunk = z_chunk
        self.z_dim = z_chunk * (self.n_blocks + 1)  # one chunk for the linear layer + one per block
        self.n_classes = n_classes
        self.resolutions = [BOTTOM_WIDTH * 2 ** (i + 1) for i in range(self.n_blocks)]
        self.shared = nn.Embedding(n_classes, shared_dim)
        if init:
            nn.init.orthogonal_(self.shared.weight)
        self.linear = sn_linear(z_chunk, cin[0] * BOTTOM_WIDTH ** 2, sn_eps, init)
        cond = shared_dim + z_chunk
        self.blocks = nn.ModuleList(GBlock(a, b, cond, bn_eps, sn_eps, init) for a, b in zip(cin, cout, strict=True))
        self.attn_index = attention_index(self.resolutions, attention)
        self.attn = Attention(cout[self.attn_index], sn_eps, init) if self.attn_index is not None else None
        self.out_bn = nn.BatchNorm2d(cout[-1], eps=1e-5, momentum=BN_MOMENTUM)  # layers.bn: gain 1, bias 0
        self.out_conv = sn_conv(cout[-1], 3, 3, sn_eps, init)

    def forward(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Images in [-1, 1] from z (n, z_dim) and class indices y (n,) (LongTensor)."""
        if z.ndim != 2 or z.shape[1] != self.z_dim:
            raise ValueError(f"BigGAN generator expects z of shape (n, {self.z_dim}), got {tuple(z.shape)}")
        emb = self.shared(y)
        zs = torch.split(z, self.z_chunk, dim=1)
        h = self.linear(zs[0]).view(z.shape[0], -1, BOTTOM_WIDTH, BOTTOM_WIDTH)
        for i, block in enumerate(self.blocks):
            h = block(h, torch.cat([emb, zs[i + 1]], dim=1))
            if i == self.attn_index:
                h = self.attn(h)
        return torch.tanh(self.out_conv(F.relu(self.out_bn(h))))


class DBlock(nn.Module):
    def __init__(self, cin: int, cout: int, preactivation: bool, down: bool, sn_eps: float, init: bool):
        super().__init__()
        self.preactivation, self.down = preactivation, down
        self.conv1 = sn_conv(cin, cout, 3, sn_eps, init)  # wide D: hidden channels = out channels
        self.conv2 = sn_conv(cout, cout, 3, sn_eps, init)
        self.conv_sc = sn_conv(cin, cout, 1, sn_eps, init) if (cin != cout or down) else None

    def _shortcut(self, x: torch.Tensor) -> torch.Tensor:
        if self.preactivation:
            if self.conv_sc is not None:
                x = self.conv_sc(x)
            return F.avg_pool2d(x, 2) if self.down else x
        if self.down:
            x = F.avg_pool2d(x, 2)
        return self.conv_sc(x) if self.conv_sc is not None else x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(x) if self.preactivation else x
        h = self.conv2(F.relu(self.conv1(h)))
        if self.down:
            h = F.avg_pool2d(h, 2)
        return h + self._shortcut(x)


class Discriminator(nn.Module):
    def __init__(self, resolution: int, *, ch: int, n_classes: int, attention: int | None, sn_eps: float,
                 init: bool = True):
        super().__init__()
        if resolution not in D_ARCH:
            raise ValueError(f"BigGAN supports resolutions {SUPPORTED_RESOLUTIONS}, got {resolution}")
        ins, outs, downs = D_ARCH[resolution]
        cin, cout = [3] + [ch * m for m in ins], [ch * m for m in outs]
        self.resolution = resolution
        self.resolutions = []
        r = resolution
        for d in downs:
            r = r // 2 if d else r
            self.resolutions.append(r)
        self.blocks = nn.ModuleList(DBlock(a, b, i > 0, d, sn_eps, init)
                                    for i, (a, b, d) in enumerate(zip(cin, cout, downs, strict=True)))
        self.attn_index = attention_index(self.resolutions, attention)
        self.attn = Attention(cout[self.attn_index], sn_eps, init) if self.attn_index is not None else None
        self.linear = sn_linear(cout[-1], 1, sn_eps, init)
        self.embed = _sn(nn.Embedding(n_classes, cout[-1]), sn_eps, init)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Logits (n, 1) for images (n, 3, R, R) of classes y (n,)."""
        r = self.resolution
        if x.ndim != 4 or tuple(x.shape[1:]) != (3, r, r):
            raise ValueError(f"BigGAN discriminator expects images (n, 3, {r}, {r}), got {tuple(x.shape)}")
        h = x
        for i, block in enumerate(self.blocks):
            h = block(h)
            if i == self.attn_index:
                h = self.attn(h)
        h = F.relu(h).sum(dim=[2, 3])  # global sum pooling (SN-GAN)
        return self.linear(h) + (self.embed(y) * h).sum(dim=1, keepdim=True)


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())

