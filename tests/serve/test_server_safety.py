"""What the server does with hostile or careless clients: remote images (SSRF, slow, large, broken hosts),
malformed bodies, max_tokens rules, history bounds, disconnects and deadlines, and its own bugs.

The model is a fake (`tests.serve.fakes.FakeChat`) except where the answer matters.
"""

import base64
import concurrent.futures as cf
import socket
import threading
import time

import httpx
import pytest

from mm.errors import InputError
from mm.limits import Limits
from mm.serve import ServerLimits, create_app
from mm.serve.worker import Worker
from tests.serve.conftest import running
from tests.serve.fakes import FakeChat, ImageHost, image_host, occupy_worker, png_bytes


def ask(text="hi", url=None, **extra):
    content = [{"type": "text", "text": text}]
    if url is not None:
        content.append({"type": "image_url", "image_url": {"url": url}})
    return {"messages": [{"role": "user", "content": content}], "max_tokens": 2, **extra}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- remote images ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def hosts():
    """An allowed image host, a second host that must never be reached, and a served app allowing the first."""
    with image_host() as (allowed, hits), image_host() as (other, other_hits):
        closed = free_port()
        limits = ServerLimits(url_allowlist=(allowed.removeprefix("http://"), f"127.0.0.1:{closed}"),
                              fetch_timeout=1.0, max_file_bytes=100_000)
        chat = FakeChat()
        with running(create_app(chat, limits=limits)) as url:
            yield {"url": url, "allowed": allowed, "hits": hits, "other": other, "other_hits": other_hits,
                   "closed": f"http://127.0.0.1:{closed}", "chat": chat}


def test_an_allowlisted_image_is_fetched_and_given_to_the_model(hosts):
    r = httpx.post(hosts["url"] + "/v1/chat/completions", json=ask(url=hosts["allowed"] + "/img.png"), timeout=30)
    assert r.status_code == 200, r.text
    assert hosts["chat"].calls[-1]["image"] == [ImageHost.body]
    # A redirect to the same allowed host is followed, hop by hop.
    hop = f"{hosts['allowed']}/redirect?to={hosts['allowed']}/img.png"
    r = httpx.post(hosts["url"] + "/v1/chat/completions", json=ask(url=hop), timeout=30)
    assert r.status_code == 200, r.text


@pytest.mark.parametrize("path,message", [
    ("/redirect?to={other}/img.png", "is not in this server's --allow-url-host list"),
    ("/redirect?to=file:///etc/passwd", "only http and https URLs"),
    ("/redirect?to=ftp://127.0.0.1/x.png", "only http and https URLs"),
    ("/missing", "the server answered 404"),
    ("/slow", "within 1 s"),
    ("/trickle", "within 1 s"),
    ("/big", "larger than 100000 bytes"),
    ("/big-declared", "the image is 400000 bytes"),
    ("/page.html", "not an image"),
])
def test_every_remote_image_failure_is_a_400_and_no_other_host_is_reached(hosts, path, message):
    url = hosts["allowed"] + path.format(other=hosts["other"])
    t = time.monotonic()
    r = httpx.post(hosts["url"] + "/v1/chat/completions", json=ask(url=url), timeout=30)
    assert r.status_code == 400, r.text
    assert message in r.json()["error"]["message"] and r.json()["error"]["type"] == "invalid_request_error"
    assert time.monotonic() - t < 5  # the fetch budget (1 s) bounds the slow hosts
    assert hosts["other_hits"] == []


def test_refused_connections_other_hosts_and_other_schemes_are_400(hosts):
    for url, message in [(hosts["closed"] + "/img.png", "could not fetch it"),
                         (hosts["other"] + "/img.png", "is not in this server's --allow-url-host list"),
                         ("file:///etc/passwd", "file: URLs are refused"),
                         ("http://[::1/x.png", "not a valid URL")]:
        r = httpx.post(hosts["url"] + "/v1/chat/completions", json=ask(url=url), timeout=30)
        assert r.status_code == 400 and message in r.json()["error"]["message"], (url, r.text)
    assert hosts["other_hits"] == []


def test_health_answers_while_a_slow_fetch_is_in_progress(hosts):
    with cf.ThreadPoolExecutor(1) as pool:
        slow = pool.submit(httpx.post, hosts["url"] + "/v1/chat/completions",
                           json=ask(url=hosts["allowed"] + "/slow"), timeout=30)
        time.sleep(0.3)
        t = time.monotonic()
        assert httpx.get(hosts["url"] + "/health", timeout=5).status_code == 200
        assert time.monotonic() - t < 0.5
        assert slow.result().status_code == 400


# -- malformed bodies ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fake_server(tiny):
    chat = FakeChat()
    chat.model = tiny.model  # captions prepare their media with the real encoders
    limits = ServerLimits(max_new_tokens=16, max_history_turns=3, max_history_bytes=1000)
    with running(create_app(chat, limits=limits)) as url:
        yield url, chat


