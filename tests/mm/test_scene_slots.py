"""Stage 1a's object slots: each image query is taught the object in its own grid cell, whole."""

from __future__ import annotations

import pytest
import torch

from mm.config import preset
from mm.model import MMModel
from mm.train.bridge_contrastive import BridgeContrastive, BridgePairCollator, BridgePairDataset
from mm.train.contrastive import TextTower
from mm.train.scene_slots import IGNORE, SlotHeads, assign_cells, grid_side, slot_targets, stack_targets
from mm.train.sources import Record
from tests.mm.test_hard_negatives import _Tokenizer

META = {"shapes": [
    {"shape": "circle", "colour": "red", "size": "small", "position": "top left", "x": 0.1, "y": 0.1},
    {"shape": "star", "colour": "blue", "size": "large", "position": "bottom right", "x": 0.9, "y": 0.8},
    # Its centre is in the first one's cell: it takes the nearest free one (to its right).
    {"shape": "square", "colour": "green", "size": "small", "position": "top left", "x": 0.2, "y": 0.12},
], "digit": 4}


def test_objects_take_the_cell_of_their_centre_and_a_second_one_the_nearest_free_cell():
    assert grid_side(16) == 4
    with pytest.raises(ValueError, match="square number of queries"):
        grid_side(8)
    assert assign_cells([(0.1, 0.1), (0.9, 0.8), (0.2, 0.12)], 4) == [0, 15, 1]
    assert assign_cells([(0.6, 0.6), (0.6, 0.6)], 2) == [3, 1]  # equally near: the first free cell in order
    assert assign_cells([(1.0, 1.0)], 4) == [15]  # the edge belongs to the last cell


def test_targets_name_each_object_in_its_cell_and_nothing_elsewhere():
    t = slot_targets(META, 16)
    assert t is not None and t.digit == 5
    # shape: 0 nothing, else 1 + index of (circle, square, triangle, star); colour (red, green, blue, yellow,
    # purple, orange); size (small, large); region (top left, top, ..., bottom right).
    assert t.labels[0].tolist() == [1, 0, 0, 0]
    assert t.labels[15].tolist() == [4, 2, 1, 8]
    assert t.labels[1].tolist() == [2, 1, 0, 0]
    empty = [k for k in range(16) if k not in (0, 1, 15)]
    assert (t.labels[empty, 0] == 0).all() and (t.labels[empty, 1:] == IGNORE).all()
    torch.testing.assert_close(t.centre[15], torch.tensor([0.9, 0.8]))
    assert slot_targets({**META, "digit": None}, 16).digit == 0
    # Not a world scene (a user's picture, a clip, an unknown colour): no targets.
    assert slot_targets(None, 16) is None and slot_targets({"shape": "circle"}, 16) is None
    assert slot_targets({"shapes": [{**META["shapes"][0], "colour": "teal"}]}, 16) is None
    # A batch: items without targets are ignored everywhere.
    both = stack_targets([t, None], 16)
    assert both.labels.shape == (2, 16, 4) and (both.labels[1] == IGNORE).all() and both.digit.tolist() == [5, IGNORE]
    assert stack_targets([None, None], 16) is None


def test_slot_heads_learn_the_targets_and_ignore_what_is_ignored():
    torch.manual_seed(0)
    targets = stack_targets([slot_targets(META, 16), None], 16)
    outs = torch.randn(2, 16, 32)
    heads = SlotHeads(32)
    first = heads(outs, targets).item()
    opt = torch.optim.Adam(heads.parameters(), lr=0.05)
    for _ in range(200):
        opt.zero_grad()
        heads(outs, targets).backward()
        opt.step()
    assert heads(outs, targets).item() < 0.1 * first
    acc = heads.accuracy(outs, targets)
    assert acc["object"] == 1.0 and acc["shape"] == 1.0
    # The ignored item's outputs get no gradient; a wrong set of targets scores below the learnt one.
    leaf = outs.clone().requires_grad_(True)
    heads(leaf, targets).backward()
    assert leaf.grad[1].abs().sum() == 0 and leaf.grad[0].abs().sum() > 0
    shuffled = stack_targets([slot_targets({**META, "shapes": META["shapes"][::-1]}, 16), None], 16)
    assert heads.accuracy(outs, shuffled)["object"] < 1.0


def test_stage_1a_batches_carry_slot_targets_and_the_loss_reaches_the_q_former():
    model = MMModel(preset("mm-tiny"))
    qf = model.qformers["image"]
    width = qf.config.encoder_width

    class Cache(dict):
        def get(self, key):
            return torch.randn(65, width)

    scene = Record("s", [("image", "s.png")], ["A small red circle."], [], {"meta": META})
    user = Record("u", [("image", "u.png")], ["a user's photo"], [], {})
    cache = Cache({"s.png": 1, "u.png": 1})
    data = BridgePairDataset([scene, user], cache, "image", negatives=lambda r, lang: [], slot_queries=16)
    items = [data[0], data[1]]
    assert items[0][3] is not None and items[1][3] is None
    batch = BridgePairCollator(_Tokenizer())(items)
    assert batch.slots is not None and batch.slots.labels.shape == (2, 16, 4)
    assert BridgePairCollator(_Tokenizer())([it[:3] for it in items]).slots is None  # without: none
    assert len(BridgePairDataset([scene], cache, "image", negatives=lambda r, lang: [])[0]) == 3

    torch.manual_seed(0)
    plain = BridgeContrastive(model, "image", TextTower(100, width=32, layers=1, heads=2, out_dim=128))
    torch.manual_seed(0)
    slots = BridgeContrastive(model, "image", TextTower(100, width=32, layers=1, heads=2, out_dim=128), slot_weight=1.0)
    assert plain.slots is None and slots.slots is not None
    with torch.no_grad():
        outs = torch.stack(list(model.bridge("image", batch.states, batch.mask, batch.valid)))
        extra = slots.slots(outs, batch.slots)
        torch.testing.assert_close(slots(batch), plain(batch) + extra)
    model.requires_grad_(False)
    qf.requires_grad_(True)
    slots.slots(torch.stack(list(model.bridge("image", batch.states, batch.mask, batch.valid))), batch.slots).backward()
    assert qf.query_tokens.grad is not None and qf.query_tokens.grad.abs().sum() > 0


def test_pretrain_bridge_with_slots_reports_how_well_the_queries_hold_their_objects(tmp_path):
    from mm.loading import load
    from mm.train.stages import pretrain_bridge
    from mm.train.trainer import TrainConfig

    chat = load("mm-tiny")
    width = chat.model.qformers["image"].config.encoder_width

    class Cache(dict):
        def get(self, key):
            return torch.randn(65, width)

    records = [Record(f"s{i}", [("image", f"s{i}.png")], ["A small red circle."], [], {"meta": META}) for i in range(4)]
    caches = {"image": Cache({f"s{i}.png": 1 for i in range(4)})}
    cfg = TrainConfig(steps=2, batch_size=2, warmup=1, ckpt_every=10)
    before = chat.model.qformers["image"].query_tokens.detach().clone()
    summary = pretrain_bridge(chat, records, caches, "image", cfg, tmp_path / "slots", slot_weight=1.0)
    acc = summary["slot_accuracy"]
    assert {"shape", "colour", "size", "position", "object"} == acc.keys() and all(0 <= v <= 1 for v in acc.values())
    assert not torch.equal(before, chat.model.qformers["image"].query_tokens)
    plain = pretrain_bridge(chat, records, caches, "image", cfg, tmp_path / "plain")
    assert "slot_accuracy" not in plain
