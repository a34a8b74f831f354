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
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from accelerate import Accelerator

from mm.chat import MMChat
from mm.config import preset
from mm.loading import INIT_SEED, load
from mm.lora import merge_lora
from mm.model import MMModel
from mm.prompt import CAPTION_PROMPTS, TEMPLATES
from mm.synth import write_split
from mm.tokenizer import build_tokenizer
from mm.train.encoder_pretrain import pretrain_image_encoder
from mm.train.features import FeatureCache
from mm.train.precision import resolve_precision
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
    preset: str = "mm-tiny"  # the architecture built from nothing
    # Stage 0 of the image tower: "attributes" uses the world's known truth (per-region and per-token shape,
    # colour, size), "contrastive" the captions only, "both" adds them (mm.train.encoder_pretrain).
    image_objective: Literal["attributes", "contrastive", "both"] = "attributes"
    vocab_size: int = 1024  # BPE vocabulary incl. special tokens
    lora_r: int = 8  # LoRA rank in stage 2 (alpha 2r), when not full_llm
    # Stage 2 trains the whole 256-wide LLM: LoRA adapters that narrow scored 49% on image questions
    # (full tuning 55% from the same stage 1; see README, "Training notes").
    full_llm: bool = True
    # "auto": bf16 autocast where it is native (it halves a step on CPUs with AVX512-BF16 and is what GPUs
    # use), fp32 on other CPUs, where emulated bf16 made steps 20x slower (mm.train.precision).
    # Stages 0 (LM) and 1 (captions) on length-bucketed batches too: their first 80 steps took 0.53x and 0.76x
    # the time of plain ones (mm.train.buckets, BENCHMARKS.md).
    lm: TrainConfig = field(default_factory=lambda: TrainConfig(
        steps=1000, batch_size=64, lr=2e-3, warmup=50, mixed_precision="auto", bucket=50))
    image_encoder: TrainConfig = field(default_factory=lambda: TrainConfig(
        steps=800, batch_size=64, lr=1e-3, warmup=30, mixed_precision="auto"))
    audio_encoder: TrainConfig = field(default_factory=lambda: TrainConfig(
        steps=600, batch_size=64, lr=1e-3, warmup=50, mixed_precision="auto"))
    image_itc: TrainConfig = field(default_factory=lambda: TrainConfig(
        steps=600, batch_size=256, lr=1e-3, warmup=30, mixed_precision="auto"))
    audio_itc: TrainConfig = field(default_factory=lambda: TrainConfig(
        steps=300, batch_size=256, lr=1e-3, warmup=30, mixed_precision="auto"))
    # With hard negatives (each clip's caption with the motion or speed changed, mm.train.hard_negatives) the
    # temporal Q-Former learns motion, slowly: a probe on its outputs read direction / speed at 40 / 58% after
    # 400 steps, 80 / 93% after 1200 (without negatives 42 / 56% after 400: it dropped motion).
    video_itc: TrainConfig = field(default_factory=lambda: TrainConfig(
        steps=1200, batch_size=64, lr=1e-3, warmup=30, mixed_precision="auto"))
    # Hard negative captions per item in stage 1a, by modality (absent: none; mm.train.hard_negatives).
    hard_negatives: dict[str, int] = field(default_factory=lambda: {"video": 4})
    # Weight of the object-slot loss in stage 1a, by modality (absent: none; mm.train.scene_slots): each image
    # query predicts the object in its cell. Not used yet: the tiny LLM answers about the wrong object even
    # from a written description of the scene, so the bridge is not what limits it (README, "Training notes").
    slot_loss: dict[str, float] = field(default_factory=dict)
    # Q-Formers that keep their stage-1a weights in stages 1 and 2 (their projections train). Trained there
    # through the LLM's loss, the temporal Q-Former lost motion: a probe on its outputs read direction / speed
    # at 97 / 99% after stage 1a, 65 / 65% after stage 1, 36 / 49% after stage 2 (mm bench probe-video).
    frozen_qformers: tuple[str, ...] = ("video",)
    bridge: TrainConfig = field(default_factory=lambda: TrainConfig(
        steps=600, batch_size=64, lr=1e-3, warmup=50, mixed_precision="auto", bucket=50))
    # Stage 2 underfits at 1800 steps of 5e-4 (59% on its own training images as on held-out ones): longer,
    # faster, with 2-4 questions of different types per example (mm.train.examples.DIALOGUE_QUESTIONS); its
    # loss was still falling at 2400 steps. 5000 steps on length-bucketed batches (windows of 50, padding 46% ->
    # 2%, mm.train.buckets) took 86 min (3000 plain ones 62) and gave +5 points on images (README).
    instruct: TrainConfig = field(default_factory=lambda: TrainConfig(
        steps=5000, batch_size=64, lr=1e-3, warmup=100, mixed_precision="auto", bucket=50))

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


@dataclass
class RecipeRun:
    """What every stage reads: the recipe, the world's training records, the model being built, the caches."""

    recipe: TinyRecipe
    out: Path
    records: list[Record]
    chat: MMChat
    acc: Accelerator
    caches: dict[str, FeatureCache] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)

    def features(self) -> dict[str, FeatureCache]:
        """The frozen encoders' features of the world, built once, after the stage-0 encoders are done."""
        if not self.caches:
            t = time.perf_counter()
            self.caches = build_caches(self.chat, self.records, self.out / "features", accelerator=self.acc)
            self.timings["features"] = time.perf_counter() - t
        return self.caches


