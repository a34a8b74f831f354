"""The splice on the real tiny stack: tiny ViT / Whisper -> Q-Former -> projection -> tiny GLM."""

import torch

from mm.media import batch_inputs, prepare
from mm.prompt import build_prompt, expand_placeholders
from tests.conftest import make_image, tone


def test_two_images_and_one_audio_land_in_their_slots(tiny):
    model = tiny.model
    items = [prepare(model, "image", make_image("red")), prepare(model, "image", make_image("blue")),
             prepare(model, "audio", (tone(440, 1.0), 16000))]
    image_embeds = model.embed_media("image", batch_inputs(model, "image", items[:2]))
    audio_embeds = model.embed_media("audio", batch_inputs(model, "audio", items[2:]))
    embeds = [*image_embeds, *audio_embeds]
    q, qa = model.config.image_qformer.num_queries, model.config.audio_qformer.num_queries
    assert [e.shape for e in embeds] == [(q, 256)] * 2 + [(qa, 256)]

    placeholders = [model.media_token_ids[p.modality] for p in items]
    ids, _ = build_prompt(tiny.tokenizer, tiny.template, [("Compare the two pictures with the sound.", None)],
                          placeholders)
    ids, _ = expand_placeholders(ids, set(model.media_token_ids.values()), [len(e) for e in embeds])
    input_ids = torch.tensor([ids])
    with torch.no_grad():
        spliced = model.splice(input_ids, torch.cat(embeds))[0]  # (T, E)

    table = model.llm.get_input_embeddings().weight
    media_pos = [i for i, t in enumerate(ids) if t in model.media_token_ids.values()]
    assert len(media_pos) == 2 * q + qa
    torch.testing.assert_close(spliced[media_pos], torch.cat(embeds))
    # Image 1, image 2 and the audio clip in prompt order.
    torch.testing.assert_close(spliced[media_pos[q:2 * q]], image_embeds[1])
    text_pos = [i for i in range(len(ids)) if i not in set(media_pos)]
    torch.testing.assert_close(spliced[text_pos], table[torch.tensor(ids)[text_pos]])


def test_slot_count_mismatch_is_refused(tiny):
    model = tiny.model
    ids = torch.tensor([[40, model.media_token_ids["image"], model.media_token_ids["image"], 41]])
    import pytest

    with pytest.raises(ValueError, match="2 media slots but 3"):
        model.splice(ids, torch.zeros(3, 256))


def test_loss_only_on_answers_and_gradients_only_in_bridges(tiny):
    import copy

    model = copy.deepcopy(tiny.model).train()
    item = prepare(model, "image", make_image())
    (emb,) = model.embed_media("image", batch_inputs(model, "image", [item]))
    ids, labels = build_prompt(tiny.tokenizer, tiny.template, [("colour?", "red")], [model.media_token_ids["image"]])
    ids, labels = expand_placeholders(ids, set(model.media_token_ids.values()), [len(emb)], labels)
    input_ids, labels_t = torch.tensor([ids]), torch.tensor([labels])
    out = model(input_ids, torch.ones_like(input_ids), emb, labels=labels_t)
    # Same loss by hand: next-token cross-entropy over answer positions only.
    logits = out.logits[0, :-1]
    target = labels_t[0, 1:]
    keep = target != -100
    manual = torch.nn.functional.cross_entropy(logits[keep], target[keep])
    torch.testing.assert_close(out.loss, manual)
    out.loss.backward()
    assert model.qformers["image"].query_tokens.grad.abs().sum() > 0
    assert all(p.grad is None for p in model.encoders.parameters())
