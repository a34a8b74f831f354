"""Feature cache, trainer, resume and stages on a small synthetic world with the tiny model."""

import json
import shutil

import pytest
import torch

import mm
from mm.synth import write_split
from mm.train import trainer
from mm.train.batch import BridgeObjective, Collator
from mm.train.examples import ExampleDataset
from mm.train.features import FeatureCache
from mm.train.sources import read_jsonl
from mm.train.stages import build_caches, train_bridge
from mm.train.trainer import TrainConfig, train


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("world")
    manifest = write_split(root, "train", 24, 12, seed=5, workers=1)
    (root / "train/images/000003.png").write_bytes(b"\x89PNG broken")  # one corrupt file
    return list(read_jsonl(manifest)), root


def fresh():
    return mm.load("mm-tiny")


def bridge_state(chat):
    return {k: v.clone() for k, v in chat.model.bridge_state_dict().items()}


def test_feature_cache_matches_the_encoder_and_counts_bad_files(world, tmp_path):
    records, root = world
    chat = fresh()
    caches = build_caches(chat, records, tmp_path)
    image = caches["image"]
    assert len(image.bad) == 1 and "000003.png" in next(iter(image.bad))
    key = records[0].media[0][1]
    pixels = chat.model.encoders["image"].preprocess(key)[None]
    torch.testing.assert_close(image.get(key).float(), chat.model.encoders["image"](pixels)[0], atol=2e-3, rtol=1e-2)
    # Built once: a second pass adds nothing; other weights get a new cache directory.
    again = FeatureCache(tmp_path, chat.model, "image")
    assert again.build([(key, key)]) == 0
    with torch.no_grad():
        chat.model.encoders["image"].model.patch_embed.proj.weight.add_(1.0)
    assert FeatureCache(tmp_path, chat.model, "image").dir != image.dir


def test_feature_cache_follows_content_when_the_world_moves(world, tmp_path):
    records, root = world
    chat = fresh()
    caches = build_caches(chat, records, tmp_path / "f")
    moved = tmp_path / "moved"
    shutil.copytree(root, moved)
    moved_records = list(read_jsonl(moved / "train.jsonl"))
    assert moved_records[0].media[0][1] != records[0].media[0][1]  # other paths, same bytes
    again = build_caches(chat, moved_records, tmp_path / "f")
    for m, cache in again.items():
        assert len(cache.where) == len(caches[m].where)  # nothing encoded again
    key, old_key = moved_records[0].media[0][1], records[0].media[0][1]
    assert torch.equal(again["image"].get(key), caches["image"].get(old_key))
    # A clip's sound track is kept under the clip file's digest; in-memory media under their own key.
    assert again["audio"]._index_key(key + "#audio") == again["image"]._index_key(key) + "#audio"
    assert again["image"]._index_key("rec-7#0") == "rec-7#0"
    # A file whose bytes changed is not served stale features.
    (moved / "train/images/000000.png").write_bytes((root / "train/images/000001.png").read_bytes())
    fresh_cache = FeatureCache(tmp_path / "f", chat.model, "image")
    assert torch.equal(fresh_cache.get(moved_records[0].media[0][1]), caches["image"].get(records[1].media[0][1]))
    # An index written by media key (version 1) is re-keyed by content when opened.
    index = json.loads(fresh_cache.index_file.read_text())
    by_key = {r.media[0][1]: caches["image"].where[fresh_cache._index_key(r.media[0][1])]
              for r in records if r.media and r.media[0][0] == "image" and r.media[0][1] in caches["image"]}
    fresh_cache.index_file.write_text(json.dumps({"where": by_key, "bad": index["bad"]}))
    reopened = FeatureCache(tmp_path / "f", chat.model, "image")
    assert json.loads(reopened.index_file.read_text())["version"] == 2
    assert torch.equal(reopened.get(old_key), caches["image"].get(old_key))


