"""Writing the synthetic world to disk: PNG images, WAV sounds and a JSONL manifest per split.

Each split draws from its own seed stream (`[seed, split, index]`), so held-out splits never share a
scene or a sound with training. Records carry English and Chinese captions, every answerable
single-turn question and a two-turn follow-up dialogue, with the answer key for scoring.
"""

from __future__ import annotations

import json
import logging
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict
from pathlib import Path

import numpy as np
import soundfile as sf

from mm.synth.scene import render, sample_scene
from mm.synth.sound import SAMPLE_RATE, sample_sound, synthesize
from mm.synth.text import caption_scene, caption_sound, scene_followups, scene_questions, sound_questions

logger = logging.getLogger(__name__)

SPLITS = {"train": 0, "val": 1, "test": 2}
LANGS = ("en", "zh")


def _rng(seed: int, split: str, kind: str, index: int) -> np.random.Generator:
    return np.random.default_rng([seed, SPLITS[split], 0 if kind == "image" else 1, index])


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


def _chunk(args: tuple[str, int, str, int, int, str]) -> list[dict]:
    kind, seed, split, start, stop, out = args
    make = image_record if kind == "image" else sound_record
    return [make(seed, split, i, Path(out)) for i in range(start, stop)]


def write_split(out: str | Path, split: str, n_images: int, n_sounds: int, seed: int = 0,
                workers: int = 2) -> Path:
    """Write `n_images` scenes and `n_sounds` clips of `split` under `out`; returns the manifest path."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; splits: {', '.join(SPLITS)}")
    out = Path(out)
    (out / split / "images").mkdir(parents=True, exist_ok=True)
    (out / split / "audio").mkdir(parents=True, exist_ok=True)
    step = 500
    jobs = [("image", seed, split, a, min(a + step, n_images), str(out)) for a in range(0, n_images, step)]
    jobs += [("audio", seed, split, a, min(a + step, n_sounds), str(out)) for a in range(0, n_sounds, step)]
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
    logger.info("wrote %s: %d images, %d sounds", manifest, n_images, n_sounds)
    return manifest
