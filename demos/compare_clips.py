"""Compare two video clips and write an HTML report: the Python API behind `mm compare`.

    python demos/compare_clips.py A.mp4 B.mp4 --out report/
    python demos/compare_clips.py --demo --out report/     # the "fast shape vs slow shape" demo
    python demos/compare_clips.py A.mp4 B.mp4 --max-video-seconds 120 --max-clip-segments 64

`--demo` renders two clips from the synthetic world that differ only in speed (the same shape moving
the same way, once slowly and once quickly), compares them with the shipped mm-tiny and opens nothing:
look at report/report.html. The model and work-limit flags are those of `mm compare`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

import mm
from mm.compare_report import save_report

CHANGES = ("motion", "speed", "colour", "shape", "pitch", "when")


def demo_clips(out: Path, change: str = "speed", seed: int = 3) -> tuple[Path, Path]:
    """Two synthetic clips differing only in `change` (motion, speed, colour, shape, pitch or when)."""
    from encoders.video_io import write_video
    from mm.synth.video import FPS, render_frames, sample_clip, soundtrack, variant

    rng = np.random.default_rng(seed)
    a = sample_clip(rng)
    b = variant(a, change, rng)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, clip in (("a", a), ("b", b)):
        path = out / f"clip_{name}.mp4"
        write_video(path, render_frames(clip), FPS, audio=soundtrack(clip, np.random.default_rng(seed)))
        paths.append(path)
    return paths[0], paths[1]


def main(argv: list[str] | None = None) -> int:
    from mm.cli.common import Parser, add_limit_args, add_model_args, load_model, positive_float

    first, _, rest = __doc__.strip().partition("\n")
    p = Parser(prog="python demos/compare_clips.py", description=first, epilog=rest.strip(),
               formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("clips", nargs="*", help="two clips A B")
    p.add_argument("--demo", action="store_true", help="compare two synthetic clips that differ in speed")
    p.add_argument("--change", default="speed", choices=CHANGES, help="with --demo: what differs")
    p.add_argument("--out", default="compare_report")
    p.add_argument("--segment", type=positive_float, default=2.0, help="segment length in seconds")
    add_model_args(p)  # --model, --llm, --device, ... as `mm compare` has them
    add_limit_args(p)  # --max-video-seconds, --max-clip-segments, ...: the model applies them to both clips
    args = p.parse_args(argv)
    out = Path(args.out)
    if args.demo == bool(args.clips) or (args.clips and len(args.clips) != 2):
        p.error("give two clips A B, or --demo")
    try:
        if out.exists() and not out.is_dir():
            raise mm.InputError(f"{out}: exists and is not a directory; --out names the report's folder")
        a, b = demo_clips(out, args.change) if args.demo else (Path(args.clips[0]), Path(args.clips[1]))
        model = load_model(args)
        result = mm.compare_clips(a, b, model=model, segment_seconds=args.segment)
    except mm.InputError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    page = save_report(result, out)
    audio = "n/a" if result.audio_score is None else f"{result.audio_score:.3f}"
    print(f"visual score {result.visual_score:.3f}, audio score {audio}")
    print(f"A: {result.descriptions['a']}\nB: {result.descriptions['b']}\ndifference: {result.difference}")
    print(f"report: {page}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
