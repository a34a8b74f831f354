"""The official `openai` client against `mm serve`'s OpenAI-compatible endpoint."""

import base64
import io

import httpx
import openai
import pytest

from tests.conftest import history_tokens, make_image, prompt_tokens, tone, wav_bytes
from tests.golden import GOLDEN


def png_url(colour="red") -> str:
    buf = io.BytesIO()
    make_image(colour).save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=server + "/v1", api_key="unused", max_retries=0)


def ask(text, image=None, audio=None):
    content = [{"type": "text", "text": text}]
    if image:
        content.append({"type": "image_url", "image_url": {"url": image}})
    if audio:
        content.append({"type": "input_audio", "input_audio": {"data": audio, "format": "wav"}})
    return [{"role": "user", "content": content}]


def test_a_synthetic_world_question_is_answered_correctly(client):
    golden = GOLDEN["three_beeps"]
    audio = base64.b64encode(golden.path().read_bytes()).decode()
    r = client.chat.completions.create(model="mm-tiny", messages=ask(golden.question, audio=audio))
    assert r.choices[0].message.content == golden.answer and r.choices[0].finish_reason == "stop"


def test_models_lists_the_model(client):
    assert [m.id for m in client.models.list()] == ["mm-tiny"]


def test_image_question_with_usage(client, tiny):
    r = client.chat.completions.create(model="mm-tiny", messages=ask("What colour is it?", png_url()), max_tokens=6)
    assert r.object == "chat.completion" and r.choices[0].message.role == "assistant"
    expected, _ = tiny.chat("What colour is it?", image=make_image(), max_new_tokens=6)
    assert r.choices[0].message.content == expected
    assert r.choices[0].finish_reason in ("stop", "length")
    assert r.usage.prompt_tokens > tiny.config.image_qformer.num_queries and r.usage.completion_tokens >= 1


def test_streaming_gives_the_same_answer(client):
    messages = ask("Describe it.", png_url("blue"))
    full = client.chat.completions.create(model="mm-tiny", messages=messages, max_tokens=8).choices[0].message.content
    stream = client.chat.completions.create(model="mm-tiny", messages=messages, max_tokens=8, stream=True,
                                            stream_options={"include_usage": True})
    parts, finish, usage = [], None, None
    for chunk in stream:
        if chunk.usage:
            usage = chunk.usage
        for c in chunk.choices:
            parts.append(c.delta.content or "")
            finish = c.finish_reason or finish
    assert "".join(parts) == full and finish in ("stop", "length") and usage.completion_tokens >= 1


def test_audio_and_multi_turn(client, tiny):
    wav = wav_bytes(tone(880))
    messages = ask("What do you hear?", audio=base64.b64encode(wav).decode()) + [
        {"role": "assistant", "content": "A beep."}, {"role": "user", "content": "How many?"}]
    r = client.chat.completions.create(model="mm-tiny", messages=messages, max_tokens=4)
    # The earlier exchange is the model's history and the sound its media: the same as asking it directly.
    history = [("What do you hear?", "A beep.")]
    *_, last = tiny.respond("How many?", audio=wav, history=history, max_new_tokens=4)
    assert r.choices[0].message.content == last.text
    assert (r.usage.prompt_tokens, r.usage.completion_tokens) == (last.prompt_tokens, last.completion_tokens)
    without = prompt_tokens(tiny, "How many?", audio=wav)
    assert r.usage.prompt_tokens - without == history_tokens(tiny, history, "How many?") > 0


@pytest.mark.parametrize("messages,message", [
    (ask("hi", "https://example.com/cat.png"), "remote image URLs are refused"),
    (ask("hi", "data:image/png;base64,!!!"), "not valid base64"),
    (ask("hi", "data:image/png;base64," + base64.b64encode(b"not an image").decode()), "not a readable image"),
    ([{"role": "assistant", "content": "hello"}], "must follow a user message"),
    ([], "non-empty list"),
])
def test_bad_requests_are_400_with_openai_errors(client, messages, message):
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model="mm-tiny", messages=messages, max_tokens=4)
    assert message in e.value.body["message"] if isinstance(e.value.body, dict) else message in str(e.value)


def test_raw_errors_keep_the_openai_shape(server):
    r = httpx.post(server + "/v1/chat/completions", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 400 and r.json()["error"]["type"] == "invalid_request_error"
    r = httpx.get(server + "/nope")
    assert r.status_code == 404 and "error" in r.json()
    r = httpx.post(server + "/v1/chat/completions", json={"messages": ask("hi"), "max_tokens": 10**6})
    assert r.status_code == 400 and "at most 1024" in r.json()["error"]["message"]
