"""Writing the synthetic world to disk: PNG images, WAV sounds, MP4 clips and a JSONL manifest per split.

Each split draws from its own seed stream (`[seed, split, kind, index]`), so held-out splits never share
a scene, sound or clip with training. Records carry English and Chinese captions, every answerable
single-turn question and a follow-up dialogue, with the answer key for scoring. Clip pairs (two videos
that differ in one known attribute, or not at all) carry the comparison question.

Two choices make a world, and every record names them under "world":
- phrasing: "seen" (the training grammar), "unseen" (templates and synonyms kept out of training,
  evaluation only) or "canonical" (one fixed wording per question type, the wording of the first world);
- rendering: "train" (the varied training renderers), "alt" (a second renderer and sound synthesiser
  written independently, evaluation only; images and sounds) or "classic" (the first world: grid scenes,
  classic sounds and clips, canonical phrasing, the question types of then; byte for byte what the
  shipped `mm-tiny` was trained and tested on).
An item's content (scene, sound, clip) depends on the seed alone: the same seed gives the same scenes
under every phrasing and rendering, so the held-out columns of `mm eval` differ only in what they vary.
"""

from __future__ import annotations

import json
import logging
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict
from pathlib import Path
from typing import Any, Literal

import numpy as np
import soundfile as sf

from mm.synth.clip_text import caption_clip, clip_questions, compare_answer
from mm.synth.grammar import PHRASINGS, Phrasing
from mm.synth.scene import render, render_classic, sample_scene
from mm.synth.sound import SAMPLE_RATE, sample_sound, synthesize
from mm.synth.text import caption_scene, caption_sound, scene_followups, scene_questions, sound_questions
from mm.synth.video import FPS, render_frames, sample_clip, soundtrack, variant
from mm.synth.vocab import CLASSIC_TYPES

logger = logging.getLogger(__name__)

Rendering = Literal["train", "alt", "classic"]
RENDERINGS: tuple[str, ...] = ("train", "alt", "classic")
SPLITS = {"train": 0, "val": 1, "test": 2}
LANGS = ("en", "zh")
KINDS = {"image": 0, "audio": 1, "video": 2, "pair": 3}
PAIR_CHANGES = (None, "motion", "speed", "colour", "shape", "pitch", "when")
SAMPLE_RATES = (8000, 16000, 22050, 32000, 44100, 48000)  # files of new worlds come at any of these
# The classic world's records held these fields (and the question types of vocab.CLASSIC_TYPES): classic
# records keep exactly these, so the shipped model is measured on the manifests it was made with.
_CLASSIC_FIELDS = {
    "shape": ("shape", "colour", "size", "position"),
    "sound": ("kind", "pitch", "beeps", "direction", "seconds", "gain"),
    "clip": ("shape", "colour", "motion", "speed", "pitch", "when", "start", "beep_at"),
    "qa": ("type", "lang", "q", "a", "key", "followup"),
}


