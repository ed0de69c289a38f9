"""Throughput of the HTTP service under concurrent load: requests/s, samples/s, latency percentiles, batch fill.

    .venv/bin/python benchmarks/bench_service.py --clients 8 --requests 200 --n 2 --steps 50 --batch-size 8
    .venv/bin/python benchmarks/bench_service.py --quick          # proves it works (a few seconds)
    .venv/bin/python benchmarks/bench_service.py --workers 2 --offline   # and against `sample --workers 1, 2`

Starts ``augpaint-fast serve`` (shipped tiny weights unless --weights) on a free local port, warms it up with one
request per client, then ``--clients`` threads send ``--requests`` POST /augment in total, each for ``--n``
samples of one of the phantoms, with ``--seeds`` distinct seeds (requests of one seed share engine batches).
Batch fill = samples generated / (engine batches x batch size) over the measured window, from GET /metrics.
Use --url to measure a server that is already running (its own settings then apply). ``--workers N`` starts
``serve --workers N`` (default: serve's own default). ``--offline`` then also runs ``augpaint-fast sample`` on
the same phantoms and settings, with ``--workers 1`` and ``--workers N`` (about as many samples as the load),
and reports their samples/s (from the job's summary line: models loaded, writing included), the workers'
speed-up and the service's share of the best offline figure, all in one run.
"""
from __future__ import annotations

import argparse
import json
import re
import socket
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np

from augpaint_fast import host


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _phantoms(folder: Path, count: int) -> list[tuple[bytes, bytes]]:
    """Write ``count`` phantoms into ``folder`` (the offline runs' dataset); their (image, label) PNG bytes."""
    from augpaint_fast.data.phantom import make_phantom

    make_phantom(folder, n=count, seed=2026, size=64, progress=False)
    return [((folder / "images" / f"phantom_{i:04d}.png").read_bytes(),
             (folder / "labels" / f"phantom_{i:04d}.png").read_bytes()) for i in range(count)]


def _offline(args, data: Path, out: Path, workers: int, n: int) -> float:
    """samples/s of ``augpaint-fast sample --workers W`` on ``data`` with the service's settings."""
    cmd = [sys.executable, "-m", "augpaint_fast", "sample", "--data", str(data), "--out", str(out), "--n", str(n),
           "--steps", str(args.steps), "--batch-size", str(args.batch_size), "--engine", args.engine,
           "--workers", str(workers)]
    if args.weights:
        cmd += ["--weights", args.weights]
    line = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return float(re.search(r"\(([\d.]+) samples/s\)", line).group(1))


