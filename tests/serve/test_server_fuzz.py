"""Random JSON, mutated requests and random bytes against every endpoint: only 2xx / 4xx may come back,
errors keep OpenAI's shape, and the server stays healthy."""

import base64
import copy
import json

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mm.serve import ServerLimits, create_app
from tests.conftest import tone, wav_bytes
from tests.serve.conftest import running
from tests.serve.fakes import png_bytes

SETTINGS = settings(max_examples=150, deadline=None, database=None, derandomize=True,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

scalars = (st.none() | st.booleans() | st.integers(min_value=-(2**80), max_value=2**80)
           | st.floats() | st.text(max_size=12) | st.sampled_from(["", "user", "assistant", "text", "image_url",
                                                                     "data:image/png;base64,AAAA", "en", "zh"]))
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=12)

PNG = "data:image/png;base64," + base64.b64encode(png_bytes(size=(40, 32))).decode()
WAV = base64.b64encode(wav_bytes(tone(seconds=0.3))).decode()
VALID = {
    "/v1/chat/completions": {
        "messages": [{"role": "user", "content": [{"type": "text", "text": "What is it?"},
                                                  {"type": "image_url", "image_url": {"url": PNG}},
                                                  {"type": "input_audio", "input_audio": {"data": WAV}}]},
                     {"role": "assistant", "content": "A shape."},
                     {"role": "user", "content": "Which colour?"}],
        "max_tokens": 2, "temperature": 0.5, "top_p": 0.9, "top_k": 5, "seed": 1, "stream": False,
        "stream_options": {"include_usage": True}, "n": 1, "repetition_penalty": 1.1},
    "/": {"text": "What is it?", "image": PNG.partition(",")[2], "history": [["Hi", "Hello"]], "max_length": 2,
          "temperature": 0.5, "top_p": 0.9},
    "/v1/captions": {"items": [{"image": PNG.partition(",")[2]}, {"audio": WAV}], "max_tokens": 2, "lang": "en",
                     "prompt": "Describe it.", "seed": 3},
}


def paths(value, prefix=()):
    """Every key path into a JSON value (so a mutation can reach any field)."""
    out = [prefix] if prefix else []
    if isinstance(value, dict):
        for k, v in value.items():
            out += paths(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out += paths(v, (*prefix, i))
    return out


def mutated(endpoint):
    base = VALID[endpoint]
    return st.lists(st.tuples(st.sampled_from(paths(base)), json_values), min_size=1, max_size=3).map(
        lambda changes: _apply(base, changes))


def _apply(base, changes):
    body = copy.deepcopy(base)
    for path, value in changes:
        target = body
        try:
            for key in path[:-1]:
                target = target[key]
            target[path[-1]] = value
        except (KeyError, IndexError, TypeError):
            pass  # an earlier change removed the path
    return body


@pytest.fixture(scope="module")
def server(tiny):
    limits = ServerLimits(max_new_tokens=4, max_history_turns=4, max_items=4, max_batch=4, deadline_seconds=30)
    with running(create_app(tiny, limits=limits)) as url:
        yield url
        assert httpx.get(url + "/health", timeout=5).json()["status"] == "ok"


def check(r: httpx.Response) -> None:
    assert r.status_code < 500, (r.status_code, r.text[:500])
    if r.headers.get("content-type", "").startswith("text/event-stream"):
        assert '"server_error"' not in r.text, r.text[:500]
        return
    body = r.json()
    if r.status_code >= 400:
        assert isinstance(body["error"]["message"], str) and body["error"]["type"], body


def post(url, body) -> httpx.Response:
    raw = body if isinstance(body, bytes) else json.dumps(body, allow_nan=True).encode()
    return httpx.post(url, content=raw, headers={"content-type": "application/json"}, timeout=60)


@pytest.mark.parametrize("endpoint", list(VALID))
def test_valid_bodies_are_answered(server, endpoint):
    r = post(server + endpoint, VALID[endpoint])
    assert r.status_code == 200, r.text


@pytest.mark.parametrize("endpoint", list(VALID))
def test_mutated_requests_never_5xx(server, endpoint):
    @SETTINGS
    @given(body=mutated(endpoint))
    def run(body):
        check(post(server + endpoint, body))

    run()


@pytest.mark.parametrize("endpoint", list(VALID))
def test_random_json_and_random_bytes_never_5xx(server, endpoint):
    @SETTINGS
    @given(body=json_values | st.binary(max_size=200))
    def run(body):
        check(post(server + endpoint, body))

    run()
    assert httpx.get(server + "/health", timeout=5).status_code == 200
