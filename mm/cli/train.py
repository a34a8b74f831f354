"""Train: the full mm-tiny recipe, or one stage of a bridge on your own data.

Examples:
  mm train --recipe mm-tiny --out runs/tiny              # reproduce the embedded default (resumable)
  mm train --recipe mm-tiny --out runs/tiny --ship mm/weights/mm-tiny
  mm train --stage bridge --model mm-6b --llm /models/glm --data coco.json --out runs/b1
  mm train --stage instruct --model runs/b1/model --data llava.json --out runs/b2 --merge-lora
"""

from __future__ import annotations

from mm.cli.common import (
    add_limit_args,
    add_model_args,
    load_model,
    non_negative_int,
    parser,
    positive_float,
    positive_int,
)


def main(argv: list[str]) -> int:
    p = parser("train", __doc__)
    p.add_argument("--out", required=True, help="run directory (checkpoints, metrics, final model)")
    p.add_argument("--recipe", choices=["mm-tiny", "mm-tiny-smoke"], help="train a whole model from nothing")
    p.add_argument("--ship", default=None, help="also save the final model in fp16 here (recipe only)")
    p.add_argument("--stage", choices=["bridge", "instruct"], help="train one stage on --data")
    p.add_argument("--data", default=None, help="training data: .jsonl, LLaVA/COCO .json, AudioCaps/Clotho .csv, "
                   "or comma-separated WebDataset .tar shards")
    p.add_argument("--steps", type=positive_int, default=1000)
    p.add_argument("--batch-size", type=positive_int, default=16)
    p.add_argument("--grad-accum", type=positive_int, default=1)
    p.add_argument("--lr", type=positive_float, default=1e-4)
    p.add_argument("--mixed-precision", choices=["auto", "no", "bf16", "fp16"], default="auto",
                   help="autocast; auto (default): bf16 where the hardware computes it natively (CUDA, CPUs "
                        "with AVX512-BF16 or AMX), else fp32")
    p.add_argument("--bucket", type=non_negative_int, default=0, metavar="N",
                   help="batches of similar lengths: sort each window of N batches by example length before "
                        "cutting it (less padding, faster steps); 0 = plain shuffled batches")
    p.add_argument("--lora-r", type=positive_int, default=8)
    p.add_argument("--merge-lora", action="store_true", help="fold LoRA adapters into the saved LLM")
    p.add_argument("--full-llm", action="store_true",
                   help="instruct stage: train every LLM weight instead of LoRA (small LLMs only)")
    p.add_argument("--no-resume", action="store_true", help="ignore an existing checkpoint in --out")
    add_model_args(p)
    add_limit_args(p)
    args = p.parse_args(argv)
    if bool(args.recipe) == bool(args.stage):
        p.error("give exactly one of --recipe or --stage")
    if args.recipe:
        from mm.train.recipe import TinyRecipe, run_tiny, summarize

        recipe = TinyRecipe.smoke() if args.recipe == "mm-tiny-smoke" else TinyRecipe()
        final = run_tiny(args.out, recipe, ship=args.ship)
        report = summarize(args.out)
        print(f"model: {final}\ntotal: {report['total_s'] / 60:.1f} min")
        for stage, seconds in report["timings_s"].items():
            print(f"  {stage:16s} {seconds:8.1f} s")
        return 0
    if not args.data:
        p.error("--stage needs --data")
    if args.full_llm and args.stage != "instruct":
        p.error("--full-llm applies to --stage instruct")
    from pathlib import Path

    from mm.checkpoint import save_model
    from mm.train.sources import read_source
    from mm.train.stages import build_caches, train_bridge
    from mm.train.trainer import TrainConfig

    chat = load_model(args)
    records = list(read_source(args.data))
    out = Path(args.out)
    caches = build_caches(chat, records, out / "features")
    cfg = TrainConfig(steps=args.steps, batch_size=args.batch_size, grad_accum=args.grad_accum, lr=args.lr,
                      mixed_precision=args.mixed_precision, bucket=args.bucket)
    summary = train_bridge(chat, records, caches, cfg, out, mode="caption" if args.stage == "bridge" else "dialogue",
                           lora=args.stage == "instruct" and not args.full_llm, full_llm=args.full_llm,
                           lora_r=args.lora_r, resume=not args.no_resume)
    # Adapters of this instruct stage are kept apart unless asked to merge; any others are merged. At full
    # scale the encoders and LLM stay in the user's own checkpoints and only the bridge (and lora/) is
    # saved, unless the LLM's own weights changed (adapters merged, --full-llm): then the whole model is.
    apart = args.stage == "instruct" and not args.merge_lora and not args.full_llm
    llm_changed = args.stage == "instruct" and not apart
    save_model(out / "model", chat.model, chat.tokenizer, bridge_only=chat.config.full_scale and not llm_changed,
               lora="apart" if apart else "merge")
    print(f"saved {out / 'model'}; skipped examples: {summary['skipped_examples']}, "
          f"unreadable media: {summary['unreadable_media']}")
    return 0
