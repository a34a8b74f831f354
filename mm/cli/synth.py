"""Generate the synthetic world: images, sounds, captions and dialogues with known answers.

Writes OUT/SPLIT/images/*.png, OUT/SPLIT/audio/*.wav and OUT/SPLIT.jsonl. Splits draw from disjoint
seed streams, so validation and test never repeat a training item.

Examples:
  mm synth --out data/world --split train --images 20000 --sounds 8000
  mm synth --out data/world --split test --images 1000 --sounds 500
"""

from __future__ import annotations

import time

from mm.cli.common import parser


def main(argv: list[str]) -> int:
    from mm.synth import SPLITS, write_split

    p = parser("synth", __doc__)
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--split", choices=list(SPLITS), default="train")
    p.add_argument("--images", type=int, default=1000, help="number of scenes")
    p.add_argument("--sounds", type=int, default=500, help="number of sound clips")
    p.add_argument("--seed", type=int, default=0, help="world seed (the split picks its own stream from it)")
    p.add_argument("--workers", type=int, default=2)
    args = p.parse_args(argv)
    if args.images < 0 or args.sounds < 0:
        p.error("--images and --sounds must be >= 0")
    t0 = time.perf_counter()
    manifest = write_split(args.out, args.split, args.images, args.sounds, args.seed, args.workers)
    print(f"wrote {manifest} ({args.images} images, {args.sounds} sounds) in {time.perf_counter() - t0:.1f} s")
    return 0
