"""`mm bench described`: image questions asked about the picture and about its written caption."""

from __future__ import annotations

import json

import pytest

from mm.described import described_vs_seen
from mm.synth import write_split
from tests.mm.test_bench import bench


def test_bench_described_scores_the_same_questions_from_picture_and_from_caption():
    out = bench("described", "--scenes", "3", "--seed", "777")
    assert (out["bench"], out["model"], out["seed"], out["scenes"]) == ("described", "mm-tiny", 777, 3)
    for source in ("picture", "description"):
        tally = out[source]
        assert tally["all"]["questions"] == out["questions"] > 20
        assert sum(c["questions"] for k, c in tally.items() if k.endswith(("object", "objects"))) == out["questions"]
        for c in tally.values():
            assert c["accuracy"] == pytest.approx(100 * c["right"] / c["questions"], abs=0.05)
    # The shipped model reads its pictures (far above nothing); the two sources give different answers.
    assert out["picture"]["all"]["accuracy"] > 40
    assert out["picture"]["all"]["right"] != out["description"]["all"]["right"]


def test_described_asks_the_caption_without_the_picture(tmp_path, tiny):
    manifest = write_split(tmp_path / "w", "test", 2, 0, 777)
    asked = []

    class Spy:
        model = tiny.model

        def answer_batch(self, items, **kw):
            asked.append(items)
            return ["It is red."] * len(items)

    result = described_vs_seen(Spy(), manifest)
    records = [json.loads(line) for line in manifest.read_text().splitlines()]
    with_picture, from_text = asked
    assert all(media for _, _, media in with_picture) and not any(media for _, _, media in from_text)
    first = next(r for r in records if "image" in r)
    assert from_text[0][0] == f"{first['captions'][first['qa'][0]['lang']]}\n{first['qa'][0]['q']}"
    right = sum(qa["a"] == "It is red." for r in records if "image" in r for qa in r["qa"])
    assert result["picture"]["all"]["right"] == result["description"]["all"]["right"] == right


def test_described_needs_world_scenes(tmp_path, tiny):
    manifest = write_split(tmp_path / "w", "test", 0, 2, 777)  # sounds only
    with pytest.raises(ValueError, match="no scenes of the synthetic world"):
        described_vs_seen(tiny, manifest)
