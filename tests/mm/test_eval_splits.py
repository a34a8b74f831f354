"""Held-out evaluation: the classic world reproduced, the three held-out splits, and what `mm eval` reports."""

import hashlib
import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from PIL import Image

from mm.eval_report import (
    NONE_KEY,
    add_predicted_keys,
    caption_objects,
    confusion,
    format_report,
    predicted_key,
    says_absent,
    score_caption,
    summarise,
)
from mm.evaluate import EVAL_SPLITS, write_eval_splits
from mm.synth import image_record, pair_record, sound_record, video_record, write_split
from mm.synth.scene import sample_scene
from mm.synth.text import caption_scene
from mm.synth.vocab import TYPES_BY_MODALITY
from tests.mm.test_cli import MM

CLASSIC = Path(__file__).parent / "data" / "classic_world_seed5.json"


def _records(manifest: Path) -> list[dict]:
    return [json.loads(line) for line in manifest.read_text(encoding="utf-8").splitlines()]


def test_classic_split_reproduces_the_first_world(tmp_path, monkeypatch):
    """Manifest lines and media of the world the shipped model was made with, recorded before the
    world changed: PNG pixels, WAV bytes, and each clip's frames and sound track before encoding."""
    import encoders.video_io

    want = json.loads(CLASSIC.read_text())
    clips = {}

    def capture(path, frames, fps, audio=None):
        h = hashlib.sha256()
        for f in frames:
            h.update(np.ascontiguousarray(f).tobytes())
        h.update(np.asarray(audio, dtype=np.float32).tobytes())
        clips[Path(path).relative_to(tmp_path).as_posix()] = h.hexdigest()

    monkeypatch.setattr(encoders.video_io, "write_video", capture)
    n = want["counts"]
    manifest = write_split(tmp_path, "test", n["images"], n["sounds"], seed=want["seed"], workers=1,
                           n_videos=n["videos"], n_pairs=n["pairs"], phrasing="canonical", rendering="classic")
    got = {}
    for rec in _records(manifest):
        assert rec.pop("world") == {"phrasing": "canonical", "rendering": "classic"}
        got[rec["id"]] = hashlib.sha256(json.dumps(rec, ensure_ascii=False).encode()).hexdigest()
    assert got == want["records"]
    files = dict(clips)
    for p in sorted((tmp_path / "test").rglob("*")):
        rel = p.relative_to(tmp_path).as_posix()
        if p.suffix == ".png":
            files[rel] = hashlib.sha256(np.asarray(Image.open(p).convert("RGB")).tobytes()).hexdigest()
        elif p.suffix == ".wav":
            files[rel] = hashlib.sha256(p.read_bytes()).hexdigest()
    assert files == want["files"]


def test_world_choices_are_checked():
    with pytest.raises(ValueError, match="held out for evaluation"):
        write_split("unused", "train", 1, 0, phrasing="unseen")
    with pytest.raises(ValueError, match="held out for evaluation"):
        write_split("unused", "train", 1, 0, rendering="alt")
    with pytest.raises(ValueError, match="classic world is phrased canonically"):
        write_split("unused", "test", 1, 0, rendering="classic")
    with pytest.raises(ValueError, match="images and sounds only"):
        write_split("unused", "test", 0, 0, n_videos=1, rendering="alt")
    with pytest.raises(ValueError, match="unknown rendering 'fancy'"):
        write_split("unused", "test", 1, 0, rendering="fancy")


