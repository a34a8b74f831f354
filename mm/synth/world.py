"""Writing the synthetic world to disk: PNG images, WAV sounds, MP4 clips and a JSONL manifest per split.

Each split draws from its own seed stream (`[seed, split, index]`), so held-out splits never share a
scene, sound or clip with training. Records carry English and Chinese captions, every answerable
single-turn question and a two-turn follow-up dialogue, with the answer key for scoring. Clip pairs
(two videos that differ in one known attribute, or not at all) carry the comparison question.
"""

from __future__ import annotations

import json
import logging
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict
from pathlib import Path

import numpy as np
import soundfile as sf

from mm.synth.clip_text import caption_clip, clip_questions, compare_answer
from mm.synth.scene import render, sample_scene
from mm.synth.sound import SAMPLE_RATE, sample_sound, synthesize
from mm.synth.text import caption_scene, caption_sound, scene_followups, scene_questions, sound_questions
from mm.synth.video import FPS, render_frames, sample_clip, soundtrack, variant

logger = logging.getLogger(__name__)

SPLITS = {"train": 0, "val": 1, "test": 2}
LANGS = ("en", "zh")
KINDS = {"image": 0, "audio": 1, "video": 2, "pair": 3}
PAIR_CHANGES = (None, "motion", "speed", "colour", "shape", "pitch", "when")


def _rng(seed: int, split: str, kind: str, index: int) -> np.random.Generator:
    return np.random.default_rng([seed, SPLITS[split], KINDS[kind], index])


def image_record(seed: int, split: str, index: int, out: Path | None) -> dict:
    rng = _rng(seed, split, "image", index)
    scene = sample_scene(rng)
    rec_id = f"{split}-image-{index:06d}"
    rel = f"{split}/images/{index:06d}.png"
    if out is not None:
        render(scene).save(out / rel)
    followups = {lang: scene_followups(scene, lang, rng) for lang in LANGS}
    return {
        "id": rec_id,
        "image": rel,
        "captions": {lang: caption_scene(scene, lang) for lang in LANGS},
        "qa": [qa.to_dict() for lang in LANGS for qa in scene_questions(scene, lang)],
        "dialogues": [[qa.to_dict() for qa in d] for d in followups.values() if d],
        "meta": {"shapes": [asdict(s) for s in scene.shapes], "digit": scene.digit},
    }


def sound_record(seed: int, split: str, index: int, out: Path | None) -> dict:
    rng = _rng(seed, split, "audio", index)
    sound = sample_sound(rng)
    rel = f"{split}/audio/{index:06d}.wav"
    if out is not None:
        sf.write(out / rel, synthesize(sound, rng), SAMPLE_RATE, subtype="PCM_16")
    return {
        "id": f"{split}-audio-{index:06d}",
        "audio": rel,
        "captions": {lang: caption_sound(sound, lang) for lang in LANGS},
        "qa": [qa.to_dict() for lang in LANGS for qa in sound_questions(sound, lang)],
        "dialogues": [],
        "meta": asdict(sound),
    }


def _write_clip(clip, rng: np.random.Generator, path: Path) -> None:
    from encoders.video_io import write_video

    write_video(path, render_frames(clip), FPS, audio=soundtrack(clip, rng))


def video_record(seed: int, split: str, index: int, out: Path | None) -> dict:
    rng = _rng(seed, split, "video", index)
    clip = sample_clip(rng)
    rel = f"{split}/video/{index:06d}.mp4"
    if out is not None:
        _write_clip(clip, rng, out / rel)
    return {
        "id": f"{split}-video-{index:06d}",
        "video": rel,
        "captions": {lang: caption_clip(clip, lang) for lang in LANGS},
        "qa": [qa.to_dict() for lang in LANGS for qa in clip_questions(clip, lang)],
        "dialogues": [],
        "meta": asdict(clip),
    }


def pair_record(seed: int, split: str, index: int, out: Path | None) -> dict:
    """Two clips that differ in one attribute (or are the same clip), with the comparison question."""
    rng = _rng(seed, split, "pair", index)
    a = sample_clip(rng)
    change = PAIR_CHANGES[int(rng.integers(len(PAIR_CHANGES)))]
    b = a if change is None else variant(a, change, rng)
    rels = [f"{split}/pairs/{index:06d}-{side}.mp4" for side in "ab"]
    if out is not None:
        state = rng.bit_generator.state
        for clip, rel in zip((a, b), rels):
            rng.bit_generator.state = state  # same soundtrack noise: identical clips are identical files
            _write_clip(clip, rng, out / rel)
    return {
        "id": f"{split}-pair-{index:06d}",
        "videos": rels,
        "captions": {},
        "qa": [compare_answer(a, b, change, lang).to_dict() for lang in LANGS],
        "dialogues": [],
        "meta": {"a": asdict(a), "b": asdict(b), "change": change},
    }


_MAKERS = {"image": image_record, "audio": sound_record, "video": video_record, "pair": pair_record}
_DIRS = {"image": "images", "audio": "audio", "video": "video", "pair": "pairs"}


def _chunk(args: tuple[str, int, str, int, int, str]) -> list[dict]:
    kind, seed, split, start, stop, out = args
    return [_MAKERS[kind](seed, split, i, Path(out)) for i in range(start, stop)]


def write_split(out: str | Path, split: str, n_images: int, n_sounds: int, seed: int = 0,
                workers: int = 2, n_videos: int = 0, n_pairs: int = 0) -> Path:
    """Write `n_images` scenes, `n_sounds` sounds, `n_videos` clips and `n_pairs` clip pairs of `split`
    under `out`; returns the manifest path."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; splits: {', '.join(SPLITS)}")
    out = Path(out)
    counts = {"image": n_images, "audio": n_sounds, "video": n_videos, "pair": n_pairs}
    step = 500
    jobs = []
    for kind, n in counts.items():
        (out / split / _DIRS[kind]).mkdir(parents=True, exist_ok=True)
        jobs += [(kind, seed, split, a, min(a + step, n), str(out)) for a in range(0, n, step)]
    manifest = out / f"{split}.jsonl"
    tmp = manifest.with_suffix(".jsonl.tmp")
    with tmp.open("w") as f:
        if workers > 1 and len(jobs) > 1:
            with ProcessPoolExecutor(workers) as pool:
                chunks = pool.map(_chunk, jobs)
                for recs in chunks:
                    f.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in recs)
        else:
            for job in jobs:
                f.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in _chunk(job))
    tmp.replace(manifest)
    logger.info("wrote %s: %d images, %d sounds, %d clips, %d clip pairs", manifest, n_images, n_sounds,
                n_videos, n_pairs)
    return manifest
