"""Speed of one FastGAN training iteration: fewgan's step vs a plain loop of the same maths.

One iteration = D step on reals (with the three reconstruction terms) and fakes, G step, both Adam
steps, and the EMA update of G; batch of reals fixed in memory (data loading is not timed);
DiffAugment 'color,translation' (fewgan.train.diffaugment) on reals and fakes in both variants.

Variants (each runs in its own subprocess, so ru_maxrss is that variant's peak memory):

* ``baseline`` - a straightforward loop written here, following the official train.py: one G forward,
  the real D pass, three separate LPIPS calls (each runs VGG on reconstruction *and* target with
  autograd), two backward passes, G-step backward through D that also builds D's weight gradients,
  plain `torch.optim.Adam`, a per-tensor EMA loop, `.item()` logging, default memory format.
* ``baseline-retain`` - the same baseline loop with fewgan's CPU allocator setting
  (`fewgan.allocator`, resources.cpu_allocator: retain), to separate the allocator's effect from the
  step's own.
* ``fewgan`` - `fewgan.train.trainer.Trainer.step` (the training loop's own step) on FastGAN's
  `discriminator_loss` / `generator_loss` / `make_optimizers` (fused Adam, one
  LPIPS call on the concatenated batch with the targets' VGG pass under no_grad, D frozen in the G
  step, each target image through VGG once, NHWC on CUDA) and the training loop's EMA (lerp), under the allocator setting the pipeline's stages use (retain).

* ``fewgan-bf16`` - the same step under bf16 autocast (train.precision: bf16): G, D and the LPIPS
  reconstruction in bf16 on oneDNN's bf16 kernels (AVX512-BF16 or AMX where the CPU has them), weights,
  Adam state, loss reductions and EMA in float32.

Both use parity maths (official: no tanh at 256, LPIPS summed over the batch, nearest resizing) so the
work is identical; `--maths default` runs fewgan's default maths instead. Only ``fewgan-bf16`` uses
autocast (the official code has no AMP), on CPU and CUDA alike; `--compile` adds torch.compile to the
fewgan variants on CUDA.
`--rounds N` interleaves the variants (round r runs every variant once, `--iters` timed iterations each)
so that a machine slowing down under sustained load affects all variants alike; medians are over all
timed iterations of a variant. `--isa` also prints which oneDNN kernels a bf16 convolution dispatched to
(ONEDNN_VERBOSE), i.e. whether AMX or AVX512-BF16 did the work.

LPIPS runs with a random VGG16 backbone (no pretrained weights on this machine); the cost is the
same as with the pretrained file.

    python bench/bench_fastgan.py --resolution 256 --batch 8 --warmup 3 --iters 5 --recon lpips
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
import warnings

import torch
import torch.nn.functional as F

OFFICIAL_CPU_S = {"lpips": 20.05, "l1": 15.89}  # REFERENCE.md section 5: official step, 256 px, batch 8, 2 cores
POLICY = "color,translation"  # official train.py DiffAugment policy


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _augment(gen: torch.Generator):
    from fewgan.train.diffaugment import augment

    return lambda x: augment(x, POLICY, gen)


def _build_lpips(device):
    import lpips

    from fewgan.nets.lpips import RANDOM_BACKBONE_SEED

    with torch.random.fork_rng(devices=[]), warnings.catch_warnings():
        torch.manual_seed(RANDOM_BACKBONE_SEED)
        warnings.simplefilter("ignore")
        m = lpips.LPIPS(net="vgg", pretrained=True, pnet_rand=True, verbose=False)
    return m.to(device).eval().requires_grad_(False)


# ---- baseline: the official step written plainly --------------------------------------------------
def baseline_runner(args, device):
    from fewgan.models.fastgan.model import FastGAN, _quadrant
    from fewgan.params import model_cfg

    model = FastGAN(model_cfg("fastgan", {"ngf": args.ngf, "ndf": args.ndf, "nz": 256, "recon_loss": "l1",
                                          "parity": True}), args.resolution).to(device)
    G, D = model.G, model.D
    percept = _build_lpips(device) if args.recon == "lpips" else None
    opt_g = torch.optim.Adam(G.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(D.parameters(), lr=2e-4, betas=(0.5, 0.999))
    ema = [p.detach().clone() for p in G.parameters()]
    aug = _augment(torch.Generator(device=device).manual_seed(1))
    real = torch.rand(args.batch, 3, args.resolution, args.resolution, device=device) * 2 - 1
    amp = torch.autocast(device.type, dtype=torch.bfloat16, enabled=False)  # the official code has no AMP

    def dist(a, b):
        if percept is None:
            return (a - b).abs().flatten(1).mean(1)
        return percept(a, b)

    def step(i):
        z = torch.randn(args.batch, 256, device=device)
        with amp:
            big, small = G(z, with_small=True)
            x = aug(real)
            fb, fs = aug(big), aug(small)
            D.zero_grad()
            part = int(torch.randint(0, 4, (1,)).item())
            pred, (r_all, r_small, r_part) = D(x, F.interpolate(x, size=D.small_size), part)
            err = (F.relu(torch.rand_like(pred) * 0.2 + 0.8 - pred).mean()
                   + dist(r_all, F.interpolate(x, r_all.shape[2])).sum()
                   + dist(r_small, F.interpolate(x, r_small.shape[2])).sum()
                   + dist(r_part, F.interpolate(_quadrant(x, part), r_part.shape[2])).sum())
        err.backward()
        with amp:
            pred_f = D(fb.detach(), fs.detach())
            err_f = F.relu(torch.rand_like(pred_f) * 0.2 + 0.8 + pred_f).mean()
        err_f.backward()
        opt_d.step()
        G.zero_grad()
        with amp:
            err_g = -D(fb, fs).mean()
        err_g.backward()
        opt_g.step()
        with torch.no_grad():
            for p, a in zip(G.parameters(), ema):
                a.mul_(0.999).add_(0.001 * p.data)
        return pred.mean().item(), err_g.item()

    return step


# ---- fewgan ---------------------------------------------------------------------------------------
def fewgan_runner(args, device):
    """fewgan's step as training runs it: `Trainer.step` (fewgan.train.trainer) on FastGAN."""
    from fewgan.models.base import TrainContext
    from fewgan.params import model_cfg
    from fewgan.train.trainer import build_trainer

    cfg = model_cfg("fastgan", {"ngf": args.ngf, "ndf": args.ndf, "nz": 256, "parity": args.maths == "parity",
                                "recon_loss": "lpips_untrained" if args.recon == "lpips" else "l1"})
    compile_nets = (device.type == "cuda" and args.compile) or args.compile_cpu
    ctx = TrainContext(batch_size=args.batch, iterations=args.iters, device=str(device),
                       precision="bf16" if args.variant == "fewgan-bf16" else "fp32")
    trainer = build_trainer("fastgan", cfg, args.resolution, ctx,
                            channels_last=device.type == "cuda" if args.channels_last == "auto" else args.channels_last == "on",
                            wrap=torch.compile if compile_nets else None)
    trainer.gan.fallbacks()  # builds the LPIPS network now (lazily built otherwise)
    aug = _augment(torch.Generator(device=device).manual_seed(1))
    real = torch.rand(args.batch, 3, args.resolution, args.resolution, device=device) * 2 - 1

    def step(i):
        res = trainer.step(i, reals=lambda j: (real, None),
                           latents=lambda: torch.randn(args.batch, 256, device=device), augment=aug)
        return res.losses["D"], res.losses["G"]

    return step


