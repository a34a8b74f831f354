"""Evaluate a model on held-out synthetic questions: accuracy per question type, language and follow-up.

Examples:
  mm eval --model mm-tiny                          # a fresh test split (seeds training never sees)
  mm eval --model runs/tiny/stage2-instruct/model --data world/test.jsonl --json
"""

from __future__ import annotations

import json
import tempfile

from mm.cli.common import (
    add_limit_args,
    add_model_args,
    load_model,
    non_negative_int,
    parser,
    positive_int,
    seed_int,
)


def main(argv: list[str]) -> int:
    from mm.evaluate import evaluate, format_report
    from mm.synth import write_split

    p = parser("eval", __doc__)
    p.add_argument("--data", default=None, help="a synthetic-world manifest (default: generate a test split)")
    p.add_argument("--images", type=non_negative_int, default=300, help="scenes in a generated test split")
    p.add_argument("--sounds", type=non_negative_int, default=300, help="sounds in a generated test split")
    p.add_argument("--videos", type=non_negative_int, default=200, help="clips in a generated test split (video models)")
    p.add_argument("--pairs", type=non_negative_int, default=100, help="clip pairs in a generated test split (video models)")
    p.add_argument("--seed", type=seed_int, default=0, help="world seed of a generated test split")
    p.add_argument("--limit", type=positive_int, default=None, help="at most this many items of each kind")
    p.add_argument("--batch-size", type=positive_int, default=32)
    p.add_argument("--no-captions", action="store_true", help="skip caption scoring")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.add_argument("--details", default=None, help="write every question and answer to this JSONL file")
    add_model_args(p)
    add_limit_args(p)
    args = p.parse_args(argv)
    chat = load_model(args)
    with tempfile.TemporaryDirectory() as tmp:
        video = "video" in chat.config.modalities
        data = args.data or write_split(tmp, "test", args.images, args.sounds, args.seed,
                                        n_videos=args.videos if video else 0, n_pairs=args.pairs if video else 0)
        report = evaluate(chat, data, limit=args.limit, batch_size=args.batch_size, captions=not args.no_captions)
    summary = report.summary()
    if args.details:
        with open(args.details, "w", encoding="utf-8") as f:
            for row in report.rows + report.captions:
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
    print(json.dumps(summary, ensure_ascii=False) if args.json else format_report(summary))
    return 0