def test_the_three_splits_share_items_and_differ_in_phrasing_or_rendering(tmp_path):
    manifests = write_eval_splits(tmp_path, list(EVAL_SPLITS), seed=4, images=3, sounds=3, videos=1, pairs=1,
                                  workers=1)
    assert list(manifests) == ["seen", "unseen-phrasing", "unseen-rendering"]
    recs = {name: _records(m) for name, m in manifests.items()}
    for name, (phrasing, rendering, _) in EVAL_SPLITS.items():
        assert {json.dumps(r["world"]) for r in recs[name]} == {json.dumps({"phrasing": phrasing, "rendering": rendering})}
        assert {q["phrasing"] for r in recs[name] for q in r["qa"]} == {phrasing}
    kinds = {name: sorted(next(k for k in ("image", "audio", "video", "videos") if k in r) for r in rs)
             for name, rs in recs.items()}
    assert kinds["seen"] == kinds["unseen-phrasing"] == ["audio"] * 3 + ["image"] * 3 + ["video", "videos"]
    assert kinds["unseen-rendering"] == ["audio"] * 3 + ["image"] * 3  # no clips: no alt renderer for them
    # One seed, the same items: only the phrasing or the picture changes.
    seen, alt = recs["seen"][:6], recs["unseen-rendering"]
    assert [r["meta"] for r in seen] == [r["meta"] for r in recs["unseen-phrasing"][:6]] == [r["meta"] for r in alt]
    assert [r["qa"] for r in seen] == [r["qa"] for r in alt]
    root = {name: m.parent for name, m in manifests.items()}
    img = "test/images/000000.png"
    assert (root["seen"] / img).read_bytes() == (root["unseen-phrasing"] / img).read_bytes()
    assert (root["seen"] / img).read_bytes() != (root["unseen-rendering"] / img).read_bytes()
    assert sf.info(root["unseen-rendering"] / "test/audio/000000.wav").frames > 0


def test_unseen_phrasings_never_appear_in_a_seen_split_of_the_same_seed():
    makers = [(image_record, 40), (sound_record, 30), (video_record, 10), (pair_record, 10)]

    def questions(phrasing: str) -> dict[str, set[str]]:
        out: dict[str, set[str]] = {}
        for make, n in makers:
            for i in range(n):
                rec = make(6, "test", i, None, phrasing, "train")
                for qa in rec["qa"] + [q for d in rec["dialogues"] for q in d]:
                    out.setdefault(qa["type"], set()).add(qa["q"])
        return out

    seen, unseen = questions("seen"), questions("unseen")
    assert seen.keys() == unseen.keys()
    for qtype in seen:
        assert not seen[qtype] & unseen[qtype], (qtype, seen[qtype] & unseen[qtype])


def _row(qtype, key, answer, correct, lang="en", split="seen", modality="image", followup=False):
    return {"split": split, "modality": modality, "type": qtype, "lang": lang, "followup": followup,
            "phrasing": "seen", "question": "?", "reference": "!", "key": key, "answer": answer, "correct": correct}


def test_confusion_tables_count_every_row_once():
    rows = [_row("colour", "red", "It is red.", True), _row("colour", "red", "It is blue.", False),
            _row("colour", "blue", "It is blue.", True), _row("colour", "blue", "I do not know.", False),
            _row("position", "top left", "It is at the top left.", True),
            _row("position", "top", "It is at the top left.", False),
            _row("colour", "红色", "蓝色。", False, lang="zh"), _row("colour", "蓝色", "蓝色。", True, lang="zh")]
    add_predicted_keys(rows)
    table = confusion(rows)
    assert table["colour"] == {"red": {"red": 1, "blue": 1}, "blue": {"blue": 1, NONE_KEY: 1},
                               "红色": {"蓝色": 1}, "蓝色": {"蓝色": 1}}
    assert table["position"] == {"top left": {"top left": 1}, "top": {"top left": 1}}
    for qtype, refs in table.items():
        assert sum(n for preds in refs.values() for n in preds.values()) == sum(r["type"] == qtype for r in rows)
    assert predicted_key("It is at the top.", {"top", "top left"}, "en") == "top"
    assert predicted_key("Stop it.", {"top"}, "en") == NONE_KEY  # whole words only


def test_absent_object_rate_is_the_share_answered_as_absent():
    assert says_absent("There is no star.", "en") and says_absent("图中没有星形。", "zh")
    assert not says_absent("It is red.", "en") and not says_absent("红色。", "zh")
    rows = [_row("absent", "star", "There is no star.", True), _row("absent", "star", "It is red.", False),
            _row("absent", "star", "There isn't one.", False), _row("absent", "star", "None.", False),
            _row("absent", "星形", "图中没有星形。", True, lang="zh"), _row("absent", "星形", "红色。", False, lang="zh"),
            _row("colour", "red", "No.", False)]
    rate = summarise(rows, [])["absent_rate"]
    assert rate == {"en": 0.75, "zh": 0.5, "all": 4 / 6}


