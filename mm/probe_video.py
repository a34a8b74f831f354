"""Clip probes: do motion and speed survive the video path, frame by frame and after the temporal Q-Former?

Shape letters: B clips, F frames, Q image queries per frame, D image Q-Former width, V temporal queries,
Dv temporal Q-Former width.

Clips of the synthetic world are rendered fresh (not the training files), their frames sampled at the times
`encoders.video_io.load_video` would pick, and read by the model's video modality at two points: the image
Q-Former's outputs of every frame, (B, F*Q, D), and the temporal Q-Former's outputs, (B, V, Dv), which
are what the LLM and `mm.compare_clips` see. A probe (`mm.probe.fit_probe`) trained on each says how much
of the motion (left, right, up, down) and speed (slow, fast) is there to read: when the per-frame outputs
have it and the temporal ones do not, the temporal Q-Former drops it (see README, "How good the shipped
mm-tiny is").
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch
from PIL import Image

from encoders.video_io import sample_times
from mm.modality import VideoBatch
from mm.model import MMModel
from mm.probe import Pool, ProbeData, fit_probe, probe_accuracy
from mm.synth.video import FPS, SECONDS, render_frames, sample_clip
from mm.synth.vocab import MOTIONS, SPEEDS

CLIP_ATTRIBUTES: dict[str, tuple[str, ...]] = {"motion": tuple(MOTIONS), "speed": tuple(SPEEDS)}
POINTS = ("frames", "temporal")  # where the video path is read


def clip_pixels(model: MMModel, n: int, seed: int) -> tuple[list[torch.Tensor], dict[str, list[int]]]:
    """`n` world clips from seed stream `seed`: each clip's preprocessed frames (F, 3, H, W) and the labels."""
    video = model.modality("video")
    vcfg = model.config.video
    rng = np.random.default_rng(seed)
    rendered = round(SECONDS * FPS)
    picks = [min(rendered - 1, int(t * FPS)) for t in sample_times(SECONDS, vcfg.frames, vcfg.fps, vcfg.max_frames)]
    pixels, labels = [], {k: [] for k in CLIP_ATTRIBUTES}
    for _ in range(n):
        clip = sample_clip(rng)
        frames = render_frames(clip, rng=rng, indices=picks)
        pixels.append(video.frames([Image.fromarray(f) for f in frames]))
        for k, classes in CLIP_ATTRIBUTES.items():
            labels[k].append(classes.index(getattr(clip, k)))
    return pixels, labels


@torch.no_grad()
def encode_clips(model: MMModel, n: int, seed: int, batch_size: int = 16) -> dict[str, ProbeData]:
    """The clips' features at each of `POINTS`, with their motion and speed labels."""
    if "video" not in model.config.modalities:
        raise ValueError("the model has no video input")
    video = model.modality("video")
    pixels, labels = clip_pixels(model, n, seed)
    device = next(model.parameters()).device
    feats: dict[str, list[torch.Tensor]] = {p: [] for p in POINTS}
    nf = video.encoder.num_tokens
    for i in range(0, n, batch_size):
        chunk = pixels[i:i + batch_size]
        enc = video.encode(VideoBatch(torch.stack(chunk).to(device), [c.shape[0] for c in chunk]))
        b, n_tokens, d = enc.states.shape
        per_frame = video.image.qformer(enc.states.reshape(-1, nf, d).to(video.image.qformer.query_tokens.dtype),
                                        None)  # (B*F, Q, D)
        feats["frames"].append(per_frame.reshape(b, -1, per_frame.shape[-1]).float().cpu())  # (B, F*Q, D)
        feats["temporal"].append(torch.stack(video.bridge(enc.states, enc.mask, enc.valid)).float().cpu())
    tensors = {k: torch.tensor(v) for k, v in labels.items()}
    return {p: ProbeData(torch.cat(f), tensors, dict(CLIP_ATTRIBUTES)) for p, f in feats.items()}


def probe_clips(model: MMModel, *, n_train: int = 2000, n_test: int = 500, seed: int = 0, pool: Pool = "linear",
                steps: int = 600) -> dict[str, Any]:
    """Train a probe at each point on `n_train` clips and report its accuracy on `n_test` held-out ones
    (another seed stream). Returns a JSON-able dict: {"accuracy": {point: {attribute: acc}}, "chance": ...}."""
    was_training = model.training
    model.eval()
    t0 = time.perf_counter()
    train, test = encode_clips(model, n_train, seed), encode_clips(model, n_test, seed + 1_000_003)
    t_encode = time.perf_counter() - t0
    model.train(was_training)
    accuracy, train_accuracy = {}, {}
    for point in POINTS:
        probe = fit_probe(train[point], pool, steps, seed=seed)
        accuracy[point] = {k: round(v, 4) for k, v in probe_accuracy(probe, test[point]).items()}
        train_accuracy[point] = {k: round(v, 4) for k, v in probe_accuracy(probe, train[point]).items()}
    return {
        "accuracy": accuracy, "train_accuracy": train_accuracy,
        "chance": {k: round(1 / len(c), 4) for k, c in CLIP_ATTRIBUTES.items()},
        "pool": pool, "train_clips": n_train, "test_clips": n_test, "steps": steps,
        "tokens": {p: list(train[p].features.shape[1:]) for p in POINTS},
        "seconds": {"encode": round(t_encode, 2)},
    }