def test_collator_length_is_the_collated_length_without_loading_features(world, tmp_path, monkeypatch):
    records, _ = world
    chat = fresh()
    caches = build_caches(chat, records, tmp_path / "f")
    collate = Collator(chat.model, chat.tokenizer, chat.template, caches, max_len=512)
    data = ExampleDataset(records, "dialogue", 0)
    examples = [data[i] for i in range(len(records))]
    expected = [int(collate([ex]).num_tokens) if collate._media(ex) is not None else 0 for ex in examples]
    assert 0 in expected and len(set(expected)) > 5  # the broken image, and lengths that differ
    for cache in caches.values():
        monkeypatch.setattr(cache, "get", None)  # length() must read only the shards' headers
    assert [collate.length(ex) for ex in examples] == expected
    # Length buckets cut the padding of a stage-2 epoch.
    monkeypatch.undo()

    def padding(bucket):
        batches = trainer.batches(data, collate, _cfg(batch_size=6, bucket=bucket), 0, 1, 0, 0, collate.length)
        masks = [next(batches)[2].attention_mask for _ in range(len(records) // 6)]
        return sum(int((m == 0).sum()) for m in masks) / sum(m.numel() for m in masks)

    assert padding(len(records) // 6) < 0.5 * padding(0)


def test_collator_tokenizes_a_measured_prompt_once(world, tmp_path, monkeypatch):
    """Length-bucketed batches measure every example, then collate it: the batch reuses the measured prompt
    and equals the one a fresh collator builds."""
    from mm.train import batch as batch_module

    records, _ = world
    chat = fresh()
    caches = build_caches(chat, records, tmp_path / "f")
    data = ExampleDataset(records, "dialogue", 0)
    examples = [ex for ex in (data[i] for i in range(len(records))) if Collator(
        chat.model, chat.tokenizer, chat.template, caches).length(ex)][:6]
    reference = Collator(chat.model, chat.tokenizer, chat.template, caches)(examples)
    collate = Collator(chat.model, chat.tokenizer, chat.template, caches)
    built = []
    real = batch_module.build_prompt
    monkeypatch.setattr(batch_module, "build_prompt", lambda *a, **k: built.append(1) or real(*a, **k))
    lengths = [collate.length(ex) for ex in examples]
    assert len(built) == len(examples)
    got = collate(examples)
    assert len(built) == len(examples)  # no prompt built a second time
    assert torch.equal(got.input_ids, reference.input_ids) and torch.equal(got.labels, reference.labels)
    assert lengths == [int(n) for n in got.attention_mask.sum(1)]
    collate(examples)  # a memo entry serves one batch: the same examples again are built anew
    assert len(built) == 2 * len(examples)


def _cfg(**kw):
    return TrainConfig(**{"steps": 6, "batch_size": 4, "lr": 1e-3, "warmup": 2, "log_every": 1, "ckpt_every": 3, **kw})


def test_bridge_training_learns_and_reports(world, tmp_path):
    records, _ = world
    chat = mm.load("mm-tiny", num_queries=4)  # a new bridge size: the bridge starts untrained
    caches = build_caches(chat, records, tmp_path / "f")
    summary = train_bridge(chat, records, caches, _cfg(steps=24, lr=1e-3), tmp_path / "run", mode="caption")
    lines = [json.loads(x) for x in (tmp_path / "run/metrics.jsonl").read_text().splitlines()]
    first, last = [sum(r["loss"] for r in part) / 4 for part in (lines[:4], lines[-4:])]
    assert last < first
    assert {"loss", "lr", "tokens_per_s", "grad_norm"} <= lines[0].keys()
    assert summary["unreadable_media"]["image"] == 1
    assert all(not p.requires_grad for p in chat.model.parameters())


def test_a_frozen_qformer_keeps_its_weights_while_its_projection_trains(world, tmp_path):
    records, _ = world
    chat = fresh()
    caches = build_caches(chat, records, tmp_path / "f")
    before = bridge_state(chat)
    train_bridge(chat, records, caches, _cfg(steps=3), tmp_path / "run", mode="caption", frozen_qformers=("image",))
    after = chat.model.bridge_state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and not any(k.startswith("qformers.image.") for k in changed)
    assert any(k.startswith("projectors.image.") for k in changed)
    assert any(k.startswith("qformers.audio.") for k in changed)  # the others still train
    with pytest.raises(ValueError, match="names no Q-Former of this model: smell"):
        train_bridge(chat, records, caches, _cfg(), tmp_path / "bad", mode="caption", frozen_qformers=("smell",))


@pytest.mark.parametrize("bucket", [0, 2])  # with length buckets the crash falls inside a window
def test_interrupted_run_resumes_exactly(world, tmp_path, monkeypatch, bucket):
    records, _ = world
    caches = build_caches(fresh(), records, tmp_path / "f")
    straight = fresh()
    train_bridge(straight, records, caches, _cfg(bucket=bucket), tmp_path / "a", mode="dialogue", lora=True)

    class Crash(Exception):
        pass

    crashing = fresh()
    calls = {"n": 0}
    original = trainer.batches

    def crash_after_three(*a, **k):
        for item in original(*a, **k):
            calls["n"] += 1
            if calls["n"] > 3:
                raise Crash
            yield item

    monkeypatch.setattr(trainer, "batches", crash_after_three)
    with pytest.raises(Crash):
        train_bridge(crashing, records, caches, _cfg(bucket=bucket), tmp_path / "b", mode="dialogue", lora=True)
    monkeypatch.setattr(trainer, "batches", original)
    assert json.loads((tmp_path / "b/metrics.jsonl").read_text().splitlines()[-1])["step"] == 3
    resumed = fresh()
    train_bridge(resumed, records, caches, _cfg(bucket=bucket), tmp_path / "b", mode="dialogue", lora=True)
    for k, v in bridge_state(straight).items():
        torch.testing.assert_close(bridge_state(resumed)[k], v)
    lora = {n: p for n, p in straight.model.llm.named_parameters() if "lora_" in n}
    assert lora
    for n, p in resumed.model.llm.named_parameters():
        if "lora_" in n:
            torch.testing.assert_close(p, lora[n])


def test_non_finite_loss_skips_the_update_and_is_reported(world, tmp_path):
    records, _ = world
    chat = fresh()
    caches = build_caches(chat, records, tmp_path / "f")
    from mm.train.batch import Collator
    from mm.train.examples import ExampleDataset

    class NaNOnce(BridgeObjective):
        calls = 0

        def forward(self, batch):
            NaNOnce.calls += 1
            loss = super().forward(batch)
            return loss * float("nan") if NaNOnce.calls == 2 else loss

    for n, p in chat.model.named_parameters():
        p.requires_grad_(n.startswith(("qformers.", "projectors.")))
    summary = train(NaNOnce(chat.model), ExampleDataset(records, "caption"),
                    Collator(chat.model, chat.tokenizer, chat.template, caches), _cfg(steps=3), tmp_path / "run")
    assert summary["nonfinite"] == 1 and summary["steps"] == 3
    assert all(torch.isfinite(p).all() for p in chat.model.parameters())
