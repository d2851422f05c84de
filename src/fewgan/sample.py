"""`fewgan sample`: images from a trained run's generator, reproducibly, with provenance.

    fewgan sample runs/<dataset>/<model>/s<seed> [-n 16] [--seed 0] [--format grid|png|both]
                  [--class NAME] [--psi 0.7] [--interpolate 8 [--gif]] [--mix 4] [--iteration N] [--out DIR]

- The generator is the run's selected one (`select/generator.pt`, checked against `select/best.json`'s sha256),
  or with `--iteration N` the training snapshot of that iteration. Either is checked against the run's
  `train/run.json` (model, dataset, resolution): a snapshot of another run is refused with both paths named.
- Latents are drawn from a CPU generator seeded with `--seed`, and per-pixel noise (StyleGAN2, FastGAN)
  from torch's global RNG seeded from `--seed` inside `fork_rng`: the same command gives the same images.
- `--class`: the class (name from run.json or index) of a class-conditional model.
- `--psi`: the truncation trick where the model has one (capability "truncation"; what psi means for the
  model is recorded: StyleGAN's w-average interpolation, BigGAN's truncated-normal threshold).
- `--interpolate K`: K rows, each a linear path between two latents (`--steps` images); `--gif` also writes
  an animated GIF of the first path there and back.
- `--psi-sweep 1,0.8,0.6`: the fidelity/diversity trade-off of the truncation trick: for each psi, `--sweep-n`
  fakes, their SWD against the run's training images (`data/curated/<dataset>` with `data/splits/<dataset>`,
  the pixel metric that needs no pretrained network) and their MS-SSIM over random pairs (higher = less
  diverse; the real set's own MS-SSIM drawn beside it): `truncation.png` and `truncation.csv`.
- `--mix K`: FastGAN style mixing (capability "mixing"): a (K+1) x (K+1) grid whose first row holds K style
  images, first column K content images, and cell (i, j) content i with the style of j.
Outputs go to `<run>/sample/` (or `--out`), with `sample.json`: run, snapshot (path, iteration, sha256),
seed, psi and its meaning, class, what each file holds, and the command.
"""

from __future__ import annotations

import io
import logging
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from fewgan.images import grid, png_bytes, to_uint8
from fewgan.io import atomic_write_bytes, atomic_write_json, read_json, sha256_file

log = logging.getLogger(__name__)

#: images per forward pass
CHUNK = 16


class SampleError(ValueError):
    """A run folder or a snapshot that cannot be sampled as asked (the message names the file)."""


@dataclass
class Source:
    run_dir: Path
    snapshot: Path
    iteration: int | None
    sha256: str
    run: dict


def find_generator(run_dir: Path, iteration: int | None = None) -> Source:
    """The run's selected generator (or the snapshot of `iteration`), checked against best.json and run.json."""
    run_dir = Path(run_dir)
    run_json = run_dir / "train" / "run.json"
    if not run_json.is_file():
        raise SampleError(f"{run_json}: missing; give a run folder runs/<dataset>/<model>/s<seed> whose training "
                          "finished (`fewgan train`)")
    run = read_json(run_json)
    if iteration is None:
        path = run_dir / "select" / "generator.pt"
        best_json = run_dir / "select" / "best.json"
        if not path.is_file() or not best_json.is_file():
            raise SampleError(f"{path}: no selected generator; run `fewgan select` for this run, or pick a "
                              "training snapshot with --iteration N")
        best = read_json(best_json)
        digest = sha256_file(path)
        if best.get("sha256") and best["sha256"] != digest:
            raise SampleError(f"{path}: sha256 {digest[:12]}... differs from {best_json} ({str(best['sha256'])[:12]}...); "
                              "the file was replaced after selection - re-run `fewgan select`")
        it = best.get("iteration")
    else:
        path = run_dir / "train" / "snapshots" / f"snapshot_{int(iteration):07d}.pt"
        if not path.is_file():
            have = sorted(p.name for p in (run_dir / "train" / "snapshots").glob("snapshot_*.pt"))
            raise SampleError(f"{path}: no snapshot of iteration {iteration}; the run has {', '.join(have) or 'none'}")
        digest, it = sha256_file(path), int(iteration)
    return Source(run_dir, path, it, digest, run)


