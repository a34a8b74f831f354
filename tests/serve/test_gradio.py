"""The Gradio app through gradio_client, as a remote user would call it."""

import json
from pathlib import Path

import pytest
from gradio_client import Client, handle_file

from demos.app import ASSETS


@pytest.fixture(scope="module")
def client(gradio_url):
    return Client(gradio_url, verbose=False)


def test_image_question_gets_the_right_answer(client, tiny):
    image = ASSETS / "three_shapes.png"
    # The per-session history is server-side state, so the API takes and returns the visible chat only.
    chat, box = client.predict("How many shapes are there?", handle_file(str(image)), None, None, [], 16, 0.0, 1.0,
                               api_name="/chat")
    expected = "There are three shapes."
    assert [m["role"] for m in chat] == ["user", "assistant"]
    assert chat[0]["content"][-1]["text"] == "How many shapes are there?"
    assert chat[0]["content"][0]["type"] == "file"  # the picture is shown with the first question
    assert chat[-1]["content"][0]["text"] == expected
    assert box == ""


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


def test_two_users_keep_their_own_history(gradio_url, tiny):
    alice, bob = Client(gradio_url, verbose=False), Client(gradio_url, verbose=False)
    image = handle_file(str(ASSETS / "three_shapes.png"))
    chat_a, _ = alice.predict("Where is the star?", image, None, None, [], 16, 0.0, 1.0, api_name="/chat")
    bob.predict("How many shapes are there?", image, None, None, [], 16, 0.0, 1.0, api_name="/chat")
    # The visible chat is not what the model reads: the session state holds the history.
    chat_a, _ = alice.predict("And what colour is it?", image, None, None, [], 16, 0.0, 1.0, api_name="/chat")
    first = tiny.chat("Where is the star?", image=ASSETS / "three_shapes.png", max_new_tokens=16)
    second, _ = tiny.chat("And what colour is it?", image=ASSETS / "three_shapes.png", history=first[1],
                          max_new_tokens=16)
    assert chat_a[-1]["content"][0]["text"] == second  # Bob's question never entered Alice's history


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
