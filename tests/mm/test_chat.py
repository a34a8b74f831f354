import numpy as np
import pytest

import mm
from mm.errors import InputError
from tests.conftest import make_image, tone, wav_bytes


def test_chat_returns_response_and_history(tiny):
    response, history = tiny.chat("What colour is the circle?", image=make_image(), max_new_tokens=8)
    assert isinstance(response, str)
    assert history == [("What colour is the circle?", response)]


def test_follow_up_reuses_the_cached_encoding(tiny, tmp_path):
    path = tmp_path / "shape.png"
    make_image("green").save(path)
    tiny.cache.clear()
    hits, misses = tiny.cache.hits, tiny.cache.misses
    _, history = tiny.chat("What shape is it?", image=str(path), max_new_tokens=4)
    # Same picture as bytes this time: the content hash matches, the encoder does not run again.
    tiny.chat("And what colour is it?", image=path.read_bytes(), history=history, max_new_tokens=4)
    assert (tiny.cache.misses - misses, tiny.cache.hits - hits) == (1, 1)


def test_image_and_audio_together_and_several_of_each(tiny):
    r, _ = tiny.chat("Which picture goes with the sound?", image=[make_image("red"), make_image("blue")],
                     audio=[wav_bytes(tone(440)), (16000, (tone(880) * 32767).astype(np.int16))],
                     max_new_tokens=4)
    assert isinstance(r, str)


def test_stream_chat_grows_to_the_chat_answer(tiny):
    img = make_image("yellow")
    parts = [p for p, _ in tiny.stream_chat("Describe it.", image=img, max_new_tokens=12)]
    final, _ = tiny.chat("Describe it.", image=img, max_new_tokens=12)
    assert parts[-1] == final


def test_sampling_with_a_seed_is_reproducible(tiny):
    kw = dict(image=make_image(), max_new_tokens=8, temperature=1.0, top_p=0.9, seed=3)
    assert tiny.chat("Describe it.", **kw)[0] == tiny.chat("Describe it.", **kw)[0]


def test_long_history_is_trimmed_oldest_first(tiny):
    long_turn = ("tell me more " * 80, "more " * 80)
    history = [long_turn] * 10  # far beyond the 2048-token window
    response, new_history = tiny.chat("last question", history=history, image=make_image(), max_new_tokens=4)
    assert new_history[-1] == ("last question", response)


@pytest.mark.parametrize("kwargs,message", [
    ({"query": "   "}, "the question is empty"),
    ({"query": "q", "image": "nope.png"}, "nope.png: no such file"),
    ({"query": "q", "audio": b"garbage"}, "not a readable audio file"),
    ({"query": "q", "image": [make_image()] * 9}, "at most 8"),
    ({"query": "q", "history": [("only one",)]}, "history must be a list of"),
    ({"query": "q", "top_p": 2.0}, "top_p"),
])
def test_bad_input_raises_input_error(tiny, kwargs, message):
    query = kwargs.pop("query")
    with pytest.raises(InputError, match=message):
        tiny.chat(query, **kwargs)


def test_input_error_is_a_value_error():
    assert issubclass(mm.InputError, ValueError)


def test_embed_is_normalised_and_tells_items_apart(tiny):
    e = tiny.embed([make_image("red"), make_image("blue"), (tone(440), 16000)])
    assert e.shape == (3, 128)
    np.testing.assert_allclose(e.norm(dim=-1).numpy(), 1.0, rtol=1e-5)
    assert not np.allclose(e[0].numpy(), e[1].numpy())