def load(source: Source, device: Any = "cpu"):
    """(model, generator network, snapshot metadata); refuses a snapshot that does not match run.json."""
    from fewgan.models.registry import load_snapshot

    gan, G, meta = load_snapshot(source.snapshot, device)
    run = source.run
    for key, have in (("model", meta.get("model")), ("dataset", meta.get("dataset")),
                      ("resolution", meta.get("resolution"))):
        want = run.get(key)
        if want is not None and have is not None and want != have:
            raise SampleError(f"{source.snapshot}: snapshot {key} {have!r} does not match "
                              f"{source.run_dir / 'train' / 'run.json'} ({want!r}); this snapshot belongs to another "
                              "run - sample from the run it came from")
    if source.iteration is not None and meta.get("iteration") not in (None, source.iteration):
        raise SampleError(f"{source.snapshot}: holds iteration {meta.get('iteration')}, expected {source.iteration}")
    return gan, G, meta


def class_label(gan, run: dict, cls: str | None) -> int | None:
    """The class index of `cls` (a name of run.json's class_index, or an index), None without a class."""
    if cls is None:
        return None
    if not gan.conditional:
        raise SampleError(f"--class {cls}: model {gan.name!r} of this run is unconditional "
                          f"({run.get('class_use', 'no classes')})")
    index = run.get("class_index") or {}
    if cls in index:
        return int(index[cls])
    if cls.isdigit() and int(cls) < gan.num_classes:
        return int(cls)
    raise SampleError(f"--class {cls}: not a class of this run (classes: {', '.join(index) or gan.num_classes})")


class Sampler:
    """Seeded latents and images of one generator."""

    def __init__(self, gan, G, seed: int, *, psi: float | None = None, label: int | None = None,
                 device: Any = "cpu"):
        self.gan, self.G, self.seed, self.psi, self.label = gan, G, int(seed), psi, label
        self.device = torch.device(device)
        self.gen = torch.Generator().manual_seed(self.seed)
        if psi is not None and "truncation" not in gan.capabilities:
            raise SampleError(f"--psi: model {gan.name!r} has no truncation trick (capabilities: "
                              f"{', '.join(sorted(gan.capabilities))})")

    def latents(self, n: int) -> torch.Tensor:
        labels = None if self.label is None else torch.full((n,), self.label, dtype=torch.long)
        if self.psi is not None:
            return self.gan.truncated_latents(n, self.psi, generator=self.gen, device="cpu", labels=labels)
        return self.gan.sample_latents(n, generator=self.gen, device="cpu", labels=labels)

    def images(self, z: torch.Tensor, z_style: torch.Tensor | None = None) -> torch.Tensor:
        """uint8 images of latents (noise seeded from the sampler's seed, the caller's RNG untouched)."""
        out = []
        dev = self.device
        devices = [dev.index or 0] if dev.type == "cuda" else []
        for i in range(0, z.shape[0], CHUNK):
            with torch.random.fork_rng(devices=devices), torch.inference_mode():
                torch.manual_seed((self.seed * 1_000_003 + i) % 2**63)
                zc = z[i:i + CHUNK].to(dev)
                if z_style is not None:
                    x = self.gan.generate_mixed(self.G, zc, z_style[i:i + CHUNK].to(dev))
                elif self.psi is not None:
                    x = self.gan.generate_truncated(self.G, zc, self.psi)
                else:
                    x = self.gan.generate(self.G, zc)
            out.append(to_uint8(x).cpu())
        return torch.cat(out)


def _interpolation(gan, sampler: Sampler, rows: int, steps: int) -> torch.Tensor:
    ends = sampler.latents(2 * rows).view(rows, 2, -1)
    w = torch.linspace(0, 1, steps).view(1, steps, 1)
    paths = (1 - w) * ends[:, :1] + w * ends[:, 1:]
    if gan.conditional:  # the class column is not interpolated: both ends carry the same class
        paths[..., -1] = ends[:, :1, -1]
    return paths.reshape(rows * steps, -1)


def _gif(frames: torch.Tensor, duration_ms: int = 120) -> bytes:
    from PIL import Image

    ims = [Image.fromarray(f.permute(1, 2, 0).numpy()) for f in frames]
    ims = ims + ims[-2:0:-1]  # there and back
    buf = io.BytesIO()
    ims[0].save(buf, format="GIF", save_all=True, append_images=ims[1:], duration=duration_ms, loop=0)
    return buf.getvalue()