MSG = '{"messages": [{"role": "user", "content": "hi"}], '
BAD_BODIES = [
    (MSG + '"temperature": NaN}', "NaN"),
    (MSG + '"temperature": Infinity}', "Infinity"),
    (MSG + '"temperature": -Infinity}', "Infinity"),
    (MSG + '"temperature": 1e400}', "out of range"),
    (MSG + '"temperature": -1}', "'temperature' must be in [0.0, 100.0]"),
    (MSG + '"temperature": "hot"}', "'temperature' must be a number"),
    (MSG + '"top_p": 0}', "'top_p' must be in (0.0, 1.0]"),
    (MSG + '"seed": 1180591620717411303424}', "'seed' must be between 0 and 18446744073709551615"),
    (MSG + '"seed": -1}', "'seed' must be between"),
    (MSG + '"seed": 1.5}', "'seed' must be an integer"),
    (MSG + '"seed": ' + "9" * 5000 + "}", "a number too large to read"),
    (MSG + '"top_k": true}', "'top_k' must be an integer"),
    (MSG + '"max_tokens": 0}', "'max_tokens' must be >= 1"),
    (MSG + '"max_tokens": -5}', "'max_tokens' must be >= 1"),
    (MSG + '"max_tokens": 2.5}', "'max_tokens' must be an integer"),
    (MSG + '"max_tokens": "5"}', "'max_tokens' must be an integer"),
    (MSG + '"max_tokens": 17}', "at most 16"),
    (MSG + '"stream": "yes"}', "'stream' must be true or false"),
    (MSG + '"stream_options": 3}', "'stream_options' must be a JSON object"),
    ('{"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": 12345}}]}]}',
     "image_url.url must be a string"),
    ('{"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": "data:x"}]}]}',
     "image_url must be a JSON object"),
    ('{"messages": [{"role": "user", "content": [{"type": "image_url"}]}]}', "image_url must be a JSON object"),
    ('{"messages": [{"role": "user", "content": [{"type": "text"}]}]}', "text must be a string"),
    ('{"messages": [{"role": "user", "content": [{"type": "input_audio", "input_audio": []}]}]}',
     "input_audio must be a JSON object"),
    ('{"messages": [{"role": "user", "content": [{"type": 7}]}]}', "unsupported content part"),
    ('{"messages": [{"role": 5, "content": "hi"}]}', "string 'role'"),
    ('{"messages": [{"role": "user", "content": 5}]}', "must be a string or a non-empty list"),
    ('{"messages": [{"role": "user", "content": "\\ud800"}]}', "not well-formed"),
    ('{"messages": "hi"}', "'messages' must be a non-empty list"),
    ("[" * 5000 + "]" * 5000, "nested too deeply"),
    ('{"a":' * 100 + "1" + "}" * 100, "nested too deeply"),
    ("[1, 2", "not valid JSON"),
    ("", "not valid JSON"),
]


@pytest.mark.parametrize("body,message", BAD_BODIES)
def test_malformed_chat_requests_are_400_naming_the_problem(fake_server, body, message):
    url, _ = fake_server
    r = httpx.post(url + "/v1/chat/completions", content=body.encode(), headers={"content-type": "application/json"})
    assert r.status_code == 400, r.text
    assert message in r.json()["error"]["message"] and r.json()["error"]["type"] == "invalid_request_error"


def test_bodies_that_are_not_utf8_or_not_objects_are_400(fake_server):
    url, _ = fake_server
    for path in ("/v1/chat/completions", "/", "/v1/captions"):
        for raw in (b"\xff\xfe\x00", b"[]", b"null", b"12", b'"text"'):
            r = httpx.post(url + path, content=raw)
            assert r.status_code == 400 and "error" in r.json(), (path, raw, r.text)


# -- max_tokens -----------------------------------------------------------------------------------


def test_max_tokens_omitted_is_clamped_to_the_server_cap(fake_server):
    url, chat = fake_server
    r = httpx.post(url + "/v1/chat/completions", json={"messages": [{"role": "user", "content": "hi"}]}, timeout=30)
    assert r.status_code == 200 and chat.calls[-1]["max_new_tokens"] == 16  # min(256, --max-tokens 16)
    assert r.json()["usage"]["completion_tokens"] == 16
    r = httpx.post(url + "/v1/chat/completions", json=ask(max_tokens=3), timeout=30)
    assert r.status_code == 200 and chat.calls[-1]["max_new_tokens"] == 3
    r = httpx.post(url + "/v1/chat/completions", json={**ask(), "max_completion_tokens": 5}, timeout=30)
    assert r.status_code == 200 and chat.calls[-1]["max_new_tokens"] == 5


