"""int8 post-training-quantization levers on trained weights: each recipe's quality and speed, one run each.

For every lever (an NNCF setting on top of the base recipe of ``export.int8``), the U-Net export of the weights
is quantized on the same recorded trajectories, then scored as ``bench`` scores a configuration
(``bench.quality_set``: 4 phantom sources x 2 samples, box masks, 50 DDIM steps): mean absolute difference to
the eager float32 samples in grey levels and known-region PSNR against the float32 one; and timed as one U-Net
call at batch 8 against OpenVINO float32 (one thread, interleaved rounds, median). Not a test; results go to
docs/int8.md. Busy machines give noisy speed ratios: compare them within one run.

    OMP_NUM_THREADS=1 python benchmarks/int8_levers.py [--levers base,bias-correction,...] [--json OUT]
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from augpaint_fast.assets import SHIPPED_WEIGHTS  # noqa: E402
from augpaint_fast.bench.configs import BenchConfig  # noqa: E402
from augpaint_fast.bench.quality_set import QualitySet  # noqa: E402
from augpaint_fast.core.schedule import ddim_schedule  # noqa: E402
from augpaint_fast.data.phantom import make_phantom  # noqa: E402
from augpaint_fast.engines import create_engine, openvino_engine  # noqa: E402
from augpaint_fast.export import int8  # noqa: E402
from augpaint_fast.export.onnx_export import export_all  # noqa: E402
from augpaint_fast.job.calibrate import calibration  # noqa: E402


def levers() -> dict[str, dict]:
    """name -> {"recipe": int8.Recipe overrides, "images": calibration images}."""
    from nncf.quantization.advanced_parameters import OverflowFix, QuantizationParameters

    # the recipe the first levers were measured against: export --int8's before any of them (no attention in
    # float32, NNCF's own activation ranges, no SmoothQuant)
    base = replace(int8.DEFAULT_RECIPE, float_layers=tuple(p for p in int8.FLOAT_LAYERS if "attn" not in p),
                   model_type=None, activation_ranges=None)
    attention = replace(base, float_layers=int8.FLOAT_LAYERS)  # the default between the two rounds of levers
    return {
        "base": dict(recipe=base),
        "no-ignored-scope": dict(recipe=replace(base, float_layers=())),
        "bias-correction": dict(recipe=replace(base, fast_bias_correction=False)),
        "16-images": dict(recipe=base, images=16),
        "attention-fp32": dict(recipe=attention),
        "outer-level-fp32": dict(recipe=replace(base, float_layers=base.float_layers + (
            ".*/down_blocks\\.0\\..*", ".*/up_blocks\\.2\\..*"))),
        "overflow-fix-all": dict(recipe=replace(base, advanced=dict(overflow_fix=OverflowFix.ENABLE))),
        "overflow-fix-off": dict(recipe=replace(base, advanced=dict(overflow_fix=OverflowFix.DISABLE))),
        "smoothquant": dict(recipe=replace(base, model_type="transformer")),
        "minmax-ranges": dict(recipe=replace(base, activation_ranges="minmax")),
        "performance-preset": dict(recipe=replace(base, preset="performance")),
        "per-tensor-weights": dict(recipe=replace(base, advanced=dict(
            weights_quantization_params=QuantizationParameters(per_channel=False)))),
        # the two levers that reached the exact tolerance, on top of attention-fp32: alone, together (today's
        # default, export.int8.DEFAULT_RECIPE), and with nothing kept in float32
        "attention-fp32+minmax": dict(recipe=replace(attention, activation_ranges="minmax")),
        "attention-fp32+smoothquant": dict(recipe=replace(attention, model_type="transformer")),
        "default": dict(recipe=int8.DEFAULT_RECIPE),
        "minmax-everything-int8": dict(recipe=replace(base, float_layers=(), activation_ranges="minmax")),
    }


def speed(ae, unet, cache: Path, rounds: int, batch: int) -> float:
    """OpenVINO float32 ms per U-Net call / int8 ms per call (one thread, interleaved rounds, medians)."""
    ov = dict(cache_dir=str(cache), threads=1, batch_sizes=(batch,))
    calls = {d: create_engine("openvino", ae, unet, dtype=d, **ov).denoiser for d in ("float32", "int8")}
    g = torch.Generator().manual_seed(0)
    z = torch.randn(batch, unet.cfg.in_channels, unet.cfg.latent_size, unet.cfg.latent_size, generator=g)
    t = torch.linspace(0, 999, batch).round().to(torch.int64)
    times = {d: [] for d in calls}
    for fn in calls.values():
        fn(z, t)
    for _ in range(rounds):
        for d, fn in calls.items():
            t0 = time.perf_counter()
            fn(z, t)
            times[d].append(time.perf_counter() - t0)
    return statistics.median(times["float32"]) / statistics.median(times["int8"])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--weights", type=Path, default=SHIPPED_WEIGHTS)
    p.add_argument("--levers", default=None, help="comma-separated names (default: all)")
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--rounds", type=int, default=20)
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args()
    torch.set_num_threads(1)
    table = levers()
    names = args.levers.split(",") if args.levers else list(table)
    qs = QualitySet.load(args.weights, 4, 2)
    ae, unet = qs.autoencoder, qs.unet
    sched = ddim_schedule(args.steps, 1.0)
    with torch.no_grad():
        ref = qs.eager(sched, torch.device("cpu"))
    ref_psnr = qs.scores(ref, ref)["known_psnr_db"]
    rows = []
    with tempfile.TemporaryDirectory(prefix="int8-levers-") as tmp:
        tmp = Path(tmp)
        data = tmp / "data"
        make_phantom(data, n=16, seed=7, size=ae.cfg.resolution, progress=False)
        base_dir = tmp / "fp32"
        paths = export_all(ae, unet, base_dir, batch_sizes=(8,))
        feeds = {}
        with torch.no_grad():
            fp32 = qs.augpaint(BenchConfig("ov", "openvino"), dict(dtype="float32", threads=1,
                               cache_dir=str(base_dir)), sched)
        print(f"reference: eager fp32 known PSNR {ref_psnr:.2f} dB; openvino fp32 "
              f"{qs.scores(fp32, ref)}", flush=True)
        for name in names:
            lever = table[name]
            images = lever.get("images", 4)
            if images not in feeds:
                feeds[images] = calibration(data, args.weights, images=images, steps=args.steps).record()
            t0 = time.perf_counter()
            try:
                model = int8.quantize_onnx(paths["unet"], feeds[images], lever["recipe"])
            except Exception as exc:  # noqa: BLE001 - a lever the backend does not support is a result too
                rows.append(dict(lever=name, error=f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"))
                print(rows[-1], flush=True)
                continue
            finally:
                print(f"{name}: quantized in {time.perf_counter() - t0:.0f} s", flush=True)
            q_s = time.perf_counter() - t0
            path = tmp / f"{name}.onnx"
            path.write_bytes(model)
            openvino_engine._int8_graph = lambda *a, _p=path: _p  # this lever's model, not the cache's newest
            with torch.no_grad():
                images_int8 = qs.augpaint(BenchConfig("ov-int8", "openvino"),
                                          dict(dtype="int8", threads=1, cache_dir=str(base_dir)), sched)
                ratio = speed(ae, unet, base_dir, args.rounds, 8)
            s = qs.scores(images_int8, ref)
            rows.append(dict(lever=name, images=images, mad_grey=s["mad_grey_vs_eager"],
                             psnr_delta_db=round(s["known_psnr_db"] - ref_psnr, 2),
                             speed_vs_ov_fp32=round(ratio, 3), quantize_s=round(q_s, 1)))
            print(rows[-1], flush=True)
            if args.json:  # after each lever: a long run's first rows survive
                args.json.write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
