import numpy as np
import pytest

import mm
from mm.errors import InputError
from tests.conftest import history_tokens, make_image, prompt_tokens, tone, wav_bytes


def test_chat_returns_response_and_history(tiny):
    question = "What colour is the circle?"
    response, history = tiny.chat(question, image=make_image(), max_new_tokens=8)
    *_, last = tiny.respond(question, image=make_image(), max_new_tokens=8)
    assert response == last.text and 1 <= last.completion_tokens <= 8 and response.strip()
    assert history == [(question, response)]
    # The picture took exactly its Q-Former's query slots in the prompt, beside the question's tokens.
    assert last.prompt_tokens - prompt_tokens(tiny, question) == tiny.config.image_qformer.num_queries
    # A follow-up reads the first turn: its prompt is longer by exactly that turn's tokens.
    follow_up = "And its shape?"
    assert (prompt_tokens(tiny, follow_up, image=make_image(), history=history)
            - prompt_tokens(tiny, follow_up, image=make_image())) == history_tokens(tiny, history, follow_up) > 0


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
    question = "Which picture goes with the sound?"
    images = [make_image("red"), make_image("blue")]
    sounds = [wav_bytes(tone(440)), (16000, (tone(880) * 32767).astype(np.int16))]
    r, history = tiny.chat(question, image=images, audio=sounds, max_new_tokens=4)
    assert history == [(question, r)] and r.strip()
    # Every item has its slots in the prompt: none dropped, none counted twice.
    bare = prompt_tokens(tiny, question)
    slots = [prompt_tokens(tiny, question, image=im) - bare for im in images]
    slots += [prompt_tokens(tiny, question, audio=a) - bare for a in sounds]
    assert slots[:2] == [tiny.config.image_qformer.num_queries] * 2 and min(slots[2:]) > 0
    assert prompt_tokens(tiny, question, image=images, audio=sounds) - bare == sum(slots)


def test_stream_chat_grows_to_the_chat_answer(tiny):
    img = make_image("yellow")
    parts = [p for p, _ in tiny.stream_chat("Describe it.", image=img, max_new_tokens=12)]
    final, _ = tiny.chat("Describe it.", image=img, max_new_tokens=12)
    assert parts[-1] == final


def test_sampling_with_a_seed_is_reproducible(tiny):
    kw = dict(image=make_image(), max_new_tokens=8, temperature=1.0, top_p=0.9, seed=3)
    assert tiny.chat("Describe it.", **kw)[0] == tiny.chat("Describe it.", **kw)[0]


def test_long_history_is_trimmed_oldest_first(tiny):
    history = [(f"turn {i} " + "tell me more " * 80, f"reply {i} " + "more " * 80) for i in range(10)]
    # Far beyond the 2048-token window: only the most recent turns that fit are given to the model.
    *_, reply = tiny.respond("last question", history=history, image=make_image(), max_new_tokens=4)
    assert reply.history == [*history, ("last question", reply.text)]  # the caller's history is all kept
    assert reply.prompt_tokens <= 2048 - 4
    items = tiny._collect(make_image(), None)
    text = tiny.tokenizer.decode(tiny._prompt("last question", history, items, tiny._embed(items), 4))
    kept = [i for i in range(10) if f"turn {i} " in text]
    assert kept == list(range(10 - len(kept), 10)) and 0 < len(kept) < 10  # the oldest went first


@pytest.mark.parametrize("kwargs,message", [
    ({"query": "   "}, "the question is empty"),
    ({"query": "q", "image": "nope.png"}, "nope.png: no such file"),
    ({"query": "q", "audio": b"garbage"}, "not a readable audio file"),
    ({"query": "q", "image": [make_image()] * 9}, "at most 8"),
    ({"query": "q", "history": [("only one",)]}, "history must be a list of"),
    ({"query": "q", "top_p": 2.0}, "top_p"),
    ({"query": "q", "max_new_tokens": 1e9}, "max_new_tokens must be a whole number, got 1000000000.0"),
    ({"query": "q", "max_new_tokens": 0}, "max_new_tokens must be at least 1"),
    ({"query": "q", "max_new_tokens": 10**9}, "^max_new_tokens=1000000000 leaves no room for the prompt: the model's "
                                              "context is 2048 tokens$"),
    ({"query": "q", "max_new_tokens": 10**5000}, "^max_new_tokens=an integer of 16610 bits leaves no room"),
    ({"query": "tell me more " * 5, "max_new_tokens": 2040}, r"^the prompt is \d+ "
     "tokens; with max_new_tokens=2040 only 8 of the model's 2048-token context are left"),
    ({"query": "q", "temperature": float("nan")}, "temperature must be a finite number, got nan"),
    ({"query": "q", "temperature": 1e400}, "temperature must be a finite number, got inf"),
    ({"query": "q", "temperature": 10**5000}, "temperature must be a finite number"),
    ({"query": "q", "top_p": float("inf")}, "top_p must be a finite number"),
    ({"query": "q", "repetition_penalty": float("nan")}, "repetition_penalty must be a finite number"),
    ({"query": "q", "temperature": "hot"}, "temperature must be a number, got 'hot'"),
    ({"query": "q", "seed": 2**70}, r"seed must be between 0 and 2\*\*64 - 1"),
    ({"query": "q", "seed": -1}, r"seed must be between 0 and 2\*\*64 - 1"),
    ({"query": "q", "seed": 1.5}, "seed must be a whole number"),
    ({"query": "\ud800"}, "the question is not well-formed text"),
    ({"query": None}, "the question must be text, got NoneType"),
    ({"query": "q", "history": [("a", "\udfff")]}, "history turn 0 is not well-formed text"),
    ({"query": "q", "history": "not pairs"}, "history must be a list of"),
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