def child(args) -> dict:
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    device = torch.device(args.device)
    from fewgan.allocator import configure_allocator

    allocator = configure_allocator("system" if args.variant == "baseline" else args.allocator)
    step = (fewgan_runner if args.variant.startswith("fewgan") else baseline_runner)(args, device)
    times, cpu = [], []
    for i in range(args.warmup + args.iters):
        _sync(device)
        t, c = time.perf_counter(), time.process_time()
        step(i)
        _sync(device)
        if i >= args.warmup:
            times.append(time.perf_counter() - t)
            cpu.append(time.process_time() - c)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out = {"variant": args.variant, "device": str(device), "resolution": args.resolution, "batch": args.batch,
           "recon": args.recon, "maths": args.maths if args.variant.startswith("fewgan") else "parity",
           "precision": "bf16" if args.variant == "fewgan-bf16" else "fp32",
           "channels_last": args.channels_last if args.variant.startswith("fewgan") else "off",
           "threads": args.threads, "median_s": statistics.median(times), "min_s": min(times),
           "max_s": max(times), "times_s": [round(t, 3) for t in times],
           "median_cpu_s": statistics.median(cpu), "peak_rss_mb": round(peak_mb, 1),
           "allocator": allocator["mode"] + ("" if allocator["applied"] or allocator["mode"] == "system" else " (not applied)")}
    if device.type == "cuda":
        out["peak_cuda_mb"] = round(torch.cuda.max_memory_allocated(device) / 2**20, 1)
    return out


