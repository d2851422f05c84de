"""BigGAN (Brock, Donahue & Simonyan, ICLR 2019) as a fewgan GANModel, after ajbrock/BigGAN-PyTorch.

Networks: `fewgan.models.biggan.nets`. Hyperparameters: params/models/biggan.yaml (the only source of
defaults; schema `fewgan.models.biggan.spec`).

Latents: z ~ N(0, I) of size z_chunk * (number of G blocks + 1). Conditional models (num_classes > 1)
carry the class index as one extra last column (float), so a latent is (n, z_dim + 1); `generate`,
`synthesize` split it. Unconditional models (num_classes <= 1) use latents (n, z_dim) and ONE learned
class: the networks are the reference's with n_classes = 1 (G's shared embedding is a learned 128-d
vector fed to every conditional BatchNorm with the z chunks; D's projection term uses one learned,
spectrally normalised vector), i.e. what the reference code does when given a single class.

Loss: hinge (losses.py). D step: fakes generated without grad for uniformly drawn classes (the latent's
class column), one D forward on [fakes; reals] concatenated as BigGAN.py G_D does (so spectral norm makes
one power iteration per step), augmented together (DiffAugment-biggan's order). G step: -mean(D(G(z), y)).

Orthogonal regularisation (paper Sec. 3.1, off-diagonal variant): the reference (utils.ortho) adds
beta * 2 (W W^T * (1 - I)) W to the gradient of every G parameter with >= 2 dimensions except the shared
embedding (W = param reshaped to (rows, -1)). Here it is a term of G's loss whose value is
(beta / 2) * sum ||W W^T * (1 - I)||_F^2 and whose backward returns exactly that closed-form gradient,
so the update equals the reference's (summed into .grad by autograd instead of added after backward).
For tall matrices (rows > columns, e.g. the first linear layer, 24576 x 20 at 128 px) the same value and
gradient are computed through the small Gram matrix W^T W: ||W W^T||^2 - sum_i |w_i|^4 and
2 (W (W^T W) - diag(|w_i|^2) W), which avoids the reference's rows x rows matrix.

EMA (utils.ema): decay `ema_decay` (0.9999); before iteration `ema_start` the EMA copies G (beta = 0).
The reference counts iterations from 1 when updating, so step s (0-based) is its itr s + 1.

Truncation trick (paper Sec. 3.1): z drawn from a truncated normal (values with |z| > threshold
resampled) only when the model is in eval mode and cfg `truncation` is not null; training latents never.
"""

from __future__ import annotations

from typing import Any, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from fewgan.models.base import Augment, GANModel, LossLogs, register_model
from fewgan.models.biggan.nets import SUPPORTED_RESOLUTIONS, Discriminator, Generator
from fewgan.models.progan.model import validate_cfg
from fewgan.models.biggan.spec import SCHEMA

#: G parameter names that the orthogonal regulariser skips besides 1-d ones (train_fns.py blacklist)
ORTHO_SKIP = ("shared.weight",)


def _unwrap(module: nn.Module) -> nn.Module:
    """The model inside a DDP / DataParallel wrapper (for attribute access only, never for forward)."""
    return getattr(module, "module", module)


