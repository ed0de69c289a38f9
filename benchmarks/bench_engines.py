"""Engine benchmark: U-Net calls/s, samples/s for 50-step sampling and the fraction of the machine's
measured dense peak, per engine, dtype and batch size, on the ``small`` preset (random weights: speed does
not depend on the values). Not a test.

    python benchmarks/bench_engines.py                       # torch-fp32 torch-bf16 onnx-fp32, batches 1 4 8 16
    python benchmarks/bench_engines.py --configs torch-fp32 torch:channels_last=true --batches 8 --reps 3
    python benchmarks/bench_engines.py --device cuda --configs torch-fp32 torch-fp16 torch-fp16-graphs trt-fp16

Configurations are `augpaint-fast bench`'s (labels of augpaint_fast/bench/configs.py, or ENGINE:KEY=VALUE,...
for any other engine options): one registry, so a label means the same engine options everywhere.

samples/s for 50-step sampling = B / (encode + 50 x (U-Net + fused step) + decode), each part timed
separately (median of --reps) on the same engine; --full runs the real `augpaint_sample` loop instead (always for
the feature-caching configs `-cN`, whose U-Net columns then show a full call). Quality of these configurations
on trained weights: benchmarks/bench_quality.py.
Peak: best of a large matmul and a large 3x3 convolution in the same dtype, measured in the same run.
Quality of bf16: one 50-step AugPaint run at batch 8 compared with fp32 (same seed): latent mean/std and the
max abs difference of the final latents.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from augpaint_fast.ops import fused  # noqa: E402
from augpaint_fast.bench.configs import RUNTIME_OPTIONS, parse_config  # noqa: E402
from augpaint_fast.bench.machine import dense_peak  # noqa: E402
from augpaint_fast.models.config import get_preset  # noqa: E402
from augpaint_fast.engines import create_engine, sample  # noqa: E402
from augpaint_fast.models.flops import count_flops  # noqa: E402
from augpaint_fast.models import UNet, VQAutoencoder  # noqa: E402
from augpaint_fast.core.sampler import augpaint_sample  # noqa: E402
from augpaint_fast.core.schedule import ddim_schedule  # noqa: E402

DEVICE = torch.device("cpu")


def _sync() -> None:
    """Wait for queued GPU work: CUDA calls return before the work is done, so a timer read needs this."""
    if DEVICE.type == "cuda":
        torch.cuda.synchronize(DEVICE)


def timeit(fn, reps: int, warmup: int = 1) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(reps):
        _sync()
        t0 = time.perf_counter()
        fn()
        _sync()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def bf16_quality(ae, unet, preset) -> str:
    lat = preset.unet.latent_size
    g = torch.Generator().manual_seed(0)
    z0 = torch.randn(8, 3, lat, lat, generator=g).to(DEVICE)
    mask = torch.zeros(8, 1, lat, lat, device=DEVICE)
    mask[:, :, : lat // 2] = 1
    uids = torch.arange(8, dtype=torch.int64, device=DEVICE)
    sched = ddim_schedule(50, 1.0)
    out = {}
    for label, opts in (("fp32", {}), ("bf16", {"dtype": "bfloat16"})):
        eng = create_engine("torch", ae, unet, device=str(DEVICE), **opts)
        out[label] = augpaint_sample(eng.denoiser, z0, mask, uids, 7, sched, step=fused.fused_step)
    a, b = out["fp32"], out["bf16"]
    gen = mask.expand_as(a) == 0
    return (f"bf16 vs fp32, 50-step AugPaint, batch 8: generated-region mean {a[gen].mean():+.4f} vs "
            f"{b[gen].mean():+.4f}, std {a[gen].std():.4f} vs {b[gen].std():.4f}, "
            f"max |diff| {(a - b).abs().max():.4f} (latent std {a.std():.3f})")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--preset", default="small")
    ap.add_argument("--device", default="cpu", help="cpu or cuda (GPU configurations: torch-fp16*, trt-fp16)")
    ap.add_argument("--configs", nargs="+", default=["torch-fp32", "torch-bf16", "onnx-fp32"],
                    help="`augpaint-fast bench` labels (augpaint_fast/bench/configs.py) or ENGINE:KEY=VALUE,...")
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 4, 8, 16])
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--full", action="store_true", help="time the real sampling loop instead of the sum of parts")
    ap.add_argument("--no-quality", action="store_true")
    ap.add_argument("--threads", type=int, default=None,
                    help="torch and ONNX Runtime threads (default: torch's default / physical cores); use 1 when "
                         "another job holds a core, or OpenMP barriers stall")
    args = ap.parse_args()
    global DEVICE
    DEVICE = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)

    torch.manual_seed(0)
    preset = get_preset(args.preset)
    ae, unet = VQAutoencoder(preset.autoencoder).eval(), UNet(preset.unet).eval()
    with torch.no_grad():
        for name, p in unet.named_parameters():
            if not p.abs().any() and p.dim() > 1:
                p.normal_(0, 0.02)
    lat, size = preset.unet.latent_size, preset.image_size
    flops1 = count_flops(unet, torch.randn(1, 3, lat, lat), torch.zeros(1, dtype=torch.int64))
    gpu = f", {torch.cuda.get_device_name(DEVICE)}" if DEVICE.type == "cuda" else ""
    print(f"# {args.preset}: U-Net {flops1 / 1e9:.3f} GFLOP/sample/call; torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads{gpu}; fused step path {fused.kernel_path(DEVICE)}")
    configs = [parse_config(c) for c in args.configs]
    peaks = {}
    for dt in sorted({getattr(torch, c.dtype) for c in configs}, key=str):
        peak = dense_peak(dt, DEVICE)
        peaks[dt] = (peak["gflops"] * 1e9, peak["kernel"])
        print(f"# dense peak {str(dt).replace('torch.', '')}: {peaks[dt][0] / 1e9:.1f} GFLOP/s ({peaks[dt][1]})")
    sched = ddim_schedule(args.steps, 1.0)
    cache_dir = Path(tempfile.mkdtemp(prefix="bench-onnx-"))
    print("| config | batch | U-Net ms/call | U-Net calls/s | samples/s (50 steps) | GFLOP/s | % of peak |")
    print("|---|---|---|---|---|---|---|")
    base = {}
    for config in configs:
        cfg, name = config.label, config.engine
        runtime = {"threads": args.threads, "cache_dir": cache_dir}
        opts = {**config.options, **{k: runtime[k] for k in RUNTIME_OPTIONS.get(name, ()) if runtime[k] is not None}}
        cached = config.cache_interval > 1  # the calls differ: only the real loop times them
        eng = create_engine(name, ae, unet, device=str(DEVICE), **opts)
        for b in args.batches:
            z = torch.randn(b, 3, lat, lat, device=DEVICE)
            t = torch.full((b,), 500, dtype=torch.int64, device=DEVICE)
            x = torch.rand(b, 3, size, size, device=DEVICE) * 2 - 1
            t_unet = timeit(lambda: eng.denoiser(z, t), args.reps)  # (a full call when caching: t repeats)
            if args.full or cached:
                mask = torch.ones(b, 1, lat, lat, device=DEVICE)
                mask[:, :, lat // 2:] = 0
                uids = torch.arange(b, dtype=torch.int64, device=DEVICE)
                eng.decode(eng.encode(x))  # first calls build lazily compiled engines (openvino): not timed
                total = timeit(lambda: eng.decode(sample(eng, eng.encode(x), mask, uids, 0, sched).latents), 1,
                               warmup=int(cached))
            else:
                t_enc = timeit(lambda: eng.encode(x), args.reps)
                t_dec = timeit(lambda: eng.decode(z * 0.05), args.reps)
                tab = sched.table(DEVICE)
                m = torch.ones(b, 1, lat, lat, device=DEVICE)
                uids = torch.arange(b, dtype=torch.int64, device=DEVICE)
                t_step = timeit(lambda: fused.fused_step(z, z, z, m, tab, 0, 0, uids), args.reps)
                total = t_enc + args.steps * (t_unet + t_step) + t_dec
            gflops = flops1 * b / t_unet / 1e9
            frac = gflops * 1e9 / peaks[getattr(torch, config.dtype)][0]
            sps = b / total
            if cfg == "torch-fp32":
                base[b] = sps
            rel = f" ({sps / base[b]:.2f}x)" if b in base and cfg != "torch-fp32" else ""
            print(f"| {cfg} | {b} | {t_unet * 1e3:.1f} | {1 / t_unet:.2f} | {sps:.3f}{rel} | {gflops:.1f} | "
                  f"{100 * frac:.0f}% |", flush=True)
    if not args.no_quality and any("bf16" in c for c in args.configs):
        print("#", bf16_quality(ae, unet, preset))


if __name__ == "__main__":
    main()