def check_world(split: str, phrasing: str, rendering: str, clips: int = 0) -> None:
    """ValueError naming the bad choice; held-out phrasing and rendering never enter a training split.
    `clips`: how many clips and clip pairs are asked for (the alt rendering has none)."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; splits: {', '.join(SPLITS)}")
    if phrasing not in PHRASINGS:
        raise ValueError(f"unknown phrasing {phrasing!r}; one of {', '.join(PHRASINGS)}")
    if rendering not in RENDERINGS:
        raise ValueError(f"unknown rendering {rendering!r}; one of {', '.join(RENDERINGS)}")
    if rendering == "classic" and phrasing != "canonical":
        raise ValueError(f"the classic world is phrased canonically; got phrasing {phrasing!r}")
    if split == "train" and (phrasing == "unseen" or rendering == "alt"):
        raise ValueError(f"phrasing {phrasing!r} with rendering {rendering!r} is held out for evaluation: "
                         "not for the train split")
    if rendering == "alt" and clips:
        raise ValueError("the alt rendering has images and sounds only: no clips or clip pairs")


def _rng(seed: int, split: str, kind: str, index: int) -> np.random.Generator:
    return np.random.default_rng([seed, SPLITS[split], KINDS[kind], index])


def _streams(rng: np.random.Generator, classic: bool) -> tuple[np.random.Generator, np.random.Generator | None]:
    """(media rng, text rng) once the item is sampled. New worlds draw both from children of `rng`, so
    the text does not depend on whether media are written and the media not on the phrasing; the classic
    world kept drawing from `rng` itself (and asked its single-turn questions without one)."""
    if classic:
        return rng, None
    media, text = rng.spawn(2)
    return media, text


def _meta(obj: Any, kind: str, classic: bool) -> dict:
    d = asdict(obj)
    return {k: d[k] for k in _CLASSIC_FIELDS[kind]} if classic else d


def _qa(qas: list, classic: bool) -> list[dict]:
    return [_meta(qa, "qa", classic) for qa in qas if not classic or qa.type in CLASSIC_TYPES]


def image_record(seed: int, split: str, index: int, out: Path | None, phrasing: Phrasing = "seen",
                 rendering: Rendering = "train") -> dict:
    rng = _rng(seed, split, "image", index)
    classic = rendering == "classic"
    scene = sample_scene(rng, classic=classic)
    media_rng, text_rng = _streams(rng, classic)
    rel = f"{split}/images/{index:06d}.png"
    if out is not None:
        if classic:
            img = render_classic(scene)
        elif rendering == "alt":
            from mm.synth.render_alt import render_alt  # evaluation only: training never imports it

            img = render_alt(scene, media_rng)
        else:
            img = render(scene, media_rng)
        img.save(out / rel)
    followups = {lang: scene_followups(scene, lang, text_rng or rng, phrasing=phrasing) for lang in LANGS}
    return {
        "id": f"{split}-image-{index:06d}",
        "image": rel,
        "captions": {lang: caption_scene(scene, lang) for lang in LANGS},
        "qa": _qa([qa for lang in LANGS for qa in scene_questions(scene, lang, text_rng, phrasing=phrasing)], classic),
        "dialogues": [[_meta(qa, "qa", classic) for qa in d] for d in followups.values() if d],
        "meta": {"shapes": [_meta(s, "shape", classic) for s in scene.shapes], "digit": scene.digit},
        "world": {"phrasing": phrasing, "rendering": rendering},
    }


def sound_record(seed: int, split: str, index: int, out: Path | None, phrasing: Phrasing = "seen",
                 rendering: Rendering = "train") -> dict:
    rng = _rng(seed, split, "audio", index)
    classic = rendering == "classic"
    sound = sample_sound(rng, classic=classic)
    media_rng, text_rng = _streams(rng, classic)
    rel = f"{split}/audio/{index:06d}.wav"
    if out is not None:
        rate = SAMPLE_RATE if classic else int(media_rng.choice(SAMPLE_RATES))
        if rendering == "alt":
            from mm.synth.sound_alt import synthesize_alt  # evaluation only: training never imports it

            wave = synthesize_alt(sound, media_rng, rate)
        else:
            wave = synthesize(sound, media_rng, rate)
        sf.write(out / rel, wave, rate, subtype="PCM_16")
    return {
        "id": f"{split}-audio-{index:06d}",
        "audio": rel,
        "captions": {lang: caption_sound(sound, lang) for lang in LANGS},
        "qa": _qa([qa for lang in LANGS for qa in sound_questions(sound, lang, text_rng, phrasing=phrasing)], classic),
        "dialogues": [],
        "meta": _meta(sound, "sound", classic),
        "world": {"phrasing": phrasing, "rendering": rendering},
    }


def _write_clip(clip, rng: np.random.Generator, path: Path, classic: bool) -> None:
    from encoders.video_io import write_video

    frames = render_frames(clip) if classic else render_frames(clip, rng=rng)
    write_video(path, frames, FPS, audio=soundtrack(clip, rng))


def video_record(seed: int, split: str, index: int, out: Path | None, phrasing: Phrasing = "seen",
                 rendering: Rendering = "train") -> dict:
    check_world(split, phrasing, rendering, clips=1)
    rng = _rng(seed, split, "video", index)
    classic = rendering == "classic"
    clip = sample_clip(rng, classic=classic)
    media_rng, text_rng = _streams(rng, classic)
    rel = f"{split}/video/{index:06d}.mp4"
    if out is not None:
        _write_clip(clip, media_rng, out / rel, classic)
    return {
        "id": f"{split}-video-{index:06d}",
        "video": rel,
        "captions": {lang: caption_clip(clip, lang) for lang in LANGS},
        "qa": _qa([qa for lang in LANGS for qa in clip_questions(clip, lang, text_rng, phrasing=phrasing)], classic),
        "dialogues": [],
        "meta": _meta(clip, "clip", classic),
        "world": {"phrasing": phrasing, "rendering": rendering},
    }


def pair_record(seed: int, split: str, index: int, out: Path | None, phrasing: Phrasing = "seen",
                rendering: Rendering = "train") -> dict:
    """Two clips that differ in one attribute (or are the same clip), with the comparison question."""
    check_world(split, phrasing, rendering, clips=1)
    rng = _rng(seed, split, "pair", index)
    classic = rendering == "classic"
    a = sample_clip(rng, classic=classic)
    change = PAIR_CHANGES[int(rng.integers(len(PAIR_CHANGES)))]
    b = a if change is None else variant(a, change, rng)
    media_rng, text_rng = _streams(rng, classic)
    rels = [f"{split}/pairs/{index:06d}-{side}.mp4" for side in "ab"]
    if out is not None:
        state = media_rng.bit_generator.state
        for clip, rel in zip((a, b), rels):
            media_rng.bit_generator.state = state  # the same draws for both: identical clips are identical files
            _write_clip(clip, media_rng, out / rel, classic)
    return {
        "id": f"{split}-pair-{index:06d}",
        "videos": rels,
        "captions": {},
        "qa": _qa([compare_answer(a, b, change, lang, text_rng, phrasing=phrasing) for lang in LANGS], classic),
        "dialogues": [],
        "meta": {"a": _meta(a, "clip", classic), "b": _meta(b, "clip", classic), "change": change},
        "world": {"phrasing": phrasing, "rendering": rendering},
    }


_MAKERS = {"image": image_record, "audio": sound_record, "video": video_record, "pair": pair_record}
_DIRS = {"image": "images", "audio": "audio", "video": "video", "pair": "pairs"}


def _chunk(args: tuple[str, int, str, int, int, str, str, str]) -> list[dict]:
    kind, seed, split, start, stop, out, phrasing, rendering = args
    return [_MAKERS[kind](seed, split, i, Path(out), phrasing, rendering) for i in range(start, stop)]


def write_split(out: str | Path, split: str, n_images: int, n_sounds: int, seed: int = 0,
                workers: int = 2, n_videos: int = 0, n_pairs: int = 0, phrasing: Phrasing = "seen",
                rendering: Rendering = "train") -> Path:
    """Write `n_images` scenes, `n_sounds` sounds, `n_videos` clips and `n_pairs` clip pairs of `split`
    under `out`, phrased and rendered as asked (see the module docstring); returns the manifest path."""
    check_world(split, phrasing, rendering)
    if n_videos or n_pairs:
        check_world(split, phrasing, rendering, clips=1)
    out = Path(out)
    counts = {"image": n_images, "audio": n_sounds, "video": n_videos, "pair": n_pairs}
    step = 500
    jobs = []
    for kind, n in counts.items():
        (out / split / _DIRS[kind]).mkdir(parents=True, exist_ok=True)
        jobs += [(kind, seed, split, a, min(a + step, n), str(out), phrasing, rendering) for a in range(0, n, step)]
    manifest = out / f"{split}.jsonl"
    tmp = manifest.with_suffix(".jsonl.tmp")
    with tmp.open("w", encoding="utf-8") as f:
        if workers > 1 and len(jobs) > 1:
            with ProcessPoolExecutor(workers) as pool:
                chunks = pool.map(_chunk, jobs)
                for recs in chunks:
                    f.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in recs)
        else:
            for job in jobs:
                f.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in _chunk(job))
    tmp.replace(manifest)
    logger.info("wrote %s (%s phrasing, %s rendering): %d images, %d sounds, %d clips, %d clip pairs", manifest,
                phrasing, rendering, n_images, n_sounds, n_videos, n_pairs)
    return manifest