def _start_server(args) -> tuple[subprocess.Popen, str]:
    port = _free_port()
    cmd = [sys.executable, "-m", "augpaint_fast", "serve", "--port", str(port), "--steps", str(args.steps),
           "--batch-size", str(args.batch_size), "--engine", args.engine, "--max-queue", str(args.max_queue),
           "--max-n", str(max(args.n, 1)), "--log-level", "warning"]
    if args.weights:
        cmd += ["--weights", args.weights]
    if args.workers:
        cmd += ["--workers", str(args.workers)]
    if args.max_wait_ms is not None:
        cmd += ["--max-wait-ms", str(args.max_wait_ms)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"server exited: {proc.stderr.read().decode()[-2000:]}")
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return proc, url
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    proc.kill()
    sys.exit("server did not become healthy within 300 s")


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--url", default=None, help="measure this running server instead of starting one")
    ap.add_argument("--weights", default=None)
    ap.add_argument("--engine", default="torch")
    ap.add_argument("--workers", type=int, default=None, help="serve --workers N (default: serve's default)")
    ap.add_argument("--max-wait-ms", type=float, default=None, help="serve --max-wait-ms (default: serve's)")
    ap.add_argument("--offline", action="store_true",
                    help="also run `sample --workers 1` and `--workers N` on the same data and settings")
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--max-queue", type=int, default=1024)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--requests", type=int, default=200)
    ap.add_argument("--n", type=int, default=2, help="samples per request")
    ap.add_argument("--seeds", type=int, default=1, help="distinct seeds across requests")
    ap.add_argument("--quick", action="store_true", help="tiny run to check the script works")
    ap.add_argument("--json", default=None, help="also write the results to this file")
    args = ap.parse_args(argv)
    if args.quick:
        args.steps, args.requests, args.clients, args.n = 3, 16, 4, 1
    work = Path(tempfile.mkdtemp(prefix="bench-service-"))
    proc, url = (None, args.url) if args.url else _start_server(args)
    sources = _phantoms(work / "data", 6)
    latencies, codes, lock = [], [], threading.Lock()

    def one(j: int, record: bool = True) -> None:
        image, label = sources[j % len(sources)]
        files = {"image": ("i.png", image, "image/png"), "label": ("l.png", label, "image/png")}
        data = {"n": str(args.n), "seed": str(j % args.seeds), "start": str(j // len(sources) * args.n)}
        t0 = time.perf_counter()
        r = httpx.post(f"{url}/augment", files=files, data=data, timeout=600)
        dt = time.perf_counter() - t0
        if record:
            with lock:
                latencies.append(dt)
                codes.append(r.status_code)

    try:
        with ThreadPoolExecutor(args.clients) as pool:  # warm-up: one request per client
            list(pool.map(lambda j: one(j, record=False), range(args.clients)))
        before = httpx.get(f"{url}/metrics", params={"format": "json"}, timeout=60).json()
        t0 = time.perf_counter()
        with ThreadPoolExecutor(args.clients) as pool:
            list(pool.map(one, range(args.requests)))
        wall = time.perf_counter() - t0
        after = httpx.get(f"{url}/metrics", params={"format": "json"}, timeout=60).json()
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(60)
    offline = {}
    if args.offline:  # after the server stopped: the runs do not share the cores
        per_source = max(1, args.requests * args.n // len(sources))
        for workers in sorted({1, args.workers or host.physical_cores()}):
            offline[workers] = _offline(args, work / "data", work / f"sample-{workers}", workers, per_source)
    shutil.rmtree(work, ignore_errors=True)
    ok = [lat for lat, code in zip(latencies, codes) if code == 200]
    batches, samples = after["batches"] - before["batches"], after["samples"] - before["samples"]
    result = {
        "machine": f"{host.cpu().model}, {host.cpu().logical} CPUs",
        "settings": after["settings"], "clients": args.clients, "requests": args.requests, "n": args.n,
        "seeds": args.seeds, "ok": len(ok), "refused_or_failed": len(codes) - len(ok),
        "requests_per_s": len(ok) / wall, "samples_per_s": samples / wall,
        "latency_p50_s": float(np.percentile(ok, 50)) if ok else None,
        "latency_p99_s": float(np.percentile(ok, 99)) if ok else None,
        "batch_fill": samples / (batches * after["batch_size"]) if batches else 0.0,
        "batches": batches, "wall_s": wall, "workers": after.get("workers", 1),
        "offline_samples_per_s": {f"workers_{w}": rate for w, rate in offline.items()},
    }
    print(f"{result['ok']}/{args.requests} requests ok in {wall:.1f} s: {result['requests_per_s']:.2f} req/s, "
          f"{result['samples_per_s']:.2f} samples/s, latency p50 {result['latency_p50_s']:.3f} s p99 "
          f"{result['latency_p99_s']:.3f} s, batch fill {result['batch_fill']:.2f} over {batches} batches "
          f"(batch {after['batch_size']}, {after['settings']['steps']} steps, {args.clients} clients, n={args.n}, "
          f"{args.seeds} seed(s))")
    if offline:
        best = max(offline.values())
        result["workers_speedup"] = offline[max(offline)] / offline[1]
        result["service_share_of_best_offline"] = result["samples_per_s"] / best
        runs = ", ".join(f"--workers {w}: {rate:.2f}" for w, rate in offline.items())
        print(f"offline `sample` samples/s: {runs} ({result['workers_speedup']:.2f}x one worker); the service "
              f"({result['workers']} worker(s)) serves {result['service_share_of_best_offline']:.0%} of the best")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()
