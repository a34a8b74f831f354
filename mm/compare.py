"""Comparing two clips: per-segment similarity, a DTW alignment, overall scores and the model's own words.

Shape letters: Sa / Sb segments of clip A / B, V video slots, D bridge width.

Each clip is cut into segments (fixed windows or scene cuts, `encoders.video_segments`). A segment's
frames go through the image encoder, image Q-Former and temporal Q-Former; its sound through the audio
encoder and audio Q-Former. A segment's embedding is its bridge output flattened over the query slots and
L2-normalised (the slots are ordered, so flattening keeps what mean-pooling would blur, e.g. which way a
shape moves). Cosine similarities give (Sa, Sb) matrices; dynamic time warping on 1 - similarity aligns
the clips; the scores are the mean similarity along that path. The model then describes each clip and,
seeing both, says how they differ.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from encoders.video_segments import Segment, iter_segments
from mm.captioning import caption_items
from mm.engine import Engine, HasEngine, engine_of
from mm.errors import InputError
from mm.limits import Limits
from mm.modality import AudioModality, VideoModality
from mm.prompt import COMPARE_PROMPTS


@dataclass
class ClipComparison:
    a: str  # names of the clips
    b: str
    segments_a: list[Segment]
    segments_b: list[Segment]
    visual: np.ndarray  # (Sa, Sb) cosine similarity of segment video embeddings
    audio: np.ndarray | None  # (Sa, Sb), None when either clip has no sound (or the model takes none)
    path: list[tuple[int, int]]  # DTW alignment, (segment of A, segment of B) from start to end
    visual_score: float  # mean visual similarity along the path, in [-1, 1]; 1 for identical clips
    audio_score: float | None
    differing: list[dict[str, Any]] = field(default_factory=list)  # aligned pairs that differ most
    descriptions: dict[str, str] = field(default_factory=dict)  # "a", "b": the model's description
    difference: str = ""  # the model's answer to "what is the difference?"
    seconds: dict[str, float] = field(default_factory=dict)  # time per phase

    def to_dict(self) -> dict[str, Any]:
        def segs(ss: list[Segment]) -> list[dict[str, Any]]:
            return [{"index": s.index, "start": round(s.start, 3), "end": round(s.end, 3),
                     "frame_times": [round(t, 3) for t in s.times]} for s in ss]

        return {
            "a": self.a, "b": self.b,
            "visual_score": self.visual_score, "audio_score": self.audio_score,
            "segments_a": segs(self.segments_a), "segments_b": segs(self.segments_b),
            "visual_similarity": np.round(self.visual, 4).tolist(),
            "audio_similarity": None if self.audio is None else np.round(self.audio, 4).tolist(),
            "path": [list(p) for p in self.path],
            "differing": self.differing,
            "descriptions": self.descriptions, "difference": self.difference,
            "seconds": {k: round(v, 3) for k, v in self.seconds.items()},
        }


def dtw(cost: np.ndarray) -> list[tuple[int, int]]:
    """Minimum-cost monotone path from (0, 0) to (n-1, m-1) with steps (1,0), (0,1), (1,1)."""
    n, m = cost.shape
    acc = np.full((n + 1, m + 1), np.inf)
    acc[0, 0] = 0.0
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            acc[i, j] = cost[i - 1, j - 1] + min(acc[i - 1, j - 1], acc[i - 1, j], acc[i, j - 1])
    path, i, j = [], n, m
    while i > 0 and j > 0:
        path.append((i - 1, j - 1))
        step = int(np.argmin([acc[i - 1, j - 1], acc[i - 1, j], acc[i, j - 1]]))
        i, j = (i - 1, j - 1) if step == 0 else (i - 1, j) if step == 1 else (i, j - 1)
    return path[::-1]


@torch.no_grad()
def _embed_segments(engine: Engine, segments: list[Segment], batch: int = 16) -> tuple[np.ndarray, np.ndarray | None]:
    """(S, V*D) video embeddings and (S, Q*D) audio embeddings (None unless every segment has sound)."""
    clips: VideoModality = engine.model.modality(VideoModality.name)
    sound = engine.model.modalities.get(AudioModality.name)
    with_audio = sound is not None and all(s.audio is not None and s.audio.numel() >= 160 for s in segments)
    video, audio = [], []
    for start in range(0, len(segments), batch):
        part = segments[start:start + batch]
        items = [clips.item(clips.frames(s.frames)) for s in part]
        tokens = clips.bridge_tokens(clips.collate(items, engine.device))
        video += [torch.nn.functional.normalize(t.float().flatten(), dim=0) for t in tokens]
        if with_audio:
            items = [sound.item(s.audio) for s in part]
            tokens = sound.bridge_tokens(sound.collate(items, engine.device))
            # Long segments span several audio windows: average the windows, keep the query order.
            q = sound.qformer.config.num_queries
            audio += [torch.nn.functional.normalize(t.float().reshape(-1, q, t.shape[-1]).mean(0).flatten(), dim=0)
                      for t in tokens]
    return torch.stack(video).numpy(), (torch.stack(audio).numpy() if with_audio else None)


def _positive_seconds(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise InputError(f"{name} must be a number of seconds, got {type(value).__name__}")
    try:
        seconds = float(value)
    except OverflowError:
        seconds = math.inf
    if not math.isfinite(seconds) or seconds <= 0:
        raise InputError(f"{name} must be a positive, finite number of seconds, got {value!r}")
    return seconds


def compare_clips(a: str | Path, b: str | Path, *, model: Engine | HasEngine, segment_seconds: float = 2.0, cuts: bool = False,
                  cut_threshold: float = 0.25, describe: bool = True, lang: str = "en", top: int = 3,
                  max_new_tokens: int = 64, limits: Limits | None = None) -> ClipComparison:
    """Compare clips `a` and `b` with `model` (an `MMChat` whose model takes video); see the module doc.

    Each clip is decoded within `limits` (default: the model's): its bytes, frame size and length, at most
    `limits.max_clip_segments` segments (a clip of 600 s in windows of 0.001 s would be 600000), and the
    deadline, counted per clip.
    """
    engine = engine_of(model)
    engine.model.modality(VideoModality.name)  # InputError: this model does not take video input
    if lang not in COMPARE_PROMPTS:
        raise InputError(f"lang must be one of {', '.join(COMPARE_PROMPTS)}, got {lang!r}")
    segment_seconds = _positive_seconds("segment_seconds (--segment)", segment_seconds)
    limits = engine.processor.limits_for(limits)
    frames = engine.model.config.video.frames
    seconds: dict[str, float] = {}
    t0 = time.perf_counter()
    kw = {"seconds": segment_seconds, "frames": frames, "cuts": cuts, "cut_threshold": cut_threshold,
          "max_seconds": limits.max_video_seconds, "max_pixels": limits.max_image_pixels,
          "max_bytes": limits.max_file_bytes, "max_segments": limits.max_clip_segments}
    seg_a = list(iter_segments(a, **kw, deadline=time.monotonic() + limits.deadline_seconds))
    seg_b = list(iter_segments(b, **kw, deadline=time.monotonic() + limits.deadline_seconds))
    if not seg_a or not seg_b:
        raise InputError(f"{a if not seg_a else b}: no frames could be decoded")
    seconds["decode"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    va, aa = _embed_segments(engine, seg_a)
    vb, ab = _embed_segments(engine, seg_b)
    seconds["embed"] = time.perf_counter() - t0
    # Keep the segment frames small: only key frames are needed for the report.
    for s in seg_a + seg_b:
        s.frames, s.audio = [s.key_frame], None
    t0 = time.perf_counter()
    visual = va @ vb.T
    audio = aa @ ab.T if aa is not None and ab is not None else None
    cost = 1.0 - (visual if audio is None else (visual + audio) / 2)
    path = dtw(cost)
    v_along = np.array([visual[i, j] for i, j in path])
    a_along = None if audio is None else np.array([audio[i, j] for i, j in path])
    order = np.argsort(v_along if a_along is None else (v_along + a_along) / 2)[:top]
    differing = [{"a": int(path[k][0]), "b": int(path[k][1]),
                  "a_time": [round(seg_a[path[k][0]].start, 3), round(seg_a[path[k][0]].end, 3)],
                  "b_time": [round(seg_b[path[k][1]].start, 3), round(seg_b[path[k][1]].end, 3)],
                  "visual": float(v_along[k]), "audio": None if a_along is None else float(a_along[k])}
                 for k in order]
    seconds["align"] = time.perf_counter() - t0
    result = ClipComparison(str(a), str(b), seg_a, seg_b, visual, audio, path, float(v_along.mean()),
                            None if a_along is None else float(a_along.mean()), differing, seconds=seconds)
    if describe:
        t0 = time.perf_counter()
        caps = caption_items(engine, [str(a), str(b)], lang=lang, max_new_tokens=max_new_tokens, limits=limits)
        result.descriptions = {"a": caps[0].caption, "b": caps[1].caption}
        result.difference = engine.answer(COMPARE_PROMPTS[lang], video=[str(a), str(b)], max_new_tokens=max_new_tokens,
                                          limits=limits).text
        seconds["describe"] = time.perf_counter() - t0
    return result
