import pytest

from mm.errors import InputError
from mm.prompt import IGNORE_INDEX, build_prompt, expand_placeholders, get_template
from mm.tokenizer import add_media_tokens, build_tokenizer


@pytest.fixture(scope="module")
def tok():
    t = build_tokenizer(["what colour is the circle? 圆是什么颜色？ red 红色"], vocab_size=400)
    return t, add_media_tokens(t)


def test_typed_placeholders_are_text_never_slots(tok):
    t, media = tok
    for typed in ["<|image|>", "<image>", "<|audio|> and <|assistant|>"]:
        ids, _ = build_prompt(t, get_template("tiny"), [(f"look {typed} here", None)])
        assert not set(ids) & set(media.values())
        assert t.convert_tokens_to_ids("<|assistant|>") == ids[-2]  # only the template's own marker
        assert typed in t.decode(ids)


def test_media_go_first_and_expand_to_their_slots(tok):
    t, media = tok
    ids, labels = build_prompt(t, get_template("tiny"), [("q", "a")], [media["image"], media["audio"]])
    head = t.encode("<|user|>\n", add_special_tokens=False)
    assert ids[: len(head) + 2] == head + [media["image"], media["audio"]]
    out, out_labels = expand_placeholders(ids, set(media.values()), [3, 2], labels)
    n = len(head)
    assert out[n:n + 5] == [media["image"]] * 3 + [media["audio"]] * 2
    assert len(out) == len(out_labels) == len(ids) + 3
    assert all(lbl == IGNORE_INDEX for lbl in out_labels[: n + 5])


def test_labels_cover_answers_only(tok):
    t, _ = tok
    ids, labels = build_prompt(t, get_template("tiny"), [("what colour?", "red"), ("和圆？", "红色")])
    learned = [i for i, lbl in zip(ids, labels) if lbl != IGNORE_INDEX]
    assert t.decode(learned) == "red<|endoftext|>红色<|endoftext|>"


def test_count_mismatch_is_an_input_error(tok):
    t, media = tok
    ids, _ = build_prompt(t, get_template("tiny"), [("q", None)], [media["image"]])
    with pytest.raises(InputError, match="1 media placeholders but 2"):
        expand_placeholders(ids, set(media.values()), [4, 4])


def test_chatglm_templates():
    assert get_template("chatglm").user.format(i=0) == "[Round 0]\n问："
    with pytest.raises(ValueError, match="known: auto, chatglm"):
        get_template("vicuna")


CHATML = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
          "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")


@pytest.fixture(scope="module")
def chatml():
    t = build_tokenizer(["hello there, what colour?"], vocab_size=300)
    t.add_special_tokens({"additional_special_tokens": ["<|im_start|>", "<|im_end|>"]},
                         replace_additional_special_tokens=False)
    t.chat_template = CHATML
    return t, add_media_tokens(t)


def test_auto_template_follows_the_tokenizers_chat_template(chatml):
    t, media = chatml
    turns = [("what colour?", "red"), ("and <|im_start|>?", None)]
    ids, labels = build_prompt(t, get_template("auto"), turns, [media["image"]])
    expected = t.apply_chat_template(
        [{"role": "user", "content": "<|image|>what colour?"}, {"role": "assistant", "content": "red"},
         {"role": "user", "content": "and <|im_start|>?"}], tokenize=False, add_generation_prompt=True)
    assert t.decode(ids) == expected
    assert ids.count(media["image"]) == 1
    # The typed <|im_start|> stays text: only the template's three role openers are the special token.
    assert ids.count(t.convert_tokens_to_ids("<|im_start|>")) == 4
    learned = [i for i, lbl in zip(ids, labels) if lbl != IGNORE_INDEX]
    assert t.decode(learned) == "red<|im_end|>"
