"""`mm train --recipe mm-tiny`: the embedded default model, reproduced from nothing.

synthetic world -> tokenizer -> LLM pretraining -> contrastive image and audio encoders -> feature cache
-> stage 1a contrastive Q-Formers (image, audio, video) -> stage 1 bridge on captions -> stage 2 bridge +
LLM on dialogues -> model (fp16 to ship).

Every stage leaves a saved model behind it and skips itself when that exists, and resumes from its
checkpoint when interrupted, so re-running the same command continues where it stopped.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator

from mm.chat import MMChat
from mm.config import preset
from mm.loading import INIT_SEED, load
from mm.model import MMModel
from mm.prompt import CAPTION_PROMPTS, TEMPLATES
from mm.synth import write_split
from mm.tokenizer import build_tokenizer
from mm.train.lora import merge_lora
from mm.train.sources import Record, read_jsonl
from mm.train.stages import build_caches, pretrain_bridge, pretrain_encoder, pretrain_lm, train_bridge
from mm.train.trainer import TrainConfig, make_accelerator

logger = logging.getLogger(__name__)


@dataclass
class TinyRecipe:
    images: int = 20000  # training scenes
    sounds: int = 8000  # training sound clips
    val_images: int = 500  # validation scenes (a disjoint seed stream)
    val_sounds: int = 300  # validation sounds
    videos: int = 4000  # training clips (moving shape + beep)
    pairs: int = 1500  # training clip pairs for the comparison question
    val_videos: int = 200
    val_pairs: int = 100
    world_seed: int = 0  # seed of the synthetic world
    vocab_size: int = 1024  # BPE vocabulary incl. special tokens
    lora_r: int = 8  # LoRA rank in stage 2 (alpha 2r), when not full_llm
    # Stage 2 trains the whole 256-wide LLM: LoRA adapters that narrow scored 49% on image questions
    # (full tuning 55% from the same stage 1; see README, "Training notes").
    full_llm: bool = True
    # bf16 autocast halves step time on CPUs with AVX512-BF16 and is what GPUs use anyway.
    lm: TrainConfig = field(default_factory=lambda: TrainConfig(
        steps=1000, batch_size=64, lr=2e-3, warmup=50, mixed_precision="bf16"))
    image_encoder: TrainConfig = field(default_factory=lambda: TrainConfig(
        steps=1200, batch_size=128, lr=1e-3, warmup=100, mixed_precision="bf16"))
    audio_encoder: TrainConfig = field(default_factory=lambda: TrainConfig(
        steps=600, batch_size=64, lr=1e-3, warmup=50, mixed_precision="bf16"))
    image_itc: TrainConfig = field(default_factory=lambda: TrainConfig(
        steps=600, batch_size=256, lr=1e-3, warmup=30, mixed_precision="bf16"))
    audio_itc: TrainConfig = field(default_factory=lambda: TrainConfig(
        steps=300, batch_size=256, lr=1e-3, warmup=30, mixed_precision="bf16"))
    video_itc: TrainConfig = field(default_factory=lambda: TrainConfig(
        steps=400, batch_size=64, lr=1e-3, warmup=30, mixed_precision="bf16"))
    bridge: TrainConfig = field(default_factory=lambda: TrainConfig(
        steps=600, batch_size=64, lr=1e-3, warmup=50, mixed_precision="bf16"))
    instruct: TrainConfig = field(default_factory=lambda: TrainConfig(
        steps=2500, batch_size=64, lr=5e-4, warmup=50, mixed_precision="bf16"))

    @classmethod
    def smoke(cls) -> TinyRecipe:
        """A few steps of everything on a small world: for tests and for trying the pipeline."""
        small = {"steps": 4, "batch_size": 8, "warmup": 1, "log_every": 2, "ckpt_every": 2}
        return cls(images=64, sounds=32, val_images=8, val_sounds=8, videos=16, pairs=8, val_videos=4, val_pairs=4,
                   vocab_size=600,
                   lm=TrainConfig(**small), image_encoder=TrainConfig(**small), audio_encoder=TrainConfig(**small),
                   image_itc=TrainConfig(**small), audio_itc=TrainConfig(**small), video_itc=TrainConfig(**small),
                   bridge=TrainConfig(**small), instruct=TrainConfig(**small))


def corpus(records: list[Record]) -> list[str]:
    """All text the tokenizer should know: captions, questions, answers, prompts, template markers."""
    texts = [c for r in records for c in r.captions]
    texts += [t[k] for r in records for t in r.extra.get("qa", []) for k in ("q", "a")]
    texts += [p for by_lang in CAPTION_PROMPTS.values() for ps in by_lang.values() for p in ps]
    texts += [t.user + t.assistant for t in TEMPLATES.values()]
    return texts


def _stage(out: Path, name: str, timings: dict[str, float], acc: Accelerator) -> tuple[Path, bool]:
    """The stage's directory and whether it already finished."""
    d = out / name
    done = (d / "done.json").exists()
    if done:
        timings[name] = json.loads((d / "done.json").read_text()).get("seconds", 0.0)
    return d, done