def test_visualglm_max_length_follows_the_same_rules(fake_server):
    url, chat = fake_server
    assert httpx.post(url + "/", json={"text": "hi"}, timeout=30).status_code == 200
    assert chat.calls[-1]["max_new_tokens"] == 16
    for bad, message in ((0, "'max_length' must be >= 1"), (17, "at most 16"), ("8", "must be an integer")):
        r = httpx.post(url + "/", json={"text": "hi", "max_length": bad})
        assert r.status_code == 400 and message in r.json()["error"]["message"]
    for bad, message in ((float("nan"), "NaN"), (True, "'temperature' must be a number")):
        body = '{"text": "hi", "temperature": %s}' % ("NaN" if bad != bad else "true")
        r = httpx.post(url + "/", content=body)
        assert r.status_code == 400 and message in r.json()["error"]["message"]


def test_caption_max_tokens_default_is_clamped_and_zero_refused(fake_server):
    url, chat = fake_server
    item = {"image": base64.b64encode(png_bytes()).decode()}
    r = httpx.post(url + "/v1/captions", json={"items": [item]}, timeout=30)
    assert r.status_code == 200 and chat.calls[-1]["max_new_tokens"] == 16  # min(64, 16)
    r = httpx.post(url + "/v1/captions", json={"items": [item], "max_tokens": 0})
    assert r.status_code == 400 and "'max_tokens' must be >= 1" in r.json()["error"]["message"]


# -- history bounds -------------------------------------------------------------------------------


def test_history_over_the_turn_or_byte_limit_is_400_on_both_endpoints(fake_server):
    url, chat = fake_server
    ok = [["q", "a"]] * 3
    assert httpx.post(url + "/", json={"text": "hi", "history": ok, "max_length": 1}, timeout=30).status_code == 200
    r = httpx.post(url + "/", json={"text": "hi", "history": ok * 2})
    assert r.status_code == 400 and "6 turns; this server takes at most 3" in r.json()["error"]["message"]
    r = httpx.post(url + "/", json={"text": "hi", "history": [["q" * 600, "a" * 600]]})
    assert r.status_code == 400 and "1200 bytes of text; this server takes at most 1000" in r.json()["error"]["message"]
    r = httpx.post(url + "/", json={"text": "hi", "history": [["q", 5]]})
    assert r.status_code == 400 and "pairs of strings" in r.json()["error"]["message"]
    turns = [m for _ in range(4) for m in ({"role": "user", "content": "q"}, {"role": "assistant", "content": "a"})]
    r = httpx.post(url + "/v1/chat/completions", json={"messages": [*turns, {"role": "user", "content": "hi"}]})
    assert r.status_code == 400 and "4 turns; this server takes at most 3" in r.json()["error"]["message"]


def test_a_question_far_past_any_context_is_refused_before_tokenizing(fake_server):
    url, chat = fake_server
    calls = len(chat.calls)
    r = httpx.post(url + "/v1/chat/completions", json=ask("word " * 20_000), timeout=30)
    assert r.status_code == 400 and "the question is 100000 bytes" in r.json()["error"]["message"]
    r = httpx.post(url + "/", json={"text": "word " * 20_000}, timeout=30)
    assert r.status_code == 400 and "--max-text-kb" in r.json()["error"]["message"]
    assert len(chat.calls) == calls


def test_a_2000_pair_history_is_refused_at_once(fake_server):
    url, _ = fake_server
    history = [[f"question {i} " * 10, f"answer {i} " * 10] for i in range(2000)]  # about 400 KB
    t = time.monotonic()
    r = httpx.post(url + "/", json={"text": "hi", "history": history}, timeout=30)
    assert r.status_code == 400 and time.monotonic() - t < 2


# -- disconnects and deadlines --------------------------------------------------------------------


def test_a_client_that_gives_up_stops_its_generation():
    chat = FakeChat(delay=0.01)
    app = create_app(chat)
    with running(app) as url:
        with pytest.raises(httpx.ReadTimeout):
            httpx.post(url + "/v1/chat/completions", json=ask(max_tokens=1000), timeout=0.5)
        time.sleep(1.0)  # the disconnect poll (0.25 s) and one more step
        stopped_at = chat.steps
        time.sleep(0.5)
        assert chat.steps == stopped_at < 300  # stopped, long before its 1000 steps
        assert app.state.worker.pending == 0
        t = time.monotonic()
        r = httpx.post(url + "/v1/chat/completions", json=ask(max_tokens=2), timeout=10)
        assert r.status_code == 200 and time.monotonic() - t < 2  # the model is free again
        # The same for VisualGLM's endpoint.
        with pytest.raises(httpx.ReadTimeout):
            httpx.post(url + "/", json={"text": "hi", "max_length": 1000}, timeout=0.5)
        time.sleep(1.0)
        stopped_at = chat.steps
        time.sleep(0.5)
        assert chat.steps == stopped_at


