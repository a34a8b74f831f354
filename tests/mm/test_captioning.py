"""Captioning many items: batched equals one-by-one, errors per item, the resumable `mm caption` job,
and WebDataset shards split over two processes."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import soundfile as sf

from mm.captioning import caption_files, caption_items, done_paths, media_files
from mm.errors import InputError
from tests.conftest import make_image, tone
from tests.golden import GOLDEN
from tests.mm.test_cli import MM

ASSETS = Path(__file__).parents[2] / "demos" / "assets"


def test_batched_captions_equal_one_by_one_in_order(tiny):
    items = [ASSETS / "red_circle.png", ASSETS / "three_beeps.wav", ASSETS / "three_shapes.png",
             ASSETS / "rising_sweep.wav", make_image("blue")]
    batched = tiny.caption(items, batch_size=4, max_new_tokens=40)
    single = [tiny.caption([x], batch_size=1, max_new_tokens=40)[0] for x in items]
    assert batched == single and all(batched)
    # Each item is asked with its modality's default request.
    assert batched[1] == tiny.chat("Describe the sound.", audio=items[1], max_new_tokens=40)[0]
    assert batched[0] == tiny.chat("Describe the image.", image=items[0], max_new_tokens=40)[0]
    zh = tiny.caption(items[:2], lang="zh", max_new_tokens=40)
    assert all(any("\u4e00" <= ch <= "\u9fff" for ch in c) for c in zh)


def test_bad_items_are_skipped_or_raise(tiny, tmp_path):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"not a png")
    items = [ASSETS / "red_circle.png", bad, ASSETS / "three_beeps.wav", tmp_path / "missing.wav"]
    results = caption_items(tiny, items, on_error="skip", max_new_tokens=16)
    assert [r.caption is None for r in results] == [False, True, False, True]
    assert "broken.png" in results[1].error and "no such file" in results[3].error
    assert [r.modality for r in results] == ["image", "image", "audio", "audio"]
    assert tiny.caption(items, on_error="skip", max_new_tokens=16)[1] is None
    with pytest.raises(InputError, match="item 1: .*broken.png"):
        tiny.caption(items, max_new_tokens=16)
    with pytest.raises(InputError, match="on_error"):
        tiny.caption(items, on_error="ignore")
    with pytest.raises(InputError, match="2 prompts for 4 items"):
        tiny.caption(items, prompt=["a", "b"])


def test_per_item_prompts(tiny):
    golden = [GOLDEN["three_shapes"], GOLDEN["three_beeps"]]
    out = tiny.caption([g.path() for g in golden], prompt=[g.question for g in golden])
    assert out == [g.answer for g in golden]


def _tree(root: Path) -> list[Path]:
    (root / "sub").mkdir(parents=True)
    make_image("red").save(root / "a.png")
    make_image("green").save(root / "sub" / "b.jpg")
    sf.write(root / "sub" / "c.wav", tone(), 16000)
    (root / "notes.txt").write_text("not media")
    (root / "sub" / "broken.png").write_bytes(b"\x89PNG broken")
    return sorted([root / "a.png", root / "sub" / "b.jpg", root / "sub" / "c.wav", root / "sub" / "broken.png"])


def test_media_files_walks_by_extension(tmp_path):
    files = _tree(tmp_path / "data")
    assert sorted(media_files([tmp_path / "data"])) == files
    assert list(media_files([tmp_path / "data"], recursive=False)) == [tmp_path / "data" / "a.png"]
    with pytest.raises(InputError, match="no such file or directory"):
        list(media_files([tmp_path / "nope"]))


def test_caption_job_resumes_after_an_interruption(tiny, tmp_path):
    files = _tree(tmp_path / "data")
    out = tmp_path / "captions.jsonl"
    full = caption_files(tiny, files, out, progress=False, max_new_tokens=16)
    assert full == {"total": 4, "skipped": 0, "captioned": 3, "failed": 1}
    lines = out.read_text().splitlines()
    # An interrupted run: two lines written, the third torn mid-write.
    out.write_text("\n".join(lines[:2]) + "\n" + lines[2][:17])
    again = caption_files(tiny, files, out, resume=True, progress=False, max_new_tokens=16)
    assert again["skipped"] == 2 and again["captioned"] + again["failed"] == 2
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert sorted(r["path"] for r in rows) == [str(f) for f in files]  # every file once, nothing lost
    assert {r["path"]: r for r in rows} == {json.loads(x)["path"]: json.loads(x) for x in lines}
    assert done_paths(out) == {str(f) for f in files}


def test_mm_caption_command(tmp_path):
    _tree(tmp_path / "data")
    out = tmp_path / "c.jsonl"
    r = subprocess.run([MM, "caption", str(tmp_path / "data"), "--out", str(out), "--quiet"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "3 captioned, 1 failed" in r.stderr
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert {"path", "modality", "caption", "error"} == set(rows[0])
    again = subprocess.run([MM, "caption", str(tmp_path / "data"), "--out", str(out), "--resume", "--quiet"],
                           capture_output=True, text=True, timeout=300)
    assert "4 already done" in again.stderr and len(out.read_text().splitlines()) == 4
    bad = subprocess.run([MM, "caption", str(tmp_path / "empty"), "--out", str(out)], capture_output=True, text=True)
    assert bad.returncode == 1 and "no such file or directory" in bad.stderr and "Traceback" not in bad.stderr


def _shard(path: Path, start: int, n: int) -> None:
    with tarfile.open(path, "w") as tar:
        for i in range(start, start + n):
            buf = io.BytesIO()
            if i % 2:
                sf.write(buf, tone(300 + 100 * i), 16000, format="WAV")
                name = f"{i:04d}.wav"
            else:
                make_image(["red", "blue", "green"][i % 3]).save(buf, format="PNG")
                name = f"{i:04d}.png"
            data = buf.getvalue()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def test_webdataset_shards_over_two_processes(tmp_path):
    shards = []
    for k in range(3):
        shards.append(tmp_path / f"shard-{k}.tar")
        _shard(shards[-1], 10 * k, 3)
    launcher = shutil.which("accelerate") or str(Path(sys.executable).parent / "accelerate")
    out = tmp_path / "caps.jsonl"
    cmd = [launcher, "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1", "--mixed_precision",
           "no", "--dynamo_backend", "no", "-m", "mm", "caption", *map(str, shards), "--out", str(out), "--quiet",
           "--max-new-tokens", "12"]
    env = {**os.environ, "ACCELERATE_USE_CPU": "1", "OMP_NUM_THREADS": "1"}
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    part0, part1 = (tmp_path / f"caps.rank-{k}.jsonl" for k in (0, 1))
    names0 = {json.loads(x)["path"].split("::")[0] for x in part0.read_text().splitlines()}
    names1 = {json.loads(x)["path"].split("::")[0] for x in part1.read_text().splitlines()}
    assert names0 == {str(shards[0]), str(shards[2])} and names1 == {str(shards[1])}  # disjoint shards
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert len(rows) == 9 and len({r["path"] for r in rows}) == 9 and all(r["caption"] for r in rows)
    assert {r["modality"] for r in rows} == {"image", "audio"}


@pytest.mark.parametrize("batch_size", [0, -3, 1.5, True, "8"])
def test_batch_size_must_be_a_whole_number_of_at_least_one(tiny, batch_size):
    with pytest.raises(InputError, match="batch_size must be a whole number >= 1"):
        tiny.caption([make_image()], batch_size=batch_size, max_new_tokens=2)


@pytest.mark.parametrize("prompt,message", [
    (iter(["a"]), "1 prompts for 2 items"),  # a generator was taken for one prompt: "the question is empty"
    (("a", "b", "c"), "3 prompts for 2 items"),
    ([], "0 prompts for 2 items"),
    (["a", 5], "prompt 1 must be a string"),
    (b"describe", "prompt must be a string or a list of strings"),
])
def test_a_prompt_list_must_fit_the_items(tiny, prompt, message):
    with pytest.raises(InputError, match=message):
        tiny.caption([make_image(), make_image("blue")], prompt=prompt, max_new_tokens=2)


def test_prompts_from_any_sequence_are_one_per_item(tiny):
    import numpy as np

    items = [ASSETS / "three_shapes.png", ASSETS / "three_beeps.wav"]
    prompts = ["How many shapes are there?", "How many beeps are there?"]
    want = tiny.caption(items, prompt=prompts)
    assert tiny.caption(items, prompt=(p for p in prompts)) == want
    assert tiny.caption(items, prompt=np.array(prompts)) == want


def test_resume_after_a_line_torn_inside_a_character(tiny, tmp_path):
    files = _tree(tmp_path / "data")
    out = tmp_path / "captions.jsonl"
    rows = [{"path": str(f), "modality": "image", "caption": "一个红色的圆形。", "error": None} for f in files[:3]]
    data = b"".join(json.dumps(r, ensure_ascii=False).encode() + b"\n" for r in rows)
    cut = data.index("圆".encode(), data.index(b"\n") + 1) + 1  # one byte into a character, second line
    out.write_bytes(data[:cut])
    counts = caption_files(tiny, files, out, resume=True, progress=False, max_new_tokens=8)
    assert counts == {"total": 4, "skipped": 1, "captioned": 2, "failed": 1}
    lines = out.read_bytes().decode("utf-8").splitlines()  # all of it valid UTF-8 again
    assert [json.loads(x)["path"] for x in lines] == [str(f) for f in files]
    assert json.loads(lines[0])["caption"] == "一个红色的圆形。"


def test_resume_knows_a_folder_however_it_is_named(tiny, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _tree(tmp_path / "data")
    out = tmp_path / "captions.jsonl"
    first = caption_files(tiny, list(media_files(["data"])), out, progress=False, max_new_tokens=4)
    assert first["captioned"] + first["failed"] == 4
    written = out.read_text()
    for spelling in ["./data", "data/../data", str(tmp_path / "data"), str(tmp_path / "data" / "sub" / "..")]:
        again = caption_files(tiny, list(media_files([spelling])), out, resume=True, progress=False, max_new_tokens=4)
        assert again == {"total": 4, "skipped": 4, "captioned": 0, "failed": 0}, spelling
    assert out.read_text() == written  # nothing captioned twice
    # The same file named twice in one run is captioned once.
    twice = caption_files(tiny, [Path("data/a.png"), tmp_path / "data" / "a.png"], tmp_path / "two.jsonl",
                          progress=False, max_new_tokens=4)
    assert twice == {"total": 2, "skipped": 1, "captioned": 1, "failed": 0}
