"""Benchmarks: `caption` (batched vs one-by-one captioning), `compare` (clip comparison vs length) and
`qformer` (our Q-Former vs transformers' BLIP-2 Q-Former, and the machine's GEMM rate), `fullsize` (a
random-weight VisualGLM-6B in the published SAT layout, about 15.6 GB, loaded in bf16 and int4) and `serve`
(concurrent clients against a `mm serve` process: requests/s, latency, 429s, 5xx, memory before and after)
and `probe` (a probe trained on the frozen image encoder's tokens of single-shape scenes: held-out accuracy
of shape, position, colour and size, what a bridge could read at best) and `probe-video` (the same for
clips' motion and speed, read from the video path before and after the temporal Q-Former) and `described` (the
image questions of fresh held-out scenes asked about the picture and about the scene's caption written in its
place, with no media: what the LLM makes of a perfect description) and `chat` (time to first token of
the follow-ups of a 5-turn image+audio conversation, the engine's prefix cache against prefilling the whole
history every turn, with identical greedy answers) and `batches` (stage-2 training steps on plain shuffled
batches against length-bucketed ones, `mm train --bucket`: padding and step time, timed alternately).

Figures are measured side by side in one run and reported as ratios; BENCHMARKS.md records them.

Examples:
  mm bench caption --json
  mm bench compare --json
  mm bench compare --lengths 10 20 40 --no-describe
  mm bench qformer --json --batch 8 --repeats 7
  mm bench fullsize --json --out /big/disk --keep
  mm bench serve --json --requests 1000 --clients 8 --max-tokens 8
  mm bench probe --json                                   # the --model's image encoder
  mm bench probe --json --encoder tiny-convvit --image-encoder runs/enc.safetensors --renderers train alt
  mm bench probe-video --json --clips 2000 --test-clips 500
  mm bench described --json --scenes 100 --seed 777
  mm bench chat --json --repeats 7 --threads 1
  mm bench batches --json --model runs/tiny/stage1-bridge/model --data runs/tiny/world/train.jsonl \
    --features runs/tiny/features
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from mm.cli.common import add_model_args, load_model, parser, positive_int


def main(argv: list[str]) -> int:
    from mm.bench import bench_caption, bench_compare, bench_qformer, machine

    p = parser("bench", __doc__)
    p.add_argument("name", choices=["caption", "compare", "qformer", "fullsize", "serve", "probe", "probe-video",
                                     "described", "chat", "batches"])
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--items", type=int, default=64, help="caption: images to caption")
    p.add_argument("--batch-size", type=int, default=None, help="caption: batch size (default 16); "
                   "batches: examples per step (default 64)")
    p.add_argument("--lengths", type=float, nargs="+", default=[10, 20, 40], help="compare: clip lengths (s)")
    p.add_argument("--pair-seconds", type=float, default=60, help="compare: length of the timed pair")
    p.add_argument("--no-describe", action="store_true", help="compare: skip the model's descriptions")
    p.add_argument("--batch", type=int, default=8, help="qformer: items per forward")
    p.add_argument("--tokens", type=int, default=257, help="qformer: encoder tokens per item (EVA ViT-g: 257)")
    p.add_argument("--repeats", type=int, default=7,
                   help="qformer, chat, batches: timed runs (steps) of each (median reported)")
    p.add_argument("--tiny", action="store_true", help="qformer: a toy-size Q-Former (for tests)")
    p.add_argument("--out", default=None, help="fullsize: folder for the 15.6 GB release (default: temp)")
    p.add_argument("--keep", action="store_true", help="fullsize: keep the written release")
    p.add_argument("--quants", nargs="+", default=["bf16", "int4"], choices=["bf16", "int8", "int4"],
                   help="fullsize: how to load it, one process each")
    p.add_argument("--max-new-tokens", type=int, default=8, help="fullsize: tokens to generate")
    p.add_argument("--requests", type=positive_int, default=1000, help="serve: requests to send in all")
    p.add_argument("--clients", type=positive_int, default=8, help="serve: concurrent clients")
    p.add_argument("--max-tokens", type=positive_int, default=8, help="serve: max_tokens of each request")
    p.add_argument("--max-queue", type=positive_int, default=None,
                   help="serve: the server's --max-queue (default: twice --clients, so none is refused)")
    p.add_argument("--encoder", default=None,
                   help="probe: a registered image encoder to probe alone (weights: --image-encoder), not --model's")
    p.add_argument("--scenes", type=positive_int, default=None,
                   help="probe: training scenes (default 3000); described: held-out scenes (default 100); "
                   "batches: scenes of the synthetic world (default 2000)")
    p.add_argument("--test-scenes", type=positive_int, default=1000, help="probe: held-out scenes per renderer")
    p.add_argument("--renderers", nargs="+", default=["train"], choices=["train", "alt", "classic"],
                   help="probe: renderers of the held-out scenes; the probe trains on the first")
    p.add_argument("--pool", default="linear", choices=["linear", "attention", "mean"],
                   help="probe: how the probe reads the tokens (see mm.probe.AttributeProbe)")
    p.add_argument("--probe-steps", type=positive_int, default=600, help="probe: optimizer steps")
    p.add_argument("--clips", type=positive_int, default=2000, help="probe-video: training clips")
    p.add_argument("--test-clips", type=positive_int, default=500, help="probe-video: held-out clips")
    p.add_argument("--seed", type=int, default=0, help="probe, probe-video, described: seed of the scenes or clips (and the probe)")
    p.add_argument("--chat-tokens", type=positive_int, default=32, help="chat: max_new_tokens of every turn")
    p.add_argument("--threads", type=positive_int, default=None,
                   help="chat: torch threads (default: torch's; 1 gives steadier figures on a busy machine)")
    p.add_argument("--data", default=None, help="batches: training data as `mm train --data` reads it "
                   "(default: a fresh synthetic world of --scenes scenes, with sounds and clips in the recipe's shares)")
    p.add_argument("--window", type=positive_int, default=50, help="batches: batches per length-sorted window")
    p.add_argument("--features", default=None, help="batches: a feature cache to reuse, e.g. a recipe run's "
                   "features/ (default: a temporary one, built first)")
    add_model_args(p)
    args = p.parse_args(argv)
    if args.name == "chat":
        return _chat(p, args)
    if args.name == "probe":
        return _probe(p, args)
    if args.name == "probe-video":
        return _probe_video(p, args)
    if args.name == "described":
        return _described(p, args)
    if args.name == "batches":
        return _batches(p, args)
    if args.name == "serve":  # starts `mm serve` in a subprocess; this process loads no model
        from mm.bench_serve import bench_serve

        result = bench_serve(args.requests, args.clients, args.max_tokens, model=args.model,
                             max_queue=args.max_queue)
        result = {"bench": args.name, "model": args.model, "machine": machine(), **result}
        print(json.dumps(result) if args.json else json.dumps(result, indent=2))
        return 0 if result["status_5xx"] == 0 else 1
    if args.name == "fullsize":  # writes its own checkpoint and loads it in child processes
        from mm.bench_fullsize import bench_fullsize

        if args.out is not None and not Path(args.out).is_dir():
            p.error(f"--out {args.out}: not a folder")
        result = bench_fullsize(args.out, keep=args.keep, quants=tuple(args.quants),
                                max_new_tokens=args.max_new_tokens)
        result = {"bench": args.name, "machine": machine(), **result}
        print(json.dumps(result, ensure_ascii=False) if args.json else json.dumps(result, indent=2, ensure_ascii=False))
        return 0
    if args.name == "qformer":  # needs no model: it builds both Q-Formers itself
        if min(args.batch, args.tokens, args.repeats) < 1:
            p.error("--batch, --tokens and --repeats must be >= 1")
        result = bench_qformer(args.batch, args.tokens, args.repeats, tiny=args.tiny)
        result = {"bench": args.name, "machine": machine(), **result}
        print(json.dumps(result) if args.json else json.dumps(result, indent=2))
        return 0
    chat = load_model(args)
    if args.name == "caption":
        batch_size = 16 if args.batch_size is None else args.batch_size
        if args.items < 1 or batch_size < 1:
            p.error("--items and --batch-size must be >= 1")
        result = bench_caption(chat, args.items, batch_size)
    else:
        if min(args.lengths) <= 0 or args.pair_seconds <= 0:
            p.error("lengths must be positive")
        result = bench_compare(chat, tuple(args.lengths), args.pair_seconds, describe=not args.no_describe)
    result = {"bench": args.name, "model": args.model, "machine": machine(), **result}
    if args.json:
        print(json.dumps(result))
    else:
        print(json.dumps(result, indent=2))
    return 0


def _probe(p: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    from mm.bench import machine
    from mm.probe import probe_encoder

    if args.encoder is not None:  # a tower alone: no model, no LLM to load
        from encoders import create_encoder, list_encoders

        if args.encoder not in list_encoders("image"):
            p.error(f"--encoder {args.encoder}: not a registered image encoder ({', '.join(list_encoders('image'))})")
        encoder = create_encoder(args.encoder)
        if args.image_encoder is not None:
            encoder.load_weights(args.image_encoder)
        name = args.encoder
    else:
        chat = load_model(args)
        if "image" not in chat.model.encoders:
            p.error(f"--model {args.model}: the model has no image encoder")
        encoder = chat.model.encoders["image"]
        name = chat.model.config.image_encoder.name
    try:
        result = probe_encoder(encoder, n_train=args.scenes or 3000, n_test=args.test_scenes, seed=args.seed,
                               renderers=tuple(args.renderers), pool=args.pool, steps=args.probe_steps)
    except ValueError as e:  # e.g. a renderer this checkout lacks
        p.error(str(e))
    result = {"bench": "probe", "model": None if args.encoder else args.model, "encoder": name,
              "weights": args.image_encoder, "machine": machine(), **result}
    print(json.dumps(result) if args.json else json.dumps(result, indent=2))
    return 0


def _probe_video(p: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    from mm.bench import machine
    from mm.probe_video import probe_clips

    chat = load_model(args)
    if "video" not in chat.model.config.modalities:
        p.error(f"--model {args.model}: the model has no video input")
    result = probe_clips(chat.model, n_train=args.clips, n_test=args.test_clips, seed=args.seed, pool=args.pool,
                         steps=args.probe_steps)
    result = {"bench": "probe-video", "model": args.model, "machine": machine(), **result}
    print(json.dumps(result) if args.json else json.dumps(result, indent=2))
    return 0


def _described(p: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    import tempfile

    from mm.bench import machine
    from mm.described import described_vs_seen
    from mm.synth import write_split

    chat = load_model(args)
    if "image" not in chat.model.config.modalities:
        p.error(f"--model {args.model}: the model has no image input")
    scenes = args.scenes or 100
    with tempfile.TemporaryDirectory() as tmp:
        manifest = write_split(Path(tmp) / "world", "test", scenes, 0, args.seed)
        result = described_vs_seen(chat, manifest, batch_size=16 if args.batch_size is None else args.batch_size)
    result = {"bench": "described", "model": args.model, "seed": args.seed, "machine": machine(), **result}
    print(json.dumps(result, ensure_ascii=False) if args.json else json.dumps(result, indent=2, ensure_ascii=False))
    return 0


def _batches(p: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    import tempfile

    from mm.bench import machine
    from mm.errors import InputError
    from mm.synth import write_split
    from mm.train.bench_batches import bench_batches
    from mm.train.sources import read_source

    batch_size = 64 if args.batch_size is None else args.batch_size
    if batch_size < 1 or args.repeats < 1 or args.window < 2:
        p.error("--batch-size and --repeats must be >= 1, --window >= 2")
    chat = load_model(args)
    with tempfile.TemporaryDirectory() as tmp:
        if args.data is None:
            n = args.scenes or 2000
            manifest = write_split(Path(tmp) / "world", "train", n, n * 2 // 5, args.seed, n_videos=n // 5,
                                   n_pairs=n * 3 // 40)
        else:
            manifest = args.data
        try:
            records = list(read_source(str(manifest)))
            features = Path(args.features) if args.features else Path(tmp) / "features"
            result = bench_batches(chat, records, features, window=args.window, batch_size=batch_size,
                                   steps=args.repeats)
        except (InputError, ValueError) as e:
            p.error(str(e))
    result = {"bench": "batches", "model": args.model, "data": args.data, "machine": machine(), **result}
    print(json.dumps(result) if args.json else json.dumps(result, indent=2))
    return 0


def _chat(p: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    import torch

    from mm.bench import machine
    from mm.bench_chat import bench_chat

    if args.repeats < 1:
        p.error("--repeats must be >= 1")
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    chat = load_model(args)
    result = bench_chat(chat, repeats=args.repeats, max_new_tokens=args.chat_tokens)
    result = {"bench": "chat", "model": args.model, "machine": machine(), **result}
    print(json.dumps(result, ensure_ascii=False) if args.json else json.dumps(result, indent=2, ensure_ascii=False))
    return 0 if result["identical_answers"] else 1
