"""Speed of fewgan's metrics against straightforward numpy references on the same inputs (medians).

    python bench/bench_metrics.py                      # ProGAN-sized: SWD 512 vs 512, MS-SSIM 500 pairs, 256 px
    python bench/bench_metrics.py --quick              # 64 vs 64 images, 50 pairs, 2 repeats (a few minutes)
    python bench/bench_metrics.py --only swd,msssim    # just the SWD and MS-SSIM rows (the 10x requirement)
    python bench/bench_metrics.py --only bootstrap     # the demo's SWD bootstrap: one thread vs every thread
    python bench/bench_metrics.py --only effnet,invert  # issue 24 item 1: EfficientNet-Lite0 layout, inversion's LPIPS
    python bench/bench_metrics.py --only sort          # numpy's sort kernels: AVX-512 vs AVX2 (fewgan.numpy_simd)

Rows: SWD (fewgan torch vs numpy/scipy, the ProGAN recipe), MS-SSIM (fewgan torch vs numpy/scipy
fftconvolve, the ProGAN recipe), Inception images/s (torch-fidelity's extractor as shipped vs fewgan's
channels_last conversion; features asserted identical to 1e-5), FID statistics (torch-fidelity eigvals vs
fewgan's exact nuclear-norm form), SWD bootstrap (the demo's evaluate: 90 reals vs 200 fakes at 64 px, 50
resamples, on one thread vs on every thread (tiles of directions side by side); values asserted equal),
EfficientNet-Lite0 images/s (as shipped vs channels_last with each BatchNorm folded into its convolution,
evaluation.effnet.channels_last and fold_bn; features asserted equal to 2e-5 relative), an inversion step (the
demo's: 8 images at 64 px, LPIPS-VGG on the 2x-pooled images, forward and backward; the target's LPIPS features recomputed every step as before vs kept; values asserted
equal), numpy's sort of one SWD bootstrap level (512 rows x 11,520 float32) and the demo's SWD bootstrap, each
in a child process with numpy's AVX-512 kernels vs with them off (fewgan.numpy_simd; values asserted equal).
This process calls fewgan.numpy_simd.configure() before importing numpy, so numpy runs the pipeline's kernels.
Random-init Inception, VGG16 and (where the package is absent) EfficientNet weights are used: speed does not
depend on them.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from fewgan.numpy_simd import configure

configure()  # before numpy is imported: numpy then dispatches as in the pipeline (fewgan.numpy_simd)
import numpy as np  # noqa: E402
import scipy.ndimage
import scipy.signal
import torch

from fewgan.metrics import fid as F
from fewgan.metrics import msssim as M
from fewgan.metrics import swd as S
from fewgan.weights import FALLBACK_INCEPTION_SEED, WeightsInfo, make_random_inception_file


# ------------------------------------------------------------------ numpy references (ProGAN recipe)
_K = np.outer([1, 4, 6, 4, 1], [1, 4, 6, 4, 1]).astype(np.float32) / 256.0


def np_swd(real: np.ndarray, fake: np.ndarray, rng: np.random.RandomState) -> float:
    def pyramid(x, levels):
        pyr = [x.astype(np.float32)]
        for _ in range(1, levels):
            low = scipy.ndimage.convolve(pyr[-1], _K[None, None], mode="mirror")[:, :, ::2, ::2]
            up = np.zeros_like(pyr[-1])
            up[:, :, ::2, ::2] = low
            pyr[-1] = pyr[-1] - scipy.ndimage.convolve(up, 4 * _K[None, None], mode="mirror")
            pyr.append(low)
        return pyr

    def desc(level, per_image):
        n, _, h, w = level.shape
        out = []
        for i in range(n):
            ys = rng.randint(0, h - 6, per_image)
            xs = rng.randint(0, w - 6, per_image)
            out += [level[i, :, y:y + 7, x:x + 7] for y, x in zip(ys, xs)]
        d = np.stack(out)
        d -= d.mean(axis=(0, 2, 3), keepdims=True)
        d /= d.std(axis=(0, 2, 3), keepdims=True)
        return d.reshape(len(d), -1)

    levels = len(S.resolutions(real.shape[-1]))
    vals = []
    for lr, lf in zip(pyramid(real, levels), pyramid(fake, levels)):
        a, b = desc(lr, 128), desc(lf, 128)
        rep = []
        for _ in range(4):
            dirs = rng.randn(a.shape[1], 128)
            dirs /= np.sqrt((dirs ** 2).sum(0, keepdims=True))
            dirs = dirs.astype(np.float32)
            rep.append(np.mean(np.abs(np.sort(a @ dirs, 0) - np.sort(b @ dirs, 0))))
        vals.append(1e3 * np.mean(rep))
    return float(np.mean(vals))


def np_msssim(a: np.ndarray, b: np.ndarray) -> float:
    """a, b: (N, H, W, C) float32 0..255; ProGAN's recipe with scipy fftconvolve."""
    w = np.array(M.WEIGHTS)
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    ss, cs = [], []
    x, y = a.astype(np.float32), b.astype(np.float32)
    for _ in range(5):
        size = min(11, x.shape[1], x.shape[2])
        g1 = M.gaussian_1d(size, size * 1.5 / 11).numpy()
        win = np.outer(g1, g1).reshape(1, size, size, 1)
        f = lambda im: scipy.signal.fftconvolve(im, win, mode="valid")  # noqa: E731
        m1, m2 = f(x), f(y)
        s11, s22, s12 = f(x * x) - m1 * m1, f(y * y) - m2 * m2, f(x * y) - m1 * m2
        v1, v2 = 2 * s12 + c2, s11 + s22 + c2
        ss.append(np.mean((2 * m1 * m2 + c1) * v1 / ((m1 * m1 + m2 * m2 + c1) * v2), axis=(1, 2, 3)))
        cs.append(np.mean(v1 / v2, axis=(1, 2, 3)))
        x = (x[:, 0::2, 0::2] + x[:, 1::2, 0::2] + x[:, 0::2, 1::2] + x[:, 1::2, 1::2]) / 4
        y = (y[:, 0::2, 0::2] + y[:, 1::2, 0::2] + y[:, 0::2, 1::2] + y[:, 1::2, 1::2]) / 4
    ss, cs = np.clip(np.array(ss), 0, None), np.clip(np.array(cs), 0, None)
    return float(np.mean(np.prod(cs[:-1] ** w[:-1, None], 0) * ss[-1] ** w[-1]))