def _mixing_grid(sampler: Sampler, k: int) -> torch.Tensor:
    if "mixing" not in sampler.gan.capabilities:
        raise SampleError(f"--mix: model {sampler.gan.name!r} has no style mixing (capabilities: "
                          f"{', '.join(sorted(sampler.gan.capabilities))})")
    content, style = sampler.latents(k), sampler.latents(k)
    c_img, s_img = sampler.images(content), sampler.images(style)
    mixed = sampler.images(content.repeat_interleave(k, 0), style.repeat(k, 1))
    blank = torch.full_like(c_img[:1], 255)
    rows = [torch.cat([blank, s_img])]
    for i in range(k):
        rows.append(torch.cat([c_img[i:i + 1], mixed[i * k:(i + 1) * k]]))
    return torch.cat(rows)


def psi_sweep(gan, G, psis: list[float], *, n: int, seed: int, label: int | None, reals: torch.Tensor | None,
              pairs: int = 200, device: Any = "cpu") -> list[dict]:
    """SWD x10^3 (against `reals`, when given) and MS-SSIM of `n` fakes at each psi (same seed for every psi)."""
    from fewgan.metrics.msssim import msssim_set
    from fewgan.metrics.swd import swd

    rows = []
    for psi in psis:
        s = Sampler(gan, G, seed, psi=psi, label=label, device=device)
        fakes = s.images(s.latents(n))
        row = {"psi": psi, "n_fake": n, "msssim_fake": msssim_set(fakes, pairs, seed)["msssim"]}
        row["swd_mean"] = swd(reals, fakes, seed=seed)["mean"] if reals is not None else None
        rows.append(row)
    return rows


def _sweep_figure(rows: list[dict], real_msssim: float | None, title: str, note: str) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from fewgan.report.figures import _footnote

    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    fig.subplots_adjust(left=0.12, right=0.86, top=0.9, bottom=0.16)
    psis = [r["psi"] for r in rows]
    ax.plot(psis, [r["msssim_fake"] for r in rows], marker="o", color="tab:blue", label="MS-SSIM of fakes")
    if real_msssim is not None:
        ax.axhline(real_msssim, ls="--", color="tab:blue", alpha=0.6, label="MS-SSIM of the real set")
    ax.set_xlabel("truncation psi")
    ax.set_ylabel("MS-SSIM (higher = less diverse)", color="tab:blue")
    if any(r["swd_mean"] is not None for r in rows):
        ax2 = ax.twinx()
        ax2.plot(psis, [r["swd_mean"] for r in rows], marker="s", color="tab:red", label="SWD×10³ vs train")
        ax2.set_ylabel("SWD×10³ vs training images (lower = closer)", color="tab:red")
        ax2.legend(loc="upper right", fontsize=8)
    ax.legend(loc="upper left", fontsize=8)
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    _footnote(fig, note)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return buf.getvalue()


