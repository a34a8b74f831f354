"""`mm bench serve`: concurrent clients against a real `mm serve` process, as a deployment sees it.

Starts `mm serve` (a subprocess on a free loopback port), waits for /health, warms it up, then sends a
fixed number of chat completions (text-only and text + image, alternately) from `clients` threads at once.
Reports requests/s, p50 / p99 latency, how many were refused with 429, how many failed with a 5xx (must be
none), and the server's resident memory (VmRSS) after the warm-up and after the run, so a leak shows as
growth that scales with the number of requests.
"""

from __future__ import annotations

import base64
import concurrent.futures as cf
import io
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mb(pid: int) -> float:
    """Resident memory of process `pid` in MiB (Linux /proc; NaN elsewhere)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def _images(n: int = 4) -> list[str]:
    """A few distinct small PNGs as data: URLs (distinct, so the embedding cache does not answer them all)."""
    from PIL import Image, ImageDraw

    out = []
    for i, colour in enumerate(["red", "green", "blue", "orange"][:n]):
        img = Image.new("RGB", (128, 96), "white")
        ImageDraw.Draw(img).ellipse([10 + 5 * i, 10, 70 + 5 * i, 70], fill=colour)
        buf = io.BytesIO()
        img.save(buf, format="PNG")
        out.append("data:image/png;base64," + base64.b64encode(buf.getvalue()).decode())
    return out


def _body(i: int, images: list[str], max_tokens: int) -> dict[str, Any]:
    if i % 2:
        content: Any = [{"type": "text", "text": "What colour is the shape?"},
                        {"type": "image_url", "image_url": {"url": images[i // 2 % len(images)]}}]
    else:
        content = f"Say something about the number {i}."
    return {"model": "bench", "messages": [{"role": "user", "content": content}], "max_tokens": max_tokens}


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0-100) by linear interpolation, as numpy's default."""
    data = sorted(values)
    if not data:
        return float("nan")
    k = (len(data) - 1) * q / 100
    lo, hi = int(k), min(int(k) + 1, len(data) - 1)
    return data[lo] + (data[hi] - data[lo]) * (k - lo)


def bench_serve(requests: int = 1000, clients: int = 8, max_tokens: int = 8, model: str = "mm-tiny",
                max_queue: int | None = None, startup_timeout: float = 300.0) -> dict[str, Any]:
    import httpx

    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    max_queue = max_queue or 2 * clients
    cmd = [sys.executable, "-m", "mm", "serve", "--port", str(port), "--model", model,
           "--max-queue", str(max_queue), "--max-tokens", str(max(max_tokens, 1))]
    with tempfile.TemporaryFile("w+") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        try:
            _wait_healthy(proc, url, startup_timeout, log)
            images = _images()
            with httpx.Client(timeout=120) as warm:
                for i in range(4):  # loads lazily built state (encoders, tokenizer caches) before measuring
                    warm.post(url + "/v1/chat/completions", json=_body(i, images, max_tokens)).raise_for_status()
            rss_before = rss_mb(proc.pid)
            statuses: list[int] = []
            latencies: list[float] = []
            errors: list[str] = []

            def client(ids: range) -> None:
                with httpx.Client(timeout=300) as http:
                    for i in ids:
                        t = time.perf_counter()
                        try:
                            r = http.post(url + "/v1/chat/completions", json=_body(i, images, max_tokens))
                        except httpx.HTTPError as e:
                            errors.append(f"{type(e).__name__}: {e}")
                            continue
                        latencies.append(time.perf_counter() - t)
                        statuses.append(r.status_code)

            t0 = time.perf_counter()
            with cf.ThreadPoolExecutor(clients) as pool:
                list(pool.map(client, [range(c, requests, clients) for c in range(clients)]))
            elapsed = time.perf_counter() - t0
            rss_after = rss_mb(proc.pid)
            healthy = httpx.get(url + "/health", timeout=10).status_code == 200
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    ok = [lat for lat, s in zip(latencies, statuses) if s == 200]
    return {
        "requests": requests, "clients": clients, "max_tokens": max_tokens, "max_queue": max_queue,
        "ok": len(ok), "status_429": statuses.count(429), "status_5xx": sum(s >= 500 for s in statuses),
        "other_status": sum(s not in (200, 429) and s < 500 for s in statuses), "transport_errors": len(errors),
        "seconds": elapsed, "requests_per_s": len(ok) / elapsed,
        "latency_p50_s": percentile(ok, 50), "latency_p99_s": percentile(ok, 99),
        "latency_mean_s": statistics.fmean(ok) if ok else float("nan"),
        "rss_before_mb": rss_before, "rss_after_mb": rss_after, "rss_growth_mb": rss_after - rss_before,
        "healthy_after": healthy, "first_errors": errors[:3],
    }


def _wait_healthy(proc: subprocess.Popen, url: str, timeout: float, log: Any) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            log.seek(0)
            raise RuntimeError(f"mm serve exited with {proc.returncode}:\n{log.read()[-2000:]}")
        try:
            if httpx.get(url + "/health", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"mm serve did not answer /health within {timeout:g} s")
        time.sleep(0.2)
