"""Hard negative captions for stage 1a: captions of a training item that are wrong about exactly one thing.

Contrastive learning against the other captions of a batch lets a bridge ignore whatever the batch does not
need to tell its items apart: a clip's colour, shape and beep nearly always single it out among 64, so the
temporal Q-Former learnt to drop motion and speed (a probe read them at chance from its outputs). NegCLIP
(Yuksekgonul et al., "When and why vision-language models behave like bags-of-words", ICLR 2023) adds, for
each item, captions changed in one detail as extra negatives; here they come from the synthetic world's own
record of what each clip shows (`meta`), in the language of the caption drawn.

For scenes they are the caption with one object's colour, shape, size or position changed, two objects'
colours or shapes swapped, an object left out, or the digit changed (`mm.synth.text`): many per scene, of
which the dataset draws a few per epoch.

`HARD_NEGATIVES` maps a modality name to its generator `(record, lang) -> captions`; records without the
world's metadata (users' data) get none, and the loss is then plain CLIP.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping

from mm.synth.clip_text import counterfactual_captions
from mm.synth.scene import Scene, Shape
from mm.synth.text import counterfactual_scene_captions
from mm.synth.video import Clip
from mm.train.sources import Record

NegativeCaptions = Callable[[Record, str], list[str]]

_CLIP_FIELDS = {f.name for f in dataclasses.fields(Clip)}
_SHAPE_FIELDS = {f.name for f in dataclasses.fields(Shape)}
_SHAPE_NEEDS = {"shape", "colour", "size", "position"}


def clip_negatives(record: Record, lang: str) -> list[str]:
    """A world clip's caption with its motion changed (3) and its speed changed (1); [] for other records."""
    meta = record.extra.get("meta")
    if not isinstance(meta, dict) or not {"shape", "colour", "motion", "speed", "pitch", "when"} <= meta.keys():
        return []
    clip = Clip(**{k: v for k, v in meta.items() if k in _CLIP_FIELDS})
    return counterfactual_captions(clip, lang, ("motion", "speed"))


def scene_negatives(record: Record, lang: str) -> list[str]:
    """A world scene's caption wrong about one thing (`counterfactual_scene_captions`); [] for other records."""
    meta = record.extra.get("meta")
    shapes = meta.get("shapes") if isinstance(meta, dict) else None
    if not shapes or not all(isinstance(s, dict) and _SHAPE_NEEDS <= s.keys() for s in shapes):
        return []
    scene = Scene([Shape(**{k: v for k, v in s.items() if k in _SHAPE_FIELDS}) for s in shapes], meta.get("digit"))
    return counterfactual_scene_captions(scene, lang)


HARD_NEGATIVES: Mapping[str, NegativeCaptions] = {"image": scene_negatives, "video": clip_negatives}


def caption_languages(record: Record) -> list[str | None]:
    """The language of each of `record.captions` where the manifest gave captions by language, else None."""
    by_lang = record.extra.get("captions")
    if isinstance(by_lang, dict) and list(by_lang.values()) == record.captions:
        return list(by_lang)
    return [None] * len(record.captions)
