"""Compare two video clips and write an HTML report: the Python API behind `mm compare`.

    python demos/compare_clips.py A.mp4 B.mp4 --out report/
    python demos/compare_clips.py --demo --out report/     # the "fast shape vs slow shape" demo

`--demo` renders two clips from the synthetic world that differ only in speed (the same shape moving
the same way, once slowly and once quickly), compares them with the shipped mm-tiny and opens nothing:
look at report/report.html.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

import mm
from mm.compare_report import save_report


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
    p = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    p.add_argument("clips", nargs="*", help="two clips A B")
    p.add_argument("--demo", action="store_true", help="compare two synthetic clips that differ in speed")
    p.add_argument("--change", default="speed", help="with --demo: what differs (motion, speed, colour, ...)")
    p.add_argument("--out", default="compare_report")
    p.add_argument("--model", default="mm-tiny")
    p.add_argument("--segment", type=float, default=2.0, help="segment length in seconds")
    args = p.parse_args(argv)
    out = Path(args.out)
    if args.demo:
        a, b = demo_clips(out, args.change)
    elif len(args.clips) == 2:
        a, b = Path(args.clips[0]), Path(args.clips[1])
    else:
        p.error("give two clips, or --demo")
    model = mm.load(args.model)
    try:
        result = mm.compare_clips(a, b, model=model, segment_seconds=args.segment)
    except mm.InputError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    page = save_report(result, out)
    print(f"visual score {result.visual_score:.3f}, audio score {result.audio_score}")
    print(f"A: {result.descriptions['a']}\nB: {result.descriptions['b']}\ndifference: {result.difference}")
    print(f"report: {page}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
