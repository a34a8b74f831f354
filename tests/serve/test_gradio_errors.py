"""Unreadable uploads in the Gradio app: a chat message that says what is wrong, one warning in the log, and
the app answers the next question. (Before, `gr.Image` decoded uploads itself and failed with a generic
error and a traceback.)"""

import logging
import socket
import struct
import zlib

import pytest
from gradio_client import Client, handle_file

from demos.app import ASSETS
from mm.cli.common import recent_history
from mm.limits import Limits
from tests.conftest import tone, wav_bytes
from tests.golden import GOLDEN


def png_bomb(side: int = 30000) -> bytes:
    """A valid 1-bit PNG of side x side pixels: about 110 KB on disk, 900 megapixels decoded."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    row = bytes(1 + (side + 7) // 8)  # filter byte + the packed bits of one row, all black
    z = zlib.compressobj(9)
    idat = b"".join(z.compress(row) for _ in range(side)) + z.flush()
    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)  # 1-bit greyscale
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


@pytest.fixture(scope="module")
def client(gradio_url):
    return Client(gradio_url, verbose=False)


def ask(client, question: str, image) -> tuple[str, str]:
    chat, box = client.predict(question, image, None, None, [], 8, 0.0, 1.0, api_name="/chat")
    return chat[-1]["content"][0]["text"], box


@pytest.mark.parametrize("name,content,words", [
    ("empty.png", lambda: b"", ("empty.png", "empty")),
    ("sound.png", lambda: wav_bytes(tone()), ("sound.png", "not a readable image")),
    ("bomb.png", png_bomb, ("bomb.png", "pixels")),
])
def test_unreadable_image_is_a_chat_message(client, tiny, tmp_path, caplog, capfd, name, content, words):
    bad = tmp_path / name
    bad.write_bytes(content())
    with caplog.at_level(logging.WARNING):
        text, box = ask(client, "What is in the picture?", handle_file(str(bad)))
    assert text.startswith("⚠️ ")
    for w in words:
        assert w in text
    assert box == "What is in the picture?"  # kept, so the user can fix the file and resend
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert [(r.name, r.levelname) for r in warnings] == [("demos.app", "WARNING")], warnings
    assert "Traceback" not in capfd.readouterr().err
    # The app goes on: the next question with a good picture gets its answer.
    golden = GOLDEN["three_shapes"]
    text, box = ask(client, golden.question, handle_file(str(golden.path())))
    assert text == golden.answer and box == ""


def test_the_models_limits_apply_to_uploads(tiny):
    """An app over a model loaded with small limits refuses a picture past them, in the chat."""
    import mm
    from demos.app import build_app

    small = mm.load("mm-tiny", limits=Limits(max_image_pixels=100 * 100))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    app = build_app(small)
    app.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    try:
        client = Client(f"http://127.0.0.1:{port}/", verbose=False)
        text, _ = ask(client, "What colour is the circle?", handle_file(str(ASSETS / "red_circle.png")))
    finally:
        app.close()
    assert text.startswith("⚠️ ") and "red_circle.png" in text and "10000" in text


def test_recent_history_keeps_the_newest_turns_within_the_limits():
    history = [(f"q{i}", "a" * 10) for i in range(100)]
    assert recent_history(history, Limits(max_history_turns=3)) == history[-3:]
    assert recent_history(history, Limits(max_history_bytes=30)) == history[-2:]  # 12 bytes a turn
    assert recent_history([], Limits()) == []
