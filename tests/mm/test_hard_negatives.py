"""Stage 1a's hard negatives: captions wrong in one detail, in the caption's language, and their loss term."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
import torch.nn.functional as F

from mm.synth.clip_text import caption_clip, counterfactual_captions
from mm.synth.scene import Scene, Shape
from mm.synth.text import caption_scene, counterfactual_scene_captions
from mm.synth.video import Clip
from mm.train.bridge_contrastive import BridgeContrastive, BridgePairCollator, BridgePairDataset
from mm.train.contrastive import TextTower
from mm.train.hard_negatives import caption_languages, clip_negatives, scene_negatives
from mm.train.sources import Record

CLIP = Clip(shape="square", colour="yellow", motion="left", speed="fast", pitch="high", when="start")


def _record(i: int, meta: dict | None = None) -> Record:
    captions = {lang: caption_clip(CLIP, lang) for lang in ("en", "zh")}
    extra = {"captions": captions, **({"meta": meta} if meta is not None else {})}
    return Record(f"clip-{i}", [("video", f"clips/{i}.mp4")], list(captions.values()), [], extra)


def test_counterfactual_captions_are_wrong_in_exactly_one_detail():
    en = counterfactual_captions(CLIP, "en")
    assert en == ["A yellow square moves quickly to the right. A high beep sounds at the start.",
                  "A yellow square moves quickly upwards. A high beep sounds at the start.",
                  "A yellow square moves quickly downwards. A high beep sounds at the start.",
                  "A yellow square moves slowly to the left. A high beep sounds at the start."]
    zh = counterfactual_captions(CLIP, "zh")
    assert len(zh) == 4 and caption_clip(CLIP, "zh") not in zh and all("黄色正方形" in c for c in zh)
    assert any("慢慢地向左" in c for c in zh) and any("快速地向右" in c for c in zh)
    assert len(counterfactual_captions(CLIP, "en", ("colour", "pitch"))) > 4
    with pytest.raises(ValueError, match="unknown clip attribute 'size'"):
        counterfactual_captions(CLIP, "en", ("size",))


def test_world_clips_get_negatives_in_the_language_of_their_caption_and_other_records_none():
    meta = {**dataclasses.asdict(CLIP), "start": [0.2, 0.3], "colour": "yellow"}
    rec = _record(0, meta)
    assert caption_languages(rec) == ["en", "zh"]
    assert clip_negatives(rec, "en") == counterfactual_captions(CLIP, "en")
    assert clip_negatives(rec, "zh") == counterfactual_captions(CLIP, "zh")
    assert clip_negatives(_record(1), "en") == []  # a user's clip: no metadata, no negatives
    plain = Record("u", [("video", "u.mp4")], ["a caption"], [], {})
    assert caption_languages(plain) == [None]

    class Cache(dict):
        def get(self, key):
            return torch.zeros(3, 4)

    cache = Cache({"clips/0.mp4": 1, "clips/1.mp4": 1})
    data = BridgePairDataset([rec, _record(1), plain], cache, "video")
    assert len(data) == 2  # the one not in the cache is left out
    seen = set()
    for epoch in range(8):
        data.set_epoch(epoch)
        _, caption, negatives = data[0]
        lang = "en" if caption.startswith("A ") else "zh"
        assert negatives == counterfactual_captions(CLIP, lang)
        seen.add(lang)
        assert data[1][2] == []
    assert seen == {"en", "zh"}


SCENE = Scene([Shape("circle", "red", "small", "left", x=0.2, y=0.5), Shape("square", "blue", "large", "top")], 7)


def test_scene_counterfactuals_are_wrong_in_exactly_one_thing():
    en = counterfactual_scene_captions(SCENE, "en")
    truth = caption_scene(SCENE, "en")
    assert truth not in en and len(set(en)) == len(en)
    # Per object: 5 colours, 3 shapes, 1 size, 8 positions; 2 swaps; 2 left out; 9 digits.
    assert len(en) == 2 * (5 + 3 + 1 + 8) + 2 + 2 + 9
    assert "A small green circle at the left and a large blue square at the top. The digit 7 is shown." in en
    assert "A small blue circle at the left and a large red square at the top. The digit 7 is shown." in en  # swap
    assert "A small red circle at the bottom and a large blue square at the top. The digit 7 is shown." in en
    assert "A large blue square at the top. The digit 7 is shown." in en
    assert "A small red circle at the left and a large blue square at the top. The digit 2 is shown." in en
    zh = counterfactual_scene_captions(SCENE, "zh")
    assert len(zh) == len(en) and caption_scene(SCENE, "zh") not in zh and all("。" in c for c in zh)
    # Two objects alike in colour: nothing to swap; one object: nothing to leave out; no digit: none to change.
    alike = Scene([Shape("circle", "red", "small", "left"), Shape("star", "red", "small", "right")])
    assert len(counterfactual_scene_captions(alike, "en")) == 2 * 17 + 1 + 2
    assert len(counterfactual_scene_captions(Scene([Shape("star", "red", "small", "right")]), "en")) == 17


def test_world_scenes_get_negatives_and_the_dataset_draws_a_few_per_epoch():
    meta = {"shapes": [{**dataclasses.asdict(s), "radius": 0.1} for s in SCENE.shapes], "digit": 7}
    captions = {lang: caption_scene(SCENE, lang) for lang in ("en", "zh")}
    rec = Record("scene-0", [("image", "images/0.png")], list(captions.values()), [],
                 {"captions": captions, "meta": meta})
    assert scene_negatives(rec, "en") == counterfactual_scene_captions(SCENE, "en")
    assert scene_negatives(Record("u", [("image", "u.png")], ["a caption"], [], {"meta": {"shapes": [{}]}}), "en") == []

    class Cache(dict):
        def get(self, key):
            return torch.zeros(3, 4)

    data = BridgePairDataset([rec], Cache({"images/0.png": 1}), "image", max_negatives=4)
    drawn = set()
    for epoch in range(6):
        data.set_epoch(epoch)
        _, caption, negatives = data[0]
        lang = "en" if caption.startswith("A ") else "zh"
        assert len(negatives) == 4 == len(set(negatives)) and set(negatives) <= set(scene_negatives(rec, lang))
        drawn.add(tuple(negatives))
    assert len(drawn) == 6  # a new draw each epoch
    calls = []
    none = BridgePairDataset([rec], Cache({"images/0.png": 1}), "image", max_negatives=0,
                             negatives=lambda r, lang: calls.append(r) or ["x"])
    assert none[0][2] == [] and calls == []


class _Tokenizer:
    """Characters as ids: enough for the collator and the text tower."""

    def __call__(self, texts, **kw):
        n = max(len(t) for t in texts)
        ids = torch.tensor([[ord(c) % 97 + 1 for c in t] + [0] * (n - len(t)) for t in texts])
        return {"input_ids": ids, "attention_mask": ids != 0}


def test_the_hard_negative_term_is_cross_entropy_over_own_caption_and_valid_negatives():
    torch.manual_seed(0)
    objective = BridgeContrastive.__new__(BridgeContrastive)
    torch.nn.Module.__init__(objective)
    objective.text = TextTower(100, width=32, layers=1, heads=2, out_dim=16)
    objective.logit_scale = torch.nn.Parameter(torch.tensor(math.log(10.0)))
    items = [(torch.zeros(2, 4), "red left", ["red right", "red up"]), (torch.zeros(3, 4), "blue down", ["blue up"]),
             (torch.zeros(2, 4), "green up", [])]
    batch = BridgePairCollator(_Tokenizer())(items)
    assert batch.negatives is not None and batch.negatives.valid.tolist() == [[True, True], [True, False],
                                                                               [False, False]]
    media = torch.randn(3, 16, requires_grad=True)
    loss = objective.hard_negative_loss(media, batch)

    def emb(text):  # the text tower on one caption alone
        enc = _Tokenizer()([text])
        return F.normalize(objective.text(enc["input_ids"], enc["attention_mask"]), dim=-1)[0]

    expected = []
    for m, (_, caption, negatives) in zip(F.normalize(media, dim=-1), items):
        logits = torch.stack([10.0 * m @ emb(t) for t in [caption, *negatives]])
        expected.append(F.cross_entropy(logits[None], torch.tensor([0])))
    torch.testing.assert_close(loss, torch.stack(expected).mean(), atol=1e-5, rtol=1e-4)
    assert expected[2].item() == pytest.approx(0.0, abs=1e-6)  # no negatives: nothing to pick from
    loss.backward()
    assert torch.isfinite(media.grad).all() and media.grad[2].abs().sum() == 0
    # Filler in the padded slots does not count: other filler, same loss.
    other = BridgePairCollator(_Tokenizer())([items[0], (items[1][0], items[1][1], ["blue up"]), items[2]])
    other.negatives.ids[3] = 5
    torch.testing.assert_close(objective.hard_negative_loss(media, other), loss)
    # A media embedding equal to its own caption's beats one equal to a negative's.
    with torch.no_grad():
        right = torch.stack([emb("red left"), emb("blue down"), emb("green up")])
        wrong = torch.stack([emb("red right"), emb("blue up"), emb("green up")])
        assert objective.hard_negative_loss(right, batch) < objective.hard_negative_loss(wrong, batch)