# ------------------------------------------------------------------ helpers
def _swd_projection_sort_floor(real: torch.Tensor, fake: torch.Tensor, repeats: int) -> float:
    """Median seconds of SWD's projections and sorts alone (fewgan's `distances`: numpy BLAS matmul and
    np.sort on torch's threads), on the descriptors of the same images; pyramids, patch extraction and
    normalisation are built beforehand and not timed."""
    stream = S.SWDStream(real, fake.shape[0], None, 0)
    stream.add(fake)
    fake_desc = stream.fake.finalize()
    return median_time(lambda: S.distances(stream.real_desc, fake_desc, stream.res, S.REPEATS, S.DIRECTIONS, 0),
                       repeats)[0]


def images(n: int, res: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 3, res // 8, res // 8, generator=g)
    x = torch.nn.functional.interpolate(x, size=(res, res), mode="bilinear", align_corners=False)
    x = 0.8 * x + 0.2 * torch.rand(n, 3, res, res, generator=g)
    return (x * 255).round().clamp(0, 255).to(torch.uint8)


def median_time(fn, repeats: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), out


# child processes (numpy reads its kernel setting once, at import): the code prints "<seconds> <value>"; the
# upper-case names are the settings, given to `_in_child`
_SORT_CODE = """
import hashlib, statistics, time, numpy as np
x = np.random.default_rng(0).standard_normal((512, 11520)).astype(np.float32)
np.sort(x, axis=-1)
times = []
for _ in range(REPS):
    t = time.perf_counter(); y = np.sort(x, axis=-1); times.append(time.perf_counter() - t)
print(statistics.median(times), hashlib.sha256(y.tobytes()).hexdigest())
"""
_BOOT_CODE = """
import time, torch, fewgan.metrics.bootstrap as B, fewgan.metrics.swd as S
torch.set_num_threads(THREADS)
def images(n, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 3, 64, 64), generator=g, dtype=torch.uint8)
st = S.SWDStream(images(90, 6), 200, seed=0)
st.add(images(200, 7))
st.result()
t = time.perf_counter()
v = B.swd_samples(st.real_desc, st.real_counts, st.fake_desc, st.fake.counts, res=st.res, cfg=st.cfg, seed=0,
                  samples=SAMPLES, gen=B.generator(0, "swd"))
print(time.perf_counter() - t, ",".join(repr(float(a)) for a in v))
"""


def _in_child(code: str, *, avx512: bool, **settings: int) -> tuple[float, str]:
    """(seconds, value) printed by `code` run in a fresh interpreter with numpy's AVX-512 kernels on or off,
    `settings` (REPS=3, ...) defined before it."""
    import subprocess
    import sys

    from fewgan.numpy_simd import ENV, SWITCH, ZEN4_DISABLED

    env = {k: v for k, v in os.environ.items() if k not in (ENV, SWITCH)}
    env |= {SWITCH: "1"} if avx512 else {ENV: ZEN4_DISABLED}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[1] / "src") + os.pathsep + env.get("PYTHONPATH", "")
    head = "".join(f"{k} = {int(v)}\n" for k, v in settings.items())
    out = subprocess.run([sys.executable, "-c", head + code], env=env, capture_output=True, text=True,
                         check=True).stdout.split()
    return float(out[0]), out[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--res", type=int, default=256)
    ap.add_argument("--swd-images", type=int, default=None)
    ap.add_argument("--pairs", type=int, default=None)
    ap.add_argument("--inception-images", type=int, default=None)
    ap.add_argument("--repeats", type=int, default=None)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu", help="device of the Inception row (cpu | cuda)")
    ap.add_argument("--allocator", choices=["retain", "system"], default="retain",
                    help="C allocator setting for the whole process (fewgan.allocator)")
    ap.add_argument("--only", default="swd,msssim,inception,fid,bootstrap",
                    help="comma-separated rows to run: swd, msssim, inception, fid, bootstrap, effnet, invert, sort")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from fewgan.allocator import configure_allocator

    # the pipeline's stages run with resources.cpu_allocator (default retain); applied to the whole
    # process, so the numpy references get the same allocator
    alloc = configure_allocator(args.allocator)
    n_swd = args.swd_images or (64 if args.quick else 512)
    pairs = args.pairs or (50 if args.quick else 500)
    n_inc = args.inception_images or (16 if args.quick else 64)
    reps = args.repeats or (2 if args.quick else 3)
    rows = []
    only = {w.strip() for w in args.only.split(",")}

    if "swd" in only:
        real, fake = images(n_swd, args.res, 1), images(n_swd, args.res, 2)
        t_ours, v_ours = median_time(lambda: S.swd(real, fake, seed=0)["mean"], reps)
        rng = np.random.RandomState(0)
        t_np, v_np = median_time(lambda: np_swd(real.numpy(), fake.numpy(), rng), 1 if not args.quick else reps)
        rows.append((f"SWD {n_swd} vs {n_swd} @ {args.res}px", t_np, t_ours, f"{v_np:.3f} vs {v_ours:.3f} (own draws)"))
        # the part no exact SWD avoids: projecting both sets on ProGAN's 4 x 128 directions and sorting,
        # here with numpy's BLAS and SIMD sort; the pyramids, patches and normalisation come on top
        t_floor = _swd_projection_sort_floor(real, fake, reps)
        rows.append(("  of which projections + sorts", t_np, t_floor,
                     f"bound on the SWD speed-up with these sort/BLAS kernels: {t_np / t_floor:.1f}x"))

    if "msssim" in only:
        a, b = images(pairs, args.res, 3), images(pairs, args.res, 4)
        t_ours, v_ours = median_time(lambda: M.msssim_pairs(a, b).mean().item(), reps)
        an, bn = a.permute(0, 2, 3, 1).numpy(), b.permute(0, 2, 3, 1).numpy()
        t_np, v_np = median_time(lambda: np_msssim(an, bn), 1 if not args.quick else reps)
        assert abs(v_np - v_ours) <= 1e-4 * abs(v_np), (v_np, v_ours)
        rows.append((f"MS-SSIM {pairs} pairs @ {args.res}px", t_np, t_ours, f"{v_np:.6f} = {v_ours:.6f}"))

    if "inception" in only:
        with tempfile.TemporaryDirectory() as d:
            path = Path(d) / f"inception-randinit-seed{FALLBACK_INCEPTION_SEED}.pth"
            digest = make_random_inception_file(path)
            info = WeightsInfo("inception-v3-compat", path, "bench", digest, False, "bench", None)
            imgs = images(n_inc, args.res, 5)
            plain = F.InceptionExtractor(info, args.device, channels_last=False, batch_size=min(64, n_inc))
            fast = F.InceptionExtractor(info, args.device, channels_last=True, batch_size=min(64, n_inc))
            plain(imgs[:2]), fast(imgs[:2])  # warm-up
            t_plain, f_plain = median_time(lambda: plain(imgs), reps)
            t_fast, f_fast = median_time(lambda: fast(imgs), reps)
            diff = (f_plain - f_fast).abs().max().item()
            assert diff <= 1e-5, diff
            rows.append((f"Inception {n_inc} imgs (img/s)", n_inc / t_plain, n_inc / t_fast, f"max |diff| {diff:.1e}"))

    if "fid" in only:
        g = torch.Generator().manual_seed(0)
        ff, rf = torch.randn(500, 2048, generator=g), torch.randn(100, 2048, generator=g) + 0.1
        t_tf, v_tf = median_time(lambda: F.fid_from_features(ff, rf, "torch-fidelity"), 1)
        t_fast, v_fast = median_time(lambda: F.fid_from_features(ff, rf), reps)
        rows.append(("FID stats 500 vs 100, 2048-d", t_tf, t_fast, f"{v_tf:.6f} vs {v_fast:.6f}"))

    if "bootstrap" in only:
        from fewgan.metrics import bootstrap as B

        # the demo profile's evaluate: 90 train reals, 200 fakes at 64 px, 50 SWD resamples
        samples = 10 if args.quick else 50
        st = S.SWDStream(images(90, 64, 6), 200, seed=0)
        st.add(images(200, 64, 7))
        st.result()

        def boot(threads: int) -> np.ndarray:
            old = torch.get_num_threads()
            torch.set_num_threads(threads)
            try:
                return B.swd_samples(st.real_desc, st.real_counts, st.fake_desc, st.fake.counts, res=st.res,
                                     cfg=st.cfg, seed=0, samples=samples, gen=B.generator(0, "swd"))
            finally:
                torch.set_num_threads(old)

        t_one, v_one = median_time(lambda: boot(1), reps)
        t_side, v_side = median_time(lambda: boot(args.threads), reps)
        assert np.array_equal(v_one, v_side)
        rows.append((f"SWD bootstrap {samples} resamples", t_one, t_side,
                     f"1 thread vs {args.threads} (tiles of directions side by side); values equal"))

    if "effnet" in only:
        from fewgan.metrics.effnet import EffNetExtractor
        from fewgan.weights import resolve

        with tempfile.TemporaryDirectory() as d:
            ev = {"weights": {"cache_dir": d, "allow_untrained_fallback": True, "download": False}}
            info = resolve("effnet-lite0", {"profile": "bench", "seed": 0, "device": "cpu", "evaluation": ev})
        n_eff = 16 if args.quick else 64
        imgs = images(n_eff, 64, 8)  # the demo's 64 px fakes (resized to 224 px inside)
        plain = EffNetExtractor(info, "cpu", batch_size=32, channels_last=False, fold_bn=False)
        fast = EffNetExtractor(info, "cpu", batch_size=32, channels_last=True, fold_bn=True)
        plain(imgs[:2]), fast(imgs[:2])  # warm-up
        t_plain, f_plain = median_time(lambda: plain(imgs), reps)
        t_fast, f_fast = median_time(lambda: fast(imgs), reps)
        rel = ((f_plain - f_fast).abs().max() / f_plain.abs().max()).item()
        assert rel <= 2e-5, rel
        rows.append((f"EffNet-Lite0 {n_eff} imgs (img/s)", n_eff / t_plain, n_eff / t_fast,
                     f"as shipped vs channels_last + folded BatchNorm; max rel diff {rel:.1e}" + ("" if info.standard else " (random init)")))

    if "invert" in only:
        import torch.nn.functional as TF

        from fewgan.nets.lpips import build_lpips

        with tempfile.TemporaryDirectory() as d:
            ev = {"weights": {"cache_dir": d, "allow_untrained_fallback": True, "download": False}}
            lp, _ = build_lpips("vgg", {"profile": "bench", "seed": 0, "device": "cpu", "evaluation": ev}, "cpu")
        target = images(8, 64, 9).float() / 127.5 - 1
        x0 = images(8, 64, 10).float() / 127.5 - 1
        pooled_target = TF.avg_pool2d(target, 2)

        def step(dist) -> float:
            x = x0.clone().requires_grad_(True)
            loss = dist(TF.avg_pool2d(x, 2)).sum()
            loss.backward()
            return float(loss.detach())

        kept = lp.to_target(pooled_target)
        steps = 5 if args.quick else 20
        t_pair, v_pair = median_time(lambda: [step(lambda p: lp(p, pooled_target)) for _ in range(steps)][-1], reps)
        t_kept, v_kept = median_time(lambda: [step(kept) for _ in range(steps)][-1], reps)
        assert abs(v_pair - v_kept) <= 1e-5 * abs(v_pair), (v_pair, v_kept)
        # how close the kept-target step comes to this machine's limit (fewgan.bench: the fp32 matmul peak)
        from fewgan.bench import machine_peak_gflops
        from fewgan.train.flops import count_flops

        gflops = count_flops(lambda: step(kept)) * steps / t_kept / 1e9
        peak = machine_peak_gflops("cpu", repeats=reps)["fp32"]
        rows.append((f"inversion LPIPS, {steps} steps of 8 @ 32px", t_pair, t_kept,
                     f"target features every step vs kept; loss {v_pair:.6f} = {v_kept:.6f}; kept: "
                     f"{gflops:.0f} GFLOP/s = {gflops / peak:.0%} of the fp32 matmul peak ({peak:.0f})"))

    if "sort" in only:
        from fewgan.numpy_simd import state

        samples = 10 if args.quick else 50
        t512, v512 = _in_child(_SORT_CODE, avx512=True, REPS=reps)
        t2, v2 = _in_child(_SORT_CODE, avx512=False, REPS=reps)
        assert v512 == v2, (v512, v2)
        now = "AVX-512 off" if state()["disabled"] else "numpy's default"
        rows.append(("np.sort 512 x 11,520 float32", t512, t2, f"AVX-512 vs AVX2 kernels; sorted values equal; "
                                                             f"fewgan runs: {now}"))
        t512, v512 = _in_child(_BOOT_CODE, avx512=True, SAMPLES=samples, THREADS=args.threads)
        t2, v2 = _in_child(_BOOT_CODE, avx512=False, SAMPLES=samples, THREADS=args.threads)
        assert v512 == v2, (v512, v2)
        rows.append((f"SWD bootstrap {samples} resamples", t512, t2, "AVX-512 vs AVX2 sort kernels; values equal"))

    print(f"threads={torch.get_num_threads()}  repeats={reps} (medians; numpy references timed once unless --quick)"
          f"  load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs  allocator {alloc['mode']}"
          f"{'' if alloc['applied'] or alloc['mode'] == 'system' else ' (not applied)'}")
    print(f"{'what':34s} {'reference':>12s} {'fewgan':>12s} {'speed-up':>9s}  check")
    for name, ref, ours, note in rows:
        if "img/s" in name:
            print(f"{name:34s} {ref:10.2f}/s {ours:10.2f}/s {ours / ref:8.2f}x  {note}")
        else:
            print(f"{name:34s} {ref:10.2f} s {ours:10.3f} s {ref / ours:8.1f}x  {note}")


if __name__ == "__main__":
    main()
