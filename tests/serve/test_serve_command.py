"""`mm serve` as a user starts it: a subprocess bound to loopback, reached with the openai client."""

import socket
import subprocess
import time

import httpx
import openai

from tests.mm.test_cli import MM


def test_mm_serve_answers_then_stops():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([MM, "serve", "--port", str(port), "--api-key", "k1"], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, proc.stdout.read()
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "server did not come up"
            time.sleep(0.2)
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="k1", max_retries=0)
        r = client.chat.completions.create(model="mm-tiny", messages=[{"role": "user", "content": "Hi"}], max_tokens=3)
        assert r.choices[0].message.role == "assistant"
        bad = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="wrong", max_retries=0)
        try:
            bad.models.list()
            raise AssertionError("a wrong key was accepted")
        except openai.AuthenticationError:
            pass
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_mm_serve_refuses_bad_flags_with_one_line_before_loading_anything():
    for flags in (["--port", "99999"], ["--port", "-1"], ["--max-queue", "0"], ["--max-queue", "-2"],
                  ["--max-image-pixels", "0"], ["--max-audio-seconds", "nan"], ["--deadline-seconds", "-1"],
                  ["--max-body-mb", "0"], ["--max-tokens", "0"], ["--fetch-timeout", "inf"],
                  ["--allow-url-host", " "]):
        r = subprocess.run([MM, "serve", *flags], capture_output=True, text=True, timeout=60)
        assert r.returncode != 0, flags
        last = r.stderr.strip().splitlines()[-1]
        assert last.startswith("mm serve: error:") and "Traceback" not in r.stderr, (flags, r.stderr)


def test_mm_bench_serve_runs_clients_against_a_server():
    """A short `mm bench serve` (the CI run): every request answered, no 5xx, the figures reported."""
    import json

    r = subprocess.run([MM, "bench", "serve", "--json", "--requests", "20", "--clients", "4", "--max-tokens", "3"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    result = json.loads(r.stdout)
    assert result["bench"] == "serve" and result["requests"] == 20 and result["clients"] == 4
    assert result["status_5xx"] == 0 and result["transport_errors"] == 0 and result["healthy_after"]
    assert result["ok"] + result["status_429"] == 20 and result["ok"] > 0
    assert result["requests_per_s"] > 0 and 0 < result["latency_p50_s"] <= result["latency_p99_s"]
    assert result["rss_before_mb"] > 0 and result["rss_after_mb"] > 0
