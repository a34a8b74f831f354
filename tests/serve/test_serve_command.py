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
