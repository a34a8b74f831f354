"""Evaluate a model on held-out synthetic questions: accuracy per question type, language and follow-up.

Unless --data names a manifest, three held-out splits are generated from one seed the recipe never
uses and reported side by side: "seen" (the training phrasing and renderers), "unseen-phrasing"
(question templates and synonyms kept out of training) and "unseen-rendering" (a second image renderer
and sound synthesiser, written apart from the training ones; images and sounds only). Also reported:
follow-ups, the Chinese-English gap, the share of questions about absent objects answered as absent,
and caption object recall and precision. --details writes every question and caption with its answer,
then a confusion table per question type (reference key -> the key the answer names).

Examples:
  mm eval --model mm-tiny                          # the three held-out splits
  mm eval --splits seen,unseen-phrasing --images 100 --sounds 100 --json
  mm eval --model runs/tiny/stage2-instruct/model --data world/test.jsonl --details rows.jsonl
"""

from __future__ import annotations

import argparse
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


def _splits(text: str) -> list[str]:
    from mm.evaluate import EVAL_SPLITS

    names = [s.strip() for s in text.split(",") if s.strip()]
    bad = [s for s in names if s not in EVAL_SPLITS]
    if bad or not names:
        raise argparse.ArgumentTypeError(f"unknown split {bad[0] if bad else text!r}; choose from "
                                         f"{', '.join(EVAL_SPLITS)} (comma-separated)")
    return list(dict.fromkeys(names))


def main(argv: list[str]) -> int:
    from mm.eval_report import format_report
    from mm.evaluate import EVAL_SPLITS, HELD_OUT_SEED, evaluate, evaluate_splits, write_eval_splits

    p = parser("eval", __doc__)
    p.add_argument("--data", default=None, help="a synthetic-world manifest (default: generate the held-out splits)")
    p.add_argument("--splits", type=_splits, default=None,
                   help=f"generated splits, comma-separated (default: {','.join(EVAL_SPLITS)})")
    p.add_argument("--images", type=non_negative_int, default=300, help="scenes in each generated split")
    p.add_argument("--sounds", type=non_negative_int, default=300, help="sounds in each generated split")
    p.add_argument("--videos", type=non_negative_int, default=200, help="clips in each generated split with clips (video models)")
    p.add_argument("--pairs", type=non_negative_int, default=100, help="clip pairs in each generated split with clips (video models)")
    p.add_argument("--seed", type=seed_int, default=HELD_OUT_SEED,
                   help=f"world seed of the generated splits (default {HELD_OUT_SEED}; the recipe trains on 0)")
    p.add_argument("--limit", type=positive_int, default=None, help="at most this many items of each kind")
    p.add_argument("--batch-size", type=positive_int, default=32)
    p.add_argument("--no-captions", action="store_true", help="skip caption scoring")
    p.add_argument("--json", action="store_true", help="print every summary and confusion table as JSON")
    p.add_argument("--details", default=None,
                   help="write every question and caption with its answer, then the confusion tables, to this JSONL file")
    add_model_args(p)
    add_limit_args(p)
    args = p.parse_args(argv)
    if args.data and args.splits:
        p.error("--splits chooses generated splits; --data evaluates the one manifest it names")
    chat = load_model(args)
    options = {"limit": args.limit, "batch_size": args.batch_size, "captions": not args.no_captions}
    if args.data:
        report = evaluate(chat, args.data, **options)
    else:
        video = "video" in chat.config.modalities
        with tempfile.TemporaryDirectory() as tmp:
            manifests = write_eval_splits(tmp, args.splits or list(EVAL_SPLITS), args.seed, images=args.images, sounds=args.sounds,
                                          videos=args.videos if video else 0, pairs=args.pairs if video else 0)
            report = evaluate_splits(chat, manifests, **options)
    if args.details:
        with open(args.details, "w", encoding="utf-8") as f:
            for row in report.rows + report.captions:
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
            for split in report.splits:
                for qtype, table in report.confusion(split).items():
                    f.write(json.dumps({"split": split, "type": qtype, "confusion": table}, ensure_ascii=False) + "\n")
    print(json.dumps(report.to_json(), ensure_ascii=False) if args.json else format_report(report.summaries()))
    return 0