def test_a_request_still_queued_at_its_deadline_is_503_and_never_runs():
    chat = FakeChat()
    app = create_app(chat, limits=ServerLimits(deadline_seconds=0.5))
    release = threading.Event()

    with running(app) as url, cf.ThreadPoolExecutor(2) as pool:
        blocker = occupy_worker(app, pool, release, seconds=30)
        time.sleep(0.2)
        t = time.monotonic()
        r = httpx.post(url + "/v1/chat/completions", json=ask(), timeout=10)
        assert r.status_code == 503 and "timed out waiting for the model" in r.json()["error"]["message"]
        assert time.monotonic() - t < 2
        release.set()
        assert blocker.result(timeout=10) == ["done"]
        time.sleep(0.2)
        assert chat.calls == []  # the timed-out request was dropped, not run late
        assert httpx.get(url + "/health").json()["queued"] == 0


def test_the_deadline_reaches_the_model_and_a_cut_answer_reads_as_length():
    chat = FakeChat()
    chat.finish = "deadline"
    with running(create_app(chat, limits=ServerLimits(deadline_seconds=42))) as url:
        t = time.monotonic()
        r = httpx.post(url + "/v1/chat/completions", json=ask(), timeout=10)
        assert r.status_code == 200 and r.json()["choices"][0]["finish_reason"] == "length"
        assert t + 41 < chat.calls[-1]["deadline"] < time.monotonic() + 42
        assert isinstance(chat.calls[-1]["limits"], ServerLimits)
        with httpx.stream("POST", url + "/v1/chat/completions", json=ask(stream=True), timeout=10) as s:
            text = s.read().decode()
        assert '"finish_reason": "length"' in text and "deadline" not in text


# -- the server's own bugs and its limits ---------------------------------------------------------


def test_an_unexpected_error_is_a_logged_500_with_the_openai_shape(caplog):
    with running(create_app(FakeChat(error=RuntimeError("boom")))) as url:
        r = httpx.post(url + "/v1/chat/completions", json=ask(), timeout=10)
        assert r.status_code == 500 and r.json()["error"]["type"] == "server_error"
        assert "RuntimeError" in r.json()["error"]["message"]
        assert httpx.get(url + "/health").status_code == 200
    assert any("failed" in rec.getMessage() and rec.exc_info for rec in caplog.records)


def test_input_errors_from_the_model_are_400():
    with running(create_app(FakeChat(error=InputError("the question is empty")))) as url:
        r = httpx.post(url + "/v1/chat/completions", json=ask(), timeout=10)
        assert r.status_code == 400 and r.json()["error"]["message"] == "the question is empty"


def test_server_limits_share_the_defaults_and_refuse_bad_values():
    shared = Limits()
    assert {k: getattr(ServerLimits(), k) for k in shared.describe()} == shared.describe()
    for bad in ({"max_body_bytes": 0}, {"max_new_tokens": -1}, {"fetch_timeout": float("nan")},
                {"max_queue_typo": 1}, {"max_history_turns": 2.5}, {"url_allowlist": "localhost"}):
        with pytest.raises((InputError, TypeError)):
            ServerLimits(**bad)
    for bad in (0, -1, 1.5, True):
        with pytest.raises(InputError, match="max_queue"):
            Worker(bad)


# -- media that used to hang the process ----------------------------------------------------------


def test_a_corrupt_clip_never_freezes_the_server(video_model, tmp_path):
    """The clip with random bytes in its `mdat` froze the whole server on the 4th /v1/captions; now it is
    decoded in a child process with a deadline, and /health answers throughout."""
    from tests.encoders.media_faults import corrupt_payload, noisy_clip

    bad = corrupt_payload(noisy_clip(tmp_path / "ok.mp4", audio=True), tmp_path / "bad.mp4")
    clip = base64.b64encode(bad.read_bytes()).decode()
    app = create_app(video_model, limits=ServerLimits(deadline_seconds=10))
    with running(app) as url, cf.ThreadPoolExecutor(1) as pool:
        for _ in range(5):
            pending = pool.submit(httpx.post, url + "/v1/captions", json={"items": [{"video": clip}], "max_tokens": 2},
                                  timeout=60)
            while not pending.done():
                t = time.monotonic()
                assert httpx.get(url + "/health", timeout=5).status_code == 200
                assert time.monotonic() - t < 1
                time.sleep(0.1)
            r = pending.result()
            assert r.status_code in (200, 400), r.text
            if r.status_code == 400:
                assert r.json()["error"]["type"] == "invalid_request_error"
        # A good request is still served afterwards.
        item = {"image": base64.b64encode(png_bytes()).decode()}
        assert httpx.post(url + "/v1/captions", json={"items": [item], "max_tokens": 2}, timeout=60).status_code == 200
