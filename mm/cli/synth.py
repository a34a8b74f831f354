"""Generate the synthetic world: images, sounds, clips, captions and dialogues with known answers.

Writes OUT/SPLIT/images/*.png, OUT/SPLIT/audio/*.wav, OUT/SPLIT/video/*.mp4 (a moving shape and a beep),
OUT/SPLIT/pairs/*-{a,b}.mp4 (clips differing in one known attribute) and OUT/SPLIT.jsonl. Splits draw
from disjoint seed streams, so validation and test never repeat a training item.

--phrasing picks the question wordings: "seen" (the training grammar), "unseen" (templates and synonyms
kept out of training; not for the train split) or "canonical" (one fixed wording per type). --rendering
picks the pictures and sounds: "train" (the varied training renderers), "alt" (a second renderer and
synthesiser for evaluation only; images and sounds) or "classic" (the first world, with canonical
phrasing: what the shipped mm-tiny was trained on). Every record names both under "world".

Examples:
  mm synth --out data/world --split train --images 20000 --sounds 8000 --videos 4000 --pairs 1500
  mm synth --out data/world --split test --images 1000 --sounds 500 --videos 200 --pairs 100
  mm synth --out data/alt --split test --images 300 --sounds 300 --rendering alt
  mm synth --out data/classic --split test --images 300 --sounds 300 --phrasing canonical --rendering classic
"""

from __future__ import annotations

import time

from mm.cli.common import non_negative_int, parser, positive_int, seed_int


def main(argv: list[str]) -> int:
    from mm.synth import PHRASINGS, RENDERINGS, SPLITS, check_world, write_split

    p = parser("synth", __doc__)
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--split", choices=list(SPLITS), default="train")
    p.add_argument("--images", type=non_negative_int, default=1000, help="number of scenes")
    p.add_argument("--sounds", type=non_negative_int, default=500, help="number of sound clips")
    p.add_argument("--videos", type=non_negative_int, default=0, help="number of clips (H.264 + AAC mp4)")
    p.add_argument("--pairs", type=non_negative_int, default=0, help="number of clip pairs for comparison questions")
    p.add_argument("--seed", type=seed_int, default=0, help="world seed (the split picks its own stream from it)")
    p.add_argument("--phrasing", choices=PHRASINGS, default="seen", help="question wordings (default: seen)")
    p.add_argument("--rendering", choices=RENDERINGS, default="train", help="pictures and sounds (default: train)")
    p.add_argument("--workers", type=positive_int, default=2)
    args = p.parse_args(argv)
    try:
        check_world(args.split, args.phrasing, args.rendering, args.videos + args.pairs)
    except ValueError as e:
        p.error(str(e))
    t0 = time.perf_counter()
    manifest = write_split(args.out, args.split, args.images, args.sounds, args.seed, args.workers,
                           n_videos=args.videos, n_pairs=args.pairs, phrasing=args.phrasing,
                           rendering=args.rendering)
    print(f"wrote {manifest} ({args.images} images, {args.sounds} sounds, {args.videos} clips, {args.pairs} clip "
          f"pairs) in {time.perf_counter() - t0:.1f} s")
    return 0
