"""VisualGLM-compatible endpoint, captions, limits, auth and the worker queue."""

import base64
import concurrent.futures as cf
import io
import re
import time

import httpx

from mm.serve import Limits, create_app
from tests.conftest import make_image, tone, wav_bytes
from tests.golden import GOLDEN
from tests.serve.conftest import running
from tests.serve.fakes import occupy_worker


def b64_png(colour="red"):
    buf = io.BytesIO()
    make_image(colour).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


def test_visualglm_api_answers_a_synthetic_question(server):
    golden = GOLDEN["three_shapes"]
    image = base64.b64encode(golden.path().read_bytes()).decode()
    r = httpx.post(server + "/", json={"image": image, "text": golden.question, "history": []}, timeout=60)
    assert r.json()["result"] == golden.answer


def test_visualglm_api_returns_the_updated_history(server, tiny):
    history = [["What is this?", "A picture."]]
    r = httpx.post(server + "/", json={"image": b64_png(), "text": "What colour is it?", "history": history,
                                       "max_length": 8}, timeout=60)
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == 200 and re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", body["time"])
    assert body["history"] == [*history, ["What colour is it?", body["result"]]]
    expected, _ = tiny.chat("What colour is it?", image=make_image(), history=history, max_new_tokens=8)
    assert body["result"] == expected
    # Image optional, as in VisualGLM; text required.
    assert httpx.post(server + "/", json={"text": "hello", "history": []}, timeout=60).status_code == 200
    r = httpx.post(server + "/", json={"image": b64_png(), "history": []})
    assert r.status_code == 400 and "'text'" in r.json()["error"]["message"]


def test_captions_in_order_for_mixed_items(server, tiny):
    items = [{"image": b64_png("red")}, {"audio": base64.b64encode(wav_bytes(tone())).decode()}, {"image": b64_png("blue")}]
    r = httpx.post(server + "/v1/captions", json={"items": items, "max_tokens": 6}, timeout=60)
    assert r.status_code == 200
    data = r.json()["data"]
    assert [d["modality"] for d in data] == ["image", "audio", "image"]
    assert data[0]["caption"] == tiny.caption([make_image("red")], max_new_tokens=6)[0]
    bad = httpx.post(server + "/v1/captions", json={"items": [{"image": b64_png(), "audio": "x"}]})
    assert bad.status_code == 400 and "exactly one" in bad.json()["error"]["message"]


def test_health_answers_while_the_model_is_busy_and_a_full_queue_is_429(tiny):
    import threading

    app = create_app(tiny, max_queue=1)
    release = threading.Event()

    with running(app) as url, cf.ThreadPoolExecutor(4) as pool:
        blocker = occupy_worker(app, pool, release)
        time.sleep(0.3)
        msg = {"messages": [{"role": "user", "content": "How many beeps?"}], "max_tokens": 4}
        queued = pool.submit(httpx.post, url + "/v1/chat/completions", json=msg, timeout=120)
        time.sleep(0.5)
        refused = httpx.post(url + "/v1/chat/completions", json=msg, timeout=30)
        assert refused.status_code == 429 and refused.json()["error"]["type"] == "rate_limit_error"
        t = time.perf_counter()
        health = httpx.get(url + "/health", timeout=5)
        assert health.status_code == 200 and time.perf_counter() - t < 1.0
        assert health.json()["queued"] == 1
        release.set()
        assert blocker.result(timeout=60) == ["done"]
        assert queued.result().status_code == 200  # the waiting request is served once the model is free


def test_api_key_body_size_and_media_limits(tiny):
    limits = Limits(max_body_bytes=200_000, max_image_pixels=50 * 50, max_audio_seconds=2.0)
    app = create_app(tiny, api_key="sekrit", limits=limits)
    with running(app) as url:
        msg = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
        assert httpx.post(url + "/v1/chat/completions", json=msg).status_code == 401
        ok = httpx.post(url + "/v1/chat/completions", json=msg, headers={"Authorization": "Bearer sekrit"}, timeout=60)
        assert ok.status_code == 200
        assert httpx.get(url + "/health").status_code == 200  # health needs no key
        auth = {"Authorization": "Bearer sekrit"}
        big = httpx.post(url + "/", json={"text": "x" * 300_000}, headers=auth)
        assert big.status_code == 413
        img = {"messages": [{"role": "user", "content": [
            {"type": "text", "text": "hi"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64," + b64_png()}}]}]}
        r = httpx.post(url + "/v1/chat/completions", json=img, headers=auth)
        assert r.status_code == 400 and "the limit is 2500 (Limits.max_image_pixels" in r.json()["error"]["message"]
        long_audio = base64.b64encode(wav_bytes(tone(440, 3.0))).decode()
        r = httpx.post(url + "/v1/captions", json={"items": [{"audio": long_audio}]}, headers=auth)
        assert r.status_code == 400 and "the limit is 2 s" in r.json()["error"]["message"]


def test_video_captions_and_the_video_length_limit(video_model, clips):
    import json as _json

    rec = next(_json.loads(x) for x in clips.read_text().splitlines() if '"video"' in x)
    clip = base64.b64encode((clips.parent / rec["video"]).read_bytes()).decode()
    limits = Limits(max_video_seconds=1.0)
    with running(create_app(video_model, limits=limits)) as url:
        r = httpx.post(url + "/v1/captions", json={"items": [{"video": clip}], "max_tokens": 4}, timeout=60)
        assert r.status_code == 400 and "the limit is 1 s" in r.json()["error"]["message"]
    with running(create_app(video_model)) as url:
        r = httpx.post(url + "/v1/captions", json={"items": [{"image": b64_png()}, {"video": clip}], "max_tokens": 4},
                       timeout=60)
        assert r.status_code == 200
        data = r.json()["data"]
        assert [d["modality"] for d in data] == ["image", "video"]
        assert data[1]["caption"] == video_model.caption([clips.parent / rec["video"]], max_new_tokens=4)[0]
        bad = httpx.post(url + "/v1/captions", json={"items": [{"video": base64.b64encode(b"junk").decode()}]})
        assert bad.status_code == 400 and "not a readable video" in bad.json()["error"]["message"]