def ortho_value_and_grad(param: torch.Tensor, beta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """((beta/2) ||W W^T * (1 - I)||_F^2, beta * 2 (W W^T * (1 - I)) W) for W = param viewed as (rows, -1)."""
    w = param.detach()
    w = (w if w.dtype in (torch.float32, torch.float64) else w.float()).reshape(param.shape[0], -1)
    rows, cols = w.shape
    if rows <= cols:  # the reference's form (utils.ortho)
        off = (w @ w.t()) * (1.0 - torch.eye(rows, device=w.device, dtype=w.dtype))
        value = off.square().sum()
        grad = 2 * (off @ w)
    else:  # same maths through the cols x cols Gram matrix
        gram = w.t() @ w
        sq = w.square().sum(dim=1)  # |w_i|^2 = diagonal of W W^T
        value = gram.square().sum() - sq.square().sum()
        grad = 2 * (w @ gram - sq[:, None] * w)
    return (beta / 2) * value, (beta * grad).reshape(param.shape).to(param.dtype)


class _OrthoReg(torch.autograd.Function):
    """Sum of `ortho_value_and_grad` values; backward returns the closed-form gradients."""

    @staticmethod
    def forward(ctx, beta: float, *params: torch.Tensor) -> torch.Tensor:
        total = torch.zeros((), device=params[0].device, dtype=torch.float32)
        grads = []
        with torch.autocast(device_type=params[0].device.type, enabled=False):
            for p in params:
                value, grad = ortho_value_and_grad(p, beta)
                total = total + value
                grads.append(grad)
        ctx.save_for_backward(*grads)
        return total

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        # grad_out is 1 when the term is added to the loss: x * 1.0 == x exactly, the closed form passes unchanged
        return (None, *(g * grad_out.to(g.dtype) for g in ctx.saved_tensors))


def ortho_parameters(G: nn.Module) -> list[torch.Tensor]:
    """G's parameters that the reference regularises: >= 2 dimensions, not the shared embedding."""
    return [p for name, p in G.named_parameters() if p.ndim >= 2 and name not in ORTHO_SKIP and p.requires_grad]


def orthogonal_regularization(G: nn.Module, beta: float) -> torch.Tensor:
    params = ortho_parameters(G)
    return _OrthoReg.apply(float(beta), *params)


def truncated_normal(n: int, dim: int, threshold: float, *, generator: torch.Generator | None,
                     device: torch.device | str | None) -> torch.Tensor:
    """N(0, I) with every value whose magnitude exceeds `threshold` redrawn until none does (paper Sec. 3.1)."""
    z = torch.randn(n, dim, generator=generator, device=device)
    while True:
        bad = z.abs() > threshold
        k = int(bad.sum())
        if k == 0:
            return z
        z[bad] = torch.randn(k, generator=generator, device=z.device)


@register_model("biggan")
class BigGAN(GANModel):
    """Residual SN G/D, hierarchical z, shared embedding + conditional BN, projection D, hinge, ortho reg."""

    config_schema: dict[str, Any] = SCHEMA
    #: average BatchNorm running statistics (the reference's EMA averages the whole state_dict);
    #: spectral-norm vectors are copied (train/ema.py)
    ema_buffers = True

    def __init__(self, cfg: Mapping[str, Any], resolution: int, num_classes: int = 0):
        cfg = validate_cfg(cfg, SCHEMA, "biggan")
        super().__init__(cfg, resolution)
        if self.resolution not in SUPPORTED_RESOLUTIONS:
            raise ValueError(f"BigGAN supports resolutions {SUPPORTED_RESOLUTIONS} (BigGAN.py arch tables), got "
                             f"{resolution}; pick one of them for this model in params")
        c = self.cfg
        self.num_classes = int(num_classes)
        n_embed = self.num_classes if self.conditional else 1
        self.d_steps = int(c["d_steps"])
        self.ema_decay = float(c["ema_decay"])
        self.G = Generator(self.resolution, ch=int(c["g_ch"]), z_chunk=int(c["z_chunk"]),
                           shared_dim=int(c["shared_dim"]), n_classes=n_embed, attention=c["attention"],
                           bn_eps=float(c["bn_eps"]), sn_eps=float(c["sn_eps"]))
        self.D = Discriminator(self.resolution, ch=int(c["d_ch"]), n_classes=n_embed, attention=c["attention"],
                               sn_eps=float(c["sn_eps"]))
        self.z_dim = self.G.z_dim

    @property
    def conditional(self) -> bool:
        """Class-conditional iff the dataset has more than one class (one class = the reference's n_classes=1)."""
        return self.num_classes > 1

    # ---- latents ---------------------------------------------------------------------------------
    def _check_labels(self, labels: torch.Tensor, n: int) -> torch.Tensor:
        labels = torch.as_tensor(labels).reshape(-1)
        if labels.shape[0] != n:
            raise ValueError(f"BigGAN: {labels.shape[0]} labels for {n} latents")
        if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= self.num_classes):
            raise ValueError(f"BigGAN: class labels must lie in 0..{self.num_classes - 1}, got "
                             f"{int(labels.min())}..{int(labels.max())}")
        return labels

    def truncation_in_force(self) -> float | None:
        t = self.cfg["truncation"]
        return None if (self.training or t is None) else float(t)

    def sample_latents(self, n: int, *, generator: torch.Generator | None = None,
                       device: torch.device | str | None = None, labels: torch.Tensor | None = None) -> torch.Tensor:
        """(n, z_dim) unconditional; (n, z_dim + 1) conditional, last column = class index (uniform when
        `labels` is None, drawn with `generator` after z). Truncated only in eval mode with cfg truncation."""
        t = self.truncation_in_force()
        if t is None:
            z = torch.randn(n, self.z_dim, generator=generator, device=device)
        else:
            z = truncated_normal(n, self.z_dim, t, generator=generator, device=device)
        if not self.conditional:
            return z
        if labels is None:
            y = torch.randint(self.num_classes, (n,), generator=generator, device=z.device)
        else:
            y = self._check_labels(labels, n).to(z.device)
        return torch.cat([z, y.to(z.dtype)[:, None]], dim=1)

    def split_latent(self, latent: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(z, class indices as LongTensor); the class column is detached (never optimised)."""
        width = self.z_dim + (1 if self.conditional else 0)
        if latent.ndim != 2 or latent.shape[1] != width:
            raise ValueError(f"BigGAN latent must be (n, {width}) "
                             f"({'z + class column' if self.conditional else 'z'}), got {tuple(latent.shape)}")
        if not self.conditional:
            return latent, torch.zeros(latent.shape[0], dtype=torch.long, device=latent.device)
        return latent[:, : self.z_dim], latent[:, -1].detach().round().long()

    def generate(self, G: nn.Module, latent: torch.Tensor) -> torch.Tensor:
        z, y = self.split_latent(latent)
        return G(z, y)

    # ---- truncation for `fewgan sample` (never for metrics) ---------------------------------------------
    truncation_meaning = "threshold of BigGAN's truncated normal: |z| values above psi are redrawn (paper Sec. 3.1)"

    def truncated_latents(self, n: int, psi: float, *, generator: torch.Generator | None = None,
                          device: torch.device | str | None = None, labels: torch.Tensor | None = None) -> torch.Tensor:
        if not psi > 0:
            raise ValueError(f"BigGAN truncation threshold psi must be > 0, got {psi}")
        z = truncated_normal(n, self.z_dim, float(psi), generator=generator, device=device)
        if not self.conditional:
            return z
        y = (torch.randint(self.num_classes, (n,), generator=generator, device=z.device) if labels is None
             else self._check_labels(labels, n).to(z.device))
        return torch.cat([z, y.to(z.dtype)[:, None]], dim=1)

    def generate_truncated(self, G: nn.Module, z: torch.Tensor, psi: float) -> torch.Tensor:
        return self.generate(G, z)  # the truncation is in the latents (truncated_latents)

    def inversion_start(self, G: nn.Module, n: int, *, generator: torch.Generator | None = None,
                        device: torch.device | str | None = None, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Zeros in z (base default) with the class column set to `labels` (uniform draws when None)."""
        z = torch.zeros(n, self.z_dim, device=device)
        if not self.conditional:
            return z
        if labels is None:
            dev = generator.device if generator is not None else z.device
            y = torch.randint(self.num_classes, (n,), generator=generator, device=dev).to(z.device)
        else:
            y = self._check_labels(labels, n).to(z.device)
        return torch.cat([z, y.to(z.dtype)[:, None]], dim=1)

    def synthesize(self, G: nn.Module, latent: torch.Tensor) -> torch.Tensor:
        """Differentiable in z only: the class column is detached, so its gradient is zero."""
        return self.generate(G, latent)

    # ---- training --------------------------------------------------------------------------------
    def make_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        c = self.cfg
        betas, eps = (float(c["betas"][0]), float(c["betas"][1])), float(c["adam_eps"])
        return {"G": torch.optim.Adam(self.G.parameters(), lr=float(c["g_lr"]), betas=betas, eps=eps),
                "D": torch.optim.Adam(self.D.parameters(), lr=float(c["d_lr"]), betas=betas, eps=eps)}

    def _real_labels(self, real_labels: torch.Tensor | None, n: int, device: torch.device) -> torch.Tensor:
        if not self.conditional:
            return torch.zeros(n, dtype=torch.long, device=device)
        if real_labels is None:
            raise ValueError(f"BigGAN is conditional ({self.num_classes} classes): discriminator_loss needs "
                             "real_labels (the real images' class indices)")
        return self._check_labels(real_labels, n).to(device=device, dtype=torch.long)

    def discriminator_loss(self, G: nn.Module, D: nn.Module, real: torch.Tensor, z: torch.Tensor, step: int,
                           augment: Augment, real_labels: torch.Tensor | None = None) -> tuple[torch.Tensor, LossLogs]:
        zz, y_fake = self.split_latent(z)
        y_real = self._real_labels(real_labels, real.shape[0], real.device)
        with torch.no_grad():
            fake = G(zz, y_fake)
        logits = D(augment(torch.cat([fake, real], dim=0)), torch.cat([y_fake, y_real], dim=0))
        d_fake, d_real = torch.split(logits, [fake.shape[0], real.shape[0]])
        loss_real = F.relu(1.0 - d_real).mean()  # losses.py loss_hinge_dis
        loss_fake = F.relu(1.0 + d_fake).mean()
        loss = loss_real + loss_fake
        return loss, {"loss_D": float(loss.detach()), "loss_D_real": float(loss_real.detach()),
                      "loss_D_fake": float(loss_fake.detach()), "D_real": float(d_real.detach().mean()),
                      "D_fake": float(d_fake.detach().mean())}

    def generator_loss(self, G: nn.Module, D: nn.Module, z: torch.Tensor, step: int,
                       augment: Augment) -> tuple[torch.Tensor, LossLogs]:
        zz, y = self.split_latent(z)
        loss_adv = -D(augment(G(zz, y)), y).mean()  # losses.py loss_hinge_gen
        logs: LossLogs = {"loss_G_adv": float(loss_adv.detach())}
        loss = loss_adv
        beta = float(self.cfg["ortho_beta"])
        if beta > 0:
            reg = orthogonal_regularization(_unwrap(G), beta)
            loss = loss + reg
            logs["loss_G_ortho"] = float(reg.detach())
        logs["loss_G"] = float(loss.detach())
        return loss, logs

    def ema_beta(self, step: int, batch_size: int) -> float:
        """utils.ema.update(itr): decay 0 (copy) while itr < ema_start, else ema_decay; itr = step + 1."""
        return 0.0 if step + 1 < int(self.cfg["ema_start"]) else self.ema_decay

    # ---- bookkeeping ------------------------------------------------------------------------------
    def describe(self) -> dict[str, Any]:
        d = super().describe()
        c = self.cfg
        G, D = self.G, self.D
        d.update({"z_dim": self.z_dim, "z_chunk": G.z_chunk, "num_classes": self.num_classes,
                  "conditional": self.conditional,
                  "class_embedding": "shared, one per class" if self.conditional
                  else "one learned class (reference with n_classes=1)",
                  "attention_G": G.resolutions[G.attn_index] if G.attn_index is not None else None,
                  "attention_D": D.resolutions[D.attn_index] if D.attn_index is not None else None,
                  "d_steps": self.d_steps, "ortho_beta": c["ortho_beta"],
                  "ema": {"decay": c["ema_decay"], "start_iteration": c["ema_start"]},
                  "truncation": self.truncation_in_force(), "truncation_cfg": c["truncation"],
                  "augment_policy": c["augment_policy"]})
        return d