def _lm(r: RecipeRun, d: Path) -> dict:
    return pretrain_lm(r.chat, r.records, r.recipe.lm, d, accelerator=r.acc)


def _image_encoder(r: RecipeRun, d: Path) -> dict:
    if r.recipe.image_objective == "contrastive":  # captions only (the first mm-tiny's stage 0)
        return pretrain_encoder(r.chat, r.records, "image", r.recipe.image_encoder, d, accelerator=r.acc)
    return pretrain_image_encoder(r.chat.model.encoders["image"], r.recipe.image_encoder, d,
                                  objective=r.recipe.image_objective, tokenizer=r.chat.tokenizer,
                                  scenes_per_epoch=r.recipe.images, accelerator=r.acc)


def _audio_encoder(r: RecipeRun, d: Path) -> dict:
    return pretrain_encoder(r.chat, r.records, "audio", r.recipe.audio_encoder, d, accelerator=r.acc)


def _bridge_itc(modality: str) -> Callable[[RecipeRun, Path], dict | None]:
    def run(r: RecipeRun, d: Path) -> dict | None:
        if modality not in r.chat.config.modalities:
            return None
        return pretrain_bridge(r.chat, r.records, r.features(), modality, getattr(r.recipe, f"{modality}_itc"), d,
                               hard_negatives=r.recipe.hard_negatives.get(modality, 0),
                               slot_weight=r.recipe.slot_loss.get(modality, 0.0), accelerator=r.acc)

    return run


def _present(r: RecipeRun, modalities: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(m for m in modalities if m in r.chat.config.modalities)


def _captions(r: RecipeRun, d: Path) -> dict:
    return train_bridge(r.chat, r.records, r.features(), r.recipe.bridge, d, mode="caption",
                        frozen_qformers=_present(r, r.recipe.frozen_qformers), accelerator=r.acc)


def _instruct(r: RecipeRun, d: Path) -> dict:
    summary = train_bridge(r.chat, r.records, r.features(), r.recipe.instruct, d, mode="dialogue",
                           lora=not r.recipe.full_llm, full_llm=r.recipe.full_llm, lora_r=r.recipe.lora_r,
                           frozen_qformers=_present(r, r.recipe.frozen_qformers), accelerator=r.acc)
    merge_lora(r.chat.model)
    return summary


@dataclass(frozen=True)
class Stage:
    name: str  # its directory under the run, holding `model/` and `done.json` once finished
    run: Callable[[RecipeRun, Path], dict | None]


# The recipe, in order. Running and resuming both read this table: each finished stage leaves a saved model,
# and a re-run continues from the last one.
STAGES: tuple[Stage, ...] = (
    Stage("stage0-lm", _lm),
    Stage("stage0-image", _image_encoder),
    Stage("stage0-audio", _audio_encoder),
    Stage("stage1a-image", _bridge_itc("image")),
    Stage("stage1a-audio", _bridge_itc("audio")),
    Stage("stage1a-video", _bridge_itc("video")),
    Stage("stage1-bridge", _captions),
    Stage("stage2-instruct", _instruct),
)


def _done(out: Path, name: str) -> dict | None:
    f = out / name / "done.json"
    return json.loads(f.read_text()) if f.exists() else None


def _finish(r: RecipeRun, d: Path, name: str, seconds: float, summary: dict | None) -> None:
    r.timings[name] = seconds
    r.acc.wait_for_everyone()
    if r.acc.is_main_process:
        r.chat.save_pretrained(d / "model")
        (d / "done.json").write_text(json.dumps({"seconds": seconds, "summary": summary}, default=str))
    r.acc.wait_for_everyone()


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
        cfg = preset(recipe.preset)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(INIT_SEED)
            chat = MMChat(MMModel(cfg), tokenizer)

    r = RecipeRun(recipe, out, records, chat, acc, timings=timings)
    for stage in STAGES:
        d = out / stage.name
        done = _done(out, stage.name)
        if done is not None:
            timings[stage.name] = done.get("seconds", 0.0)
            continue
        t, cached = time.perf_counter(), timings.get("features", 0.0)
        summary = stage.run(r, d)
        # The feature cache, built inside the first stage that reads it, is timed on its own line.
        _finish(r, d, stage.name, time.perf_counter() - t - (timings.get("features", 0.0) - cached), summary)

    final = out / STAGES[-1].name / "model"
    if acc.is_main_process:
        report = {"timings_s": timings, "total_s": sum(timings.values()), "recipe": asdict(recipe),
                  "device": str(acc.device), "processes": acc.num_processes, "threads": torch.get_num_threads(),
                  "cpu": torch.backends.cpu.get_cpu_capability(), "auto_precision": resolve_precision("auto", acc.device)}
        (out / "recipe.json").write_text(json.dumps(report, indent=2))
        if ship is not None:
            ship_model(final, ship)
    acc.wait_for_everyone()
    return final


def _resume_point(out: Path) -> MMChat | None:
    """The model saved by the last finished stage of `STAGES`, if any."""
    for stage in reversed(STAGES):
        if _done(out, stage.name) is not None:
            logger.info("continuing from %s", out / stage.name / "model")
            return load(out / stage.name / "model")
    return None


def ship_model(src: str | Path, dst: str | Path) -> None:
    """Save a trained model in fp16 (the package ships it: keep it small)."""
    chat = load(src)
    chat.model.half()
    chat.save_pretrained(dst)


def summarize(out: str | Path) -> dict[str, Any]:
    return json.loads((Path(out) / "recipe.json").read_text())