def run(run_dir: Path, out_dir: Path | None = None, *, n: int = 16, seed: int = 0, fmt: str = "grid",
        cols: int | None = None, cls: str | None = None, psi: float | None = None, interpolate: int = 0,
        steps: int = 8, gif: bool = False, mix: int = 0, iteration: int | None = None,
        psi_sweep_values: list[float] | None = None, sweep_n: int = 100, data_dir: Path = Path("data"),
        device: str = "cpu", command: list[str] | None = None) -> dict:
    """Write the asked images and sample.json; return sample.json's content."""
    if n < 0 or interpolate < 0 or mix < 0 or steps < 2:
        raise SampleError("-n, --interpolate and --mix must be >= 0 and --steps >= 2")
    if fmt not in ("grid", "png", "both"):
        raise SampleError(f"--format {fmt!r}: grid | png | both")
    source = find_generator(Path(run_dir), iteration)
    gan, G, meta = load(source, device)
    label = class_label(gan, source.run, cls)
    out_dir = Path(out_dir) if out_dir is not None else source.run_dir / "sample"
    files: dict[str, str] = {}

    sampler = Sampler(gan, G, seed, psi=psi, label=label, device=device)
    if n:
        imgs = sampler.images(sampler.latents(n))
        c = cols or max(1, int(round(n ** 0.5)))
        if fmt in ("grid", "both"):
            atomic_write_bytes(out_dir / "samples.png", png_bytes(grid(imgs, c)))
            files["samples.png"] = f"{n} samples, {c} per row"
        if fmt in ("png", "both"):
            for i, im in enumerate(imgs):
                name = f"images/{i:05d}.png"
                atomic_write_bytes(out_dir / name, png_bytes(im))
            files["images/"] = f"{n} samples, one PNG each (00000.png ...)"
    if interpolate:
        isampler = Sampler(gan, G, seed + 1, psi=psi, label=label, device=device)
        frames = isampler.images(_interpolation(gan, isampler, interpolate, steps))
        atomic_write_bytes(out_dir / "interpolation.png", png_bytes(grid(frames, steps)))
        files["interpolation.png"] = f"{interpolate} linear latent paths, {steps} images each (one per row)"
        if gif:
            atomic_write_bytes(out_dir / "interpolation.gif", _gif(frames[:steps]))
            files["interpolation.gif"] = "the first path, there and back"
    if mix:
        msampler = Sampler(gan, G, seed + 2, psi=psi, label=label, device=device)
        atomic_write_bytes(out_dir / "mixing.png", png_bytes(grid(_mixing_grid(msampler, mix), mix + 1)))
        files["mixing.png"] = (f"style mixing: first row {mix} style images, first column {mix} content images, "
                               "cell (i, j): content i with the skip-layer excitations of style j")
    sweep_note = None
    if psi_sweep_values:
        if "truncation" not in gan.capabilities:
            raise SampleError(f"--psi-sweep: model {gan.name!r} has no truncation trick")
        dataset = source.run.get("dataset")
        curated, split = Path(data_dir) / "curated" / str(dataset), Path(data_dir) / "splits" / str(dataset)
        reals = real_msssim = None
        if curated.is_dir() and split.is_dir():
            from fewgan.metrics.common import load_split_images
            from fewgan.metrics.msssim import msssim_set

            reals, _ = load_split_images(curated, split, "train")
            if label is not None and (split / "split.csv").is_file():
                sweep_note = "SWD against all training images (every class), fakes of one class"
            real_msssim = msssim_set(reals, 200, seed)["msssim"]
        else:
            sweep_note = (f"SWD not computed: {curated} or {split} missing (run from the project folder whose "
                          "data/ holds the run's dataset)")
            log.warning(sweep_note)
        rows = psi_sweep(gan, G, sorted(set(psi_sweep_values), reverse=True), n=sweep_n, seed=seed, label=label,
                         reals=reals, device=device)
        import csv

        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=["psi", "n_fake", "swd_mean", "msssim_fake"], lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
        atomic_write_bytes(out_dir / "truncation.csv", buf.getvalue().encode())
        note = "; ".join(x for x in (f"psi: {gan.truncation_meaning}", sweep_note,
                                     f"{sweep_n} fakes per psi, seed {seed}") if x)
        atomic_write_bytes(out_dir / "truncation.png", _sweep_figure(
            rows, real_msssim, f"{dataset}/{gan.name}: fidelity vs diversity over truncation psi", note))
        files["truncation.csv"] = "SWD×10³ vs training images and MS-SSIM of the fakes at each psi"
        files["truncation.png"] = "the same as a figure (real set's MS-SSIM dashed)"
    if not files:
        raise SampleError("nothing to write: ask for -n N > 0, --interpolate K, --mix K or --psi-sweep")
    result = {
        "run": str(source.run_dir), "model": gan.name, "dataset": source.run.get("dataset"),
        "resolution": gan.resolution,
        "snapshot": {"path": str(source.snapshot), "iteration": source.iteration, "sha256": source.sha256},
        "seed": int(seed), "psi": psi,
        "psi_meaning": (gan.truncation_meaning if psi is not None else "no truncation (psi not given)"),
        "class": cls, "class_index": label, "files": files, "psi_sweep_note": sweep_note,
        "fallbacks": list(meta.get("fallbacks") or []),
        "command": ["fewgan", "sample", *(command if command is not None else sys.argv[2:])],
    }
    atomic_write_json(out_dir / "sample.json", result)
    return result