def _finish(chat: MMChat, d: Path, name: str, started: float, timings: dict[str, float], acc: Accelerator,
            summary: dict | None = None) -> None:
    timings[name] = time.perf_counter() - started
    acc.wait_for_everyone()
    if acc.is_main_process:
        chat.save_pretrained(d / "model")
        (d / "done.json").write_text(json.dumps({"seconds": timings[name], "summary": summary}, default=str))
    acc.wait_for_everyone()


def run_tiny(out: str | Path, recipe: TinyRecipe | None = None, ship: str | Path | None = None) -> Path:
    """Run (or continue) the recipe under `out`; returns the final model directory."""
    recipe = recipe or TinyRecipe()
    out = Path(out)
    acc = make_accelerator()
    timings: dict[str, float] = {}
    world = out / "world"
    t = time.perf_counter()
    if acc.is_main_process and not (world / "train.jsonl").exists():
        write_split(world, "train", recipe.images, recipe.sounds, recipe.world_seed, n_videos=recipe.videos,
                    n_pairs=recipe.pairs)
        write_split(world, "val", recipe.val_images, recipe.val_sounds, recipe.world_seed, n_videos=recipe.val_videos,
                    n_pairs=recipe.val_pairs)
    acc.wait_for_everyone()
    timings["synth"] = time.perf_counter() - t
    records = list(read_jsonl(world / "train.jsonl"))

    # Tokenizer and the untrained model.
    tok_dir = out / "tokenizer"
    if acc.is_main_process and not (tok_dir / "tokenizer.json").exists():
        build_tokenizer(corpus(records), recipe.vocab_size).save_pretrained(tok_dir)
    acc.wait_for_everyone()
    chat = _resume_point(out)
    if chat is None:
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(tok_dir, local_files_only=True)
        cfg = preset("mm-tiny")
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(INIT_SEED)
            chat = MMChat(MMModel(cfg), tokenizer)

    steps = [
        ("stage0-lm", lambda d: pretrain_lm(chat, records, recipe.lm, d, accelerator=acc)),
        ("stage0-image", lambda d: pretrain_encoder(chat, records, "image", recipe.image_encoder, d, accelerator=acc)),
        ("stage0-audio", lambda d: pretrain_encoder(chat, records, "audio", recipe.audio_encoder, d, accelerator=acc)),
    ]
    for name, fn in steps:
        d, done = _stage(out, name, timings, acc)
        if done:
            continue
        t = time.perf_counter()
        summary = fn(d)
        _finish(chat, d, name, t, timings, acc, summary)

    t = time.perf_counter()
    caches = build_caches(chat, records, out / "features", accelerator=acc)
    timings["features"] = time.perf_counter() - t

    for modality in chat.config.modalities:
        name = f"stage1a-{modality}"
        d, done = _stage(out, name, timings, acc)
        if not done:
            t = time.perf_counter()
            summary = pretrain_bridge(chat, records, caches, modality, getattr(recipe, f"{modality}_itc"), d,
                                      accelerator=acc)
            _finish(chat, d, name, t, timings, acc, summary)
    d, done = _stage(out, "stage1-bridge", timings, acc)
    if not done:
        t = time.perf_counter()
        summary = train_bridge(chat, records, caches, recipe.bridge, d, mode="caption", accelerator=acc)
        _finish(chat, d, "stage1-bridge", t, timings, acc, summary)
    d, done = _stage(out, "stage2-instruct", timings, acc)
    if not done:
        t = time.perf_counter()
        summary = train_bridge(chat, records, caches, recipe.instruct, d, mode="dialogue",
                               lora=not recipe.full_llm, full_llm=recipe.full_llm, lora_r=recipe.lora_r,
                               accelerator=acc)
        merge_lora(chat.model)
        _finish(chat, d, "stage2-instruct", t, timings, acc, summary)

    final = out / "stage2-instruct" / "model"
    if acc.is_main_process:
        report = {"timings_s": timings, "total_s": sum(timings.values()), "recipe": asdict(recipe),
                  "device": str(acc.device), "processes": acc.num_processes, "threads": torch.get_num_threads()}
        (out / "recipe.json").write_text(json.dumps(report, indent=2))
        if ship is not None:
            ship_model(final, ship)
    acc.wait_for_everyone()
    return final


def _resume_point(out: Path) -> MMChat | None:
    """The model saved by the last finished stage, if any."""
    order = ["stage2-instruct", "stage1-bridge", "stage1a-video", "stage1a-audio", "stage1a-image", "stage0-audio",
             "stage0-image", "stage0-lm"]
    for name in order:
        d = out / name
        if (d / "done.json").exists():
            logger.info("continuing from %s", d / "model")
            return load(d / "model")
    return None


def ship_model(src: str | Path, dst: str | Path) -> None:
    """Save a trained model in fp16 (the package ships it: keep it small)."""
    chat = load(src)
    chat.model.half()
    chat.save_pretrained(dst)


def summarize(out: str | Path) -> dict[str, Any]:
    return json.loads((Path(out) / "recipe.json").read_text())
