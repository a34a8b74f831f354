"""The Gradio app through gradio_client, as a remote user would call it."""

import json
from pathlib import Path

import pytest
from gradio_client import Client, handle_file

from demos.app import ASSETS, EXAMPLES
from tests.golden import GOLDEN
from tests.serve.conftest import gradio_app


@pytest.fixture(scope="module")
def client(gradio_url):
    return Client(gradio_url, verbose=False)


def test_image_question_gets_the_right_answer(client, tiny):
    golden = GOLDEN["three_shapes"]
    # The per-session history is server-side state, so the API takes and returns the visible chat only.
    chat, box = client.predict(golden.question, handle_file(str(golden.path())), None, None, [], 16, 0.0, 1.0,
                               api_name="/chat")
    assert [m["role"] for m in chat] == ["user", "assistant"]
    assert chat[0]["content"][-1]["text"] == golden.question
    assert chat[0]["content"][0]["type"] == "file"  # the picture is shown with the first question
    assert chat[-1]["content"][0]["text"] == golden.answer
    assert box == ""


def test_every_example_is_a_golden_question_the_shipped_model_answers_right():
    """The app's examples promise right answers: each is an entry of tests/golden.py (whose answers
    tests/mm/test_shipped_model.py checks) with no `truth` (where the model is wrong)."""
    by_ask = {(g.image, g.audio, g.video, g.question): g for g in GOLDEN.values()}
    for image, audio, video, question in EXAMPLES:
        names = tuple(None if p is None else Path(p).name for p in (image, audio, video))
        g = by_ask.get((*names, question))
        assert g is not None and g.truth is None, (names, question)


def test_bad_file_is_a_message_in_the_chat(client, tmp_path):
    bad = tmp_path / "broken.wav"
    bad.write_bytes(b"RIFF....not really a wav")
    chat, box = client.predict("What do you hear?", None, handle_file(str(bad)), None, [], 8, 0.0, 1.0, api_name="/chat")
    assert box == "What do you hear?"  # kept, so the user can fix the file and resend
    assert "⚠️" in chat[-1]["content"][0]["text"] and "not a readable audio file" in chat[-1]["content"][0]["text"]


def test_captions_tab_returns_a_table_and_a_jsonl_file(client, tmp_path):
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG nope")
    files = [handle_file(str(ASSETS / "red_circle.png")), handle_file(str(ASSETS / "three_beeps.wav")),
             handle_file(str(broken))]
    table, download = client.predict(files, "en", 8, api_name="/caption")
    rows = table["data"]
    assert [r[1] for r in rows] == ["image", "audio", "image"]
    assert rows[0][2] and not rows[0][3] and rows[2][3]  # the broken file has an error, the others captions
    lines = [json.loads(x) for x in Path(download).read_text().splitlines()]
    assert [r["path"] for r in lines] == ["red_circle.png", "three_beeps.wav", "broken.png"]


class Recording:
    """`model`, noting the question and the history the app gives each `stream_chat` call."""

    def __init__(self, model):
        self._model = model
        self.calls: list[tuple[str, list[tuple[str, str]]]] = []

    def __getattr__(self, name):
        return getattr(self._model, name)

    def stream_chat(self, query, **kwargs):
        self.calls.append((query, [tuple(turn) for turn in kwargs.get("history") or []]))
        return self._model.stream_chat(query, **kwargs)


def test_two_users_keep_their_own_history(tiny):
    model = Recording(tiny)
    with gradio_app(model) as url:
        alice, bob = Client(url, verbose=False), Client(url, verbose=False)
        image = handle_file(str(ASSETS / "three_shapes.png"))

        def say(user, question):
            # The visible chat is sent empty: the history the model reads is the session's state, kept server-side.
            chat, _ = user.predict(question, image, None, None, [], 8, 0.0, 1.0, api_name="/chat")
            return chat[-1]["content"][0]["text"]

        a1 = say(alice, "Where is the star?")
        b1 = say(bob, "How many shapes are there?")
        say(alice, "And what colour is it?")
        say(bob, "And which is the largest?")
    assert model.calls == [
        ("Where is the star?", []),
        ("How many shapes are there?", []),  # Alice's turn is not in Bob's session
        ("And what colour is it?", [("Where is the star?", a1)]),  # only her own turn
        ("And which is the largest?", [("How many shapes are there?", b1)]),
    ]


def test_compare_tab_scores_two_clips_and_offers_the_report(client, clips):
    recs = [json.loads(x) for x in clips.read_text().splitlines()]
    same = next(r for r in recs if "videos" in r and r["meta"]["change"] is None)
    a, b = (handle_file(str(clips.parent / v)) for v in same["videos"])
    summary, words, heat, line, report = client.predict(a, b, 2.0, True, api_name="/compare")
    assert "Visual score" in summary and "1 × 1 segments" in summary
    assert words.startswith("A: ") and "Difference:" in words
    assert Path(heat).read_bytes()[:4] == b"\x89PNG" and Path(line).read_bytes()[:4] == b"\x89PNG"
    assert "<h1>Clip comparison</h1>" in Path(report).read_text()


def test_compare_tab_without_two_clips_is_a_message(client, clips):
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError, match="Upload two clips first"):
        client.predict(None, None, 2.0, False, api_name="/compare")
