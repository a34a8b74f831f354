import pytest
import torch

from mm.errors import InputError
from mm.generation import GenerationConfig, generate, next_token


def _greedy_without_cache(llm, embeds, steps):
    out = []
    table = llm.get_input_embeddings()
    for _ in range(steps):
        logits = llm(inputs_embeds=embeds).logits[:, -1]
        tok = logits.argmax(-1)
        out.append(int(tok))
        embeds = torch.cat([embeds, table(tok)[:, None]], dim=1)
    return out


def test_cached_greedy_equals_recomputing_everything(tiny):
    llm = tiny.model.llm
    torch.manual_seed(0)
    embeds = torch.randn(1, 7, 256)
    cfg = GenerationConfig(max_new_tokens=6)
    got = [int(t) for t in generate(llm, embeds, torch.ones(1, 7, dtype=torch.long), cfg, stop_ids=set())]
    assert got == _greedy_without_cache(llm, embeds, 6)


def test_left_padded_batch_equals_one_by_one(tiny):
    llm = tiny.model.llm
    torch.manual_seed(1)
    a, b = torch.randn(1, 4, 256), torch.randn(1, 7, 256)
    cfg = GenerationConfig(max_new_tokens=5)
    one = [[int(t) for t in generate(llm, x, torch.ones(1, x.shape[1], dtype=torch.long), cfg, set())] for x in (a, b)]
    batch = torch.cat([torch.cat([torch.zeros(1, 3, 256), a], 1), b])
    mask = torch.ones(2, 7, dtype=torch.long)
    mask[0, :3] = 0
    steps = torch.stack(list(generate(llm, batch, mask, cfg, set())), dim=1)
    assert steps.tolist() == one


def test_sampling_filters():
    logits = torch.tensor([[0.0, 3.0, 1.0, 2.0]])
    assert next_token(logits, GenerationConfig(temperature=1.0, top_k=1)).item() == 1
    assert next_token(logits, GenerationConfig(temperature=1.0, top_p=0.01)).item() == 1
    g = torch.Generator().manual_seed(0)
    draws = {next_token(logits, GenerationConfig(temperature=1.0, top_k=2), generator=g).item() for _ in range(50)}
    assert draws == {1, 3}
    # Repetition penalty turns greedy away from a token already generated.
    assert next_token(logits, GenerationConfig(repetition_penalty=10.0), torch.tensor([[1]])).item() == 3


def test_stop_tokens_end_generation(tiny):
    llm = tiny.model.llm
    embeds = torch.randn(1, 3, 256)
    first = next(generate(llm, embeds, torch.ones(1, 3, dtype=torch.long), GenerationConfig(), set()))
    steps = list(generate(llm, embeds, torch.ones(1, 3, dtype=torch.long), GenerationConfig(), {int(first)}))
    assert len(steps) == 1


@pytest.mark.parametrize("kw,msg", [({"max_new_tokens": 0}, "max_new_tokens"), ({"temperature": -1}, "temperature"),
                                    ({"top_p": 0}, "top_p"), ({"top_k": -2}, "top_k")])
def test_bad_settings_are_input_errors(kw, msg):
    with pytest.raises(InputError, match=msg):
        GenerationConfig(**kw)


@pytest.mark.parametrize("kwargs,message", [
    ({"max_new_tokens": 1e9}, "max_new_tokens must be a whole number, got 1000000000.0"),
    ({"max_new_tokens": True}, "max_new_tokens must be a whole number"),
    ({"max_new_tokens": 0}, "max_new_tokens must be at least 1"),
    ({"temperature": float("nan")}, "temperature must be a finite number, got nan"),
    ({"temperature": 10**5000}, "temperature must be a finite number, got an integer of 16610 bits"),
    ({"top_p": float("-inf")}, "top_p must be a finite number"),
    ({"top_k": 2.5}, "top_k must be a whole number"),
    ({"repetition_penalty": None}, "repetition_penalty must be a number, got None"),
])
def test_generation_settings_are_checked_with_clear_messages(kwargs, message):
    with pytest.raises(InputError, match=message):
        GenerationConfig(**kwargs)


def test_seeds_are_64_bit():
    from mm.generation import make_generator

    assert make_generator(None) is None
    assert make_generator(2**64 - 1).initial_seed() == 2**64 - 1
    for bad in (2**64, -1, 2**70, 10**5000):
        with pytest.raises(InputError, match="seed must be between 0 and 2"):
            make_generator(bad)
    with pytest.raises(InputError, match="seed must be a whole number"):
        make_generator("3")