def onednn_isa() -> list[str]:
    """The ISA oneDNN detected and the kernels one bf16 convolution (forward and backward) dispatched to."""
    code = ("import torch\nx = torch.randn(2, 64, 32, 32, requires_grad=True)\nc = torch.nn.Conv2d(64, 64, 3, padding=1)\n"
            "with torch.autocast('cpu', dtype=torch.bfloat16):\n    y = c(x)\ny.float().sum().backward()\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**os.environ, "ONEDNN_VERBOSE": "1"})
    lines = (proc.stdout + proc.stderr).splitlines()
    isa = [ln.split(",")[-1] for ln in lines if ",info,cpu,isa:" in ln]
    kernels = sorted({ln.split(",")[6] for ln in lines if ",primitive,exec,cpu,convolution," in ln})
    return [f"oneDNN cpu isa: {isa[0] if isa else 'not reported'}",
            f"bf16 convolution kernels: {', '.join(kernels) or 'none reported'}",
            "AMX in use: " + ("yes" if any("amx" in k for k in kernels) else "no")]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--resolution", type=int, default=256)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--iters", type=int, default=5, help="timed iterations")
    ap.add_argument("--warmup", type=int, default=3, help="untimed iterations first")
    ap.add_argument("--recon", choices=["lpips", "l1"], default="lpips")
    ap.add_argument("--ngf", type=int, default=64)
    ap.add_argument("--ndf", type=int, default=64)
    ap.add_argument("--maths", choices=["parity", "default"], default="parity",
                    help="fewgan variant's maths (the baseline is always the official maths)")
    ap.add_argument("--variants", default="baseline,baseline-retain,fewgan,fewgan-bf16")
    ap.add_argument("--rounds", type=int, default=1, help="interleave the variants this many times")
    ap.add_argument("--isa", action="store_true", help="report the oneDNN ISA/kernels of a bf16 convolution")
    ap.add_argument("--allocator", choices=["retain", "system"], default="retain",
                    help="CPU allocator of the baseline-retain and fewgan variants (fewgan.allocator)")
    ap.add_argument("--device", default="auto", help="auto | cpu | cuda")
    ap.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1))
    ap.add_argument("--channels-last", choices=["auto", "on", "off"], default="auto",
                    help="fewgan variant's memory format (auto: NHWC on CUDA only; NHWC was slower on CPU)")
    ap.add_argument("--compile", action="store_true", help="CUDA: torch.compile G and D of the fewgan variants")
    ap.add_argument("--compile-cpu", action="store_true", help="CPU: torch.compile G and D (inductor, needs a C++ compiler)")
    ap.add_argument("--json", help="also write the results to this file")
    ap.add_argument("--variant", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.device == "auto":
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.variant:  # child process
        print(json.dumps(child(args)), flush=True)
        return 0
    if args.isa:
        for line in onednn_isa():
            print(line, flush=True)
    runs: dict[str, list[dict]] = {}
    for _ in range(args.rounds):
        for variant in args.variants.split(","):
            cmd = [sys.executable, __file__, *(argv if argv is not None else sys.argv[1:]), "--variant", variant]
            proc = subprocess.run(cmd, capture_output=True, text=True)
            if proc.returncode != 0:
                sys.stderr.write(proc.stderr)
                return proc.returncode
            runs.setdefault(variant, []).append(json.loads(proc.stdout.strip().splitlines()[-1]))
    results = []
    for variant, parts in runs.items():
        times = [t for p in parts for t in p["times_s"]]
        res = dict(parts[0], times_s=times, median_s=statistics.median(times), min_s=min(times), max_s=max(times),
                   median_cpu_s=statistics.median([p["median_cpu_s"] for p in parts]),
                   peak_rss_mb=max(p["peak_rss_mb"] for p in parts), rounds=len(parts))
        results.append(res)
        print(f"{variant:15s} {res['device']:5s} {args.resolution}px batch {args.batch} recon {args.recon} "
              f"{res['precision']}: median {res['median_s']:.3f} s/iter (min {res['min_s']:.3f}, max {res['max_s']:.3f}, "
              f"n={len(times)} over {len(parts)} round(s); CPU {res['median_cpu_s']:.3f} s/iter), "
              f"peak RSS {res['peak_rss_mb']:.0f} MB, allocator {res['allocator']}"
              + (f", peak CUDA {res['peak_cuda_mb']:.0f} MB" if "peak_cuda_mb" in res else ""), flush=True)
    by = {r["variant"]: r for r in results}
    for mine in ("fewgan", "fewgan-bf16"):
        for base in ("baseline", "baseline-retain"):
            if base in by and mine in by:
                print(f"{mine} / {base} = {by[mine]['median_s'] / by[base]['median_s']:.2f}")
        if mine in by and by[mine]["device"] == "cpu" and args.resolution == 256 and args.batch == 8:
            ref = OFFICIAL_CPU_S[args.recon]
            print(f"{mine} / official ({ref} s/iter, REFERENCE.md section 5) = {by[mine]['median_s'] / ref:.2f}")
    if args.json:
        from fewgan.io import atomic_write_json

        atomic_write_json(args.json, {"results": results, "load_average": os.getloadavg()})
    print(f"load average during run: {os.getloadavg()[0]:.2f} (machine shared: numbers are noisy)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
