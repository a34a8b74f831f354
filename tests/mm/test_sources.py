import csv
import io
import json
import tarfile

import pytest

from mm.errors import InputError
from mm.train.sources import read_source
from tests.conftest import make_image, tone, wav_bytes


def _png_bytes(colour="red"):
    buf = io.BytesIO()
    make_image(colour).save(buf, format="PNG")
    return buf.getvalue()


def test_jsonl_with_captions_and_conversations_and_a_broken_line(tmp_path):
    (tmp_path / "a.png").write_bytes(_png_bytes())
    lines = [
        json.dumps({"id": "1", "image": "a.png", "caption": "a red circle"}),
        "{not json",
        json.dumps({"audio": "/abs/b.wav", "conversations": [
            {"from": "human", "value": "<audio>\nWhat is it?"}, {"from": "gpt", "value": "A beep."}]}),
    ]
    (tmp_path / "m.jsonl").write_text("\n".join(lines))
    recs = list(read_source(str(tmp_path / "m.jsonl")))
    assert len(recs) == 2
    assert recs[0].media == [("image", str(tmp_path / "a.png"))] and recs[0].captions == ["a red circle"]
    assert recs[1].media == [("audio", "/abs/b.wav")] and recs[1].conversations == [[("What is it?", "A beep.")]]


def test_llava_and_coco_json(tmp_path):
    llava = [{"id": "x", "image": "img/1.jpg", "conversations": [
        {"from": "human", "value": "<image>\nDescribe."}, {"from": "gpt", "value": "A cat."},
        {"from": "human", "value": "Colour?"}, {"from": "gpt", "value": "Black."}]}]
    (tmp_path / "llava.json").write_text(json.dumps(llava))
    (r,) = read_source(str(tmp_path / "llava.json"))
    assert r.conversations == [[("Describe.", "A cat."), ("Colour?", "Black.")]]
    coco = {"images": [{"id": 7, "file_name": "7.jpg"}, {"id": 8, "file_name": "8.jpg"}],
            "annotations": [{"image_id": 7, "caption": "A dog. "}, {"image_id": 7, "caption": "A pup."}]}
    (tmp_path / "coco.json").write_text(json.dumps(coco))
    (r,) = read_source(str(tmp_path / "coco.json"))
    assert r.captions == ["A dog.", "A pup."] and r.media[0][1].endswith("7.jpg")


def test_audiocaps_and_clotho_csv(tmp_path):
    with open(tmp_path / "audiocaps.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerows([["audiocap_id", "youtube_id", "start_time", "caption"], ["91", "abc", "30", "A dog barks"]])
    (r,) = read_source(str(tmp_path / "audiocaps.csv"))
    assert r.media[0][1].endswith("abc.wav") and r.captions == ["A dog barks"]
    with open(tmp_path / "clotho.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerows([["file_name", "caption_1", "caption_2"], ["rain.wav", "Rain falls", "It rains"]])
    (r,) = read_source(str(tmp_path / "clotho.csv"))
    assert r.captions == ["Rain falls", "It rains"]
    (tmp_path / "bad.csv").write_text("a,b\n1,2\n")
    with pytest.raises(InputError, match="neither an AudioCaps nor a Clotho"):
        list(read_source(str(tmp_path / "bad.csv")))


def test_webdataset_shards_are_streamed(tmp_path):
    shards = []
    for s in range(2):
        path = tmp_path / f"shard-{s}.tar"
        with tarfile.open(path, "w") as tar:
            for k in range(3):
                for name, data in ((f"s{s}k{k}.png", _png_bytes()), (f"s{s}k{k}.txt", f"caption {s}{k}".encode()),
                                   (f"s{s}k{k}a.wav", wav_bytes(tone())), (f"s{s}k{k}a.json", b'{"caption": "a tone"}')):
                    info = tarfile.TarInfo(name)
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))
        shards.append(str(path))
    recs = list(read_source(",".join(shards)))
    assert len(recs) == 12
    assert recs[0].media[0][0] == "image" and recs[0].captions == ["caption 00"]
    assert recs[1].media[0][0] == "audio" and recs[1].captions == ["a tone"]


def test_missing_and_unknown_files_are_input_errors(tmp_path):
    with pytest.raises(InputError, match="no such data file"):
        read_source(str(tmp_path / "none.jsonl"))
    (tmp_path / "x.parquet").write_text("")
    with pytest.raises(InputError, match="unknown data format"):
        read_source(str(tmp_path / "x.parquet"))
