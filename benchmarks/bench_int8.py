"""int8 U-Net benchmark: one U-Net call at batch B on the eager fp32 loop, OpenVINO fp32 and OpenVINO int8, and ONNX
Runtime fp32 against ONNX Runtime on the same int8 (QDQ) graph, interleaved round by round in one process (the
ratios survive a busy machine better than the times). Not a test. Needs an export cache holding the int8 U-Net:

    augpaint-fast export --weights W --out CACHE --int8 --calibrate DATA
    OMP_NUM_THREADS=1 python benchmarks/bench_int8.py --weights W --cache CACHE --batch 8 --threads 1 --rounds 20

Quality of the same configurations (known-region PSNR, mean |diff| to fp32): run ``augpaint-fast sample`` with
``--engine openvino --dtype int8 --engine-cache CACHE`` and ``--engine torch`` on the same data and seed, then
``augpaint_fast.job.quality.run_quality(int8_out, reference=torch_out)`` (BENCHMARKS.md, int8 section).
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from augpaint_fast.engines import create_engine  # noqa: E402
from augpaint_fast.export.int8 import find_int8  # noqa: E402
from augpaint_fast.export.onnx_export import onnx_path  # noqa: E402
from augpaint_fast.export.specs import export_specs  # noqa: E402
from augpaint_fast.models.checkpoint import load_weights_folder  # noqa: E402


def _ort(path: Path, threads: int):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads, so.inter_op_num_threads = threads, 1
    session = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    return lambda z, t: torch.from_numpy(session.run(None, {"z": z.numpy(), "t": t.numpy()})[0])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--weights", type=Path, required=True)
    p.add_argument("--cache", type=Path, required=True, help="export cache with the int8 U-Net")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--rounds", type=int, default=20)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    ae, _, unet, _ = load_weights_folder(args.weights)
    spec = export_specs(ae, unet)["unet"]
    int8_file = find_int8(spec, args.cache)
    if int8_file is None:
        sys.exit(f"no int8 U-Net in {args.cache}: run augpaint-fast export --int8 first")
    ov = dict(cache_dir=str(args.cache), threads=args.threads, batch_sizes=(args.batch,))
    calls = {
        "torch-fp32 (eager)": create_engine("torch", ae, unet).denoiser,
        "openvino-fp32": create_engine("openvino", ae, unet, dtype="float32", **ov).denoiser,
        "openvino-int8": create_engine("openvino", ae, unet, dtype="int8", **ov).denoiser,
        "onnxruntime-fp32": _ort(onnx_path(spec, args.cache), args.threads),
        "onnxruntime-int8 (same QDQ graph)": _ort(int8_file, args.threads),
    }
    g = torch.Generator().manual_seed(0)
    z = torch.randn(args.batch, *spec.input_shapes["z"][1], generator=g)
    t = torch.linspace(0, 999, args.batch).round().to(torch.int64)
    times: dict[str, list[float]] = {name: [] for name in calls}
    with torch.no_grad():
        ref = calls["torch-fp32 (eager)"](z, t)
        diffs = {name: (fn(z, t) - ref).abs() for name, fn in calls.items()}  # also the warm-up call
        for _ in range(args.rounds):
            for name, fn in calls.items():
                t0 = time.perf_counter()
                fn(z, t)
                times[name].append(time.perf_counter() - t0)
    base = statistics.median(times["torch-fp32 (eager)"])
    print(f"U-Net call, batch {args.batch}, {args.threads} thread(s), median of {args.rounds} interleaved rounds; "
          f"int8 file {int8_file.name}")
    print("| config | ms per call | x eager fp32 | max rel diff to eager fp32 | mean abs diff |")
    print("|---|---|---|---|---|")
    for name, ts in times.items():
        med = statistics.median(ts)
        d = diffs[name]
        print(f"| {name} | {med * 1e3:.1f} | {base / med:.2f} | {(d.max() / ref.abs().max()).item():.3f} | "
              f"{d.mean().item():.4f} |")


if __name__ == "__main__":
    main()