def test_caption_precision_falls_when_a_caption_names_what_is_not_there():
    meta = {"shapes": [{"size": "large", "colour": "red", "shape": "circle", "position": "centre"},
                       {"size": "small", "colour": "blue", "shape": "star", "position": "top left"}], "digit": 7}
    right = "A large red circle at the centre and a small blue star at the top left. The digit 7 is shown."
    extra = "A large red circle at the centre, a large red circle at the right and a small blue star at the top left."
    wrong = "A large red circle at the centre and a small green star at the top left."
    assert score_caption(right, meta, "en") == {"named": 2, "true": 2, "matched": 2, "digit": True}
    assert score_caption(extra, meta, "en") == {"named": 3, "true": 2, "matched": 2, "digit": False}
    assert score_caption(wrong, meta, "en")["matched"] == 1
    zh_extra = "中间有一个大的红色圆形，右侧有一个大的红色圆形，左上方有一个小的蓝色星形。图中有数字7。"
    assert score_caption(zh_extra, meta, "zh") == {"named": 3, "true": 2, "matched": 2, "digit": True}
    caps = [{"split": "seen", "lang": lang, "exact": False, "objects": score_caption(text, meta, lang)}
            for lang, text in [("en", right), ("en", extra), ("zh", zh_extra)]]
    c = summarise([], caps)["captions"]
    assert c["en"]["object_recall"] == 1.0 and c["en"]["object_precision"] == 4 / 5
    assert c["zh"]["object_precision"] == 2 / 3 and c["all"]["object_precision"] == 6 / 8


@pytest.mark.parametrize("classic", [True, False])
def test_reference_captions_parse_into_exactly_their_objects(classic):
    rng = np.random.default_rng(1)
    for _ in range(30):
        scene = sample_scene(rng, classic=classic)
        truth = sorted((s.size, s.colour, s.shape, s.position) for s in scene.shapes)
        for lang in ("en", "zh"):
            assert sorted(caption_objects(caption_scene(scene, lang), lang)) == truth


def test_report_puts_the_splits_side_by_side():
    rows = [_row(t, "k", "a", lang == "en", split=s, modality=m, lang=lang)
            for s in EVAL_SPLITS for m, types in TYPES_BY_MODALITY.items() for t in types
            for lang in ("en", "zh") if not (s == "unseen-rendering" and m == "video")]
    text = format_report({s: summarise([r for r in rows if r["split"] == s], []) for s in EVAL_SPLITS})
    head = text.splitlines()[0]
    assert head.index("seen") < head.index("unseen phrasing") < head.index("unseen rendering")
    video = next(line for line in text.splitlines() if line.startswith("video overall"))
    assert video.split()[2:] == ["100.0", "0.0", "50.0"] * 2 + ["-"] * 3  # unseen rendering: no clips


def test_mm_eval_json_runs_the_three_splits_on_the_shipped_model(tmp_path):
    details = tmp_path / "rows.jsonl"
    out = subprocess.run([MM, "eval", "--images", "4", "--sounds", "4", "--videos", "1", "--pairs", "1", "--json",
                          "--details", str(details)], capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stderr[-2000:]
    report = json.loads(out.stdout)
    assert list(report["splits"]) == list(EVAL_SPLITS)
    assert report["by_type"] == report["splits"]["seen"]["by_type"]  # the seen split at the top level
    assert report["splits"]["unseen-rendering"]["video"]["all"] is None
    for name, summary in report["splits"].items():
        assert summary["image"]["all"] is not None and summary["audio"]["all"] is not None, name
        assert summary["captions"]["en"]["object_precision"] is not None, name
    lines = [json.loads(line) for line in details.read_text(encoding="utf-8").splitlines()]
    rows = [r for r in lines if "correct" in r]
    assert {r["split"] for r in rows} == set(EVAL_SPLITS)
    assert all({"question", "reference", "answer", "correct", "split", "phrasing"} <= r.keys() for r in rows)
    tables = [t for t in lines if "confusion" in t]
    for t in tables:
        n = sum(v for preds in t["confusion"].values() for v in preds.values())
        assert n == sum(r["split"] == t["split"] and r["type"] == t["type"] for r in rows)
        assert t["confusion"] == report["confusion"][t["split"]][t["type"]]
    assert sum(1 for t in tables) == sum(len(c) for c in report["confusion"].values())
