"""Caption images, sounds and clips in bulk into a JSONL file (one line per item, written as it goes).

Directories are walked recursively and files picked by extension. Each output line holds `path`,
`modality`, `caption` and `error` (unreadable files get an error and no caption; the run goes on).
`--resume` skips what the output file already holds, so an interrupted run loses nothing.

WebDataset shards (*.tar) are captioned sample by sample. Under `accelerate launch` each process takes
its own shards, writes OUT.rank-N.jsonl, and the main process merges the parts into OUT at the end.

Examples:
  mm caption photos/ recordings/ --out captions.jsonl
  mm caption photos/ --out captions.jsonl --resume --batch-size 16 --lang zh
  mm caption clip.mp4 --prompt "What happens in this video?" --out clip.jsonl
  accelerate launch --num_processes 2 -m mm caption shards/*.tar --out captions.jsonl
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from mm.cli.common import (
    add_generation_args,
    add_limit_args,
    add_model_args,
    generation_kwargs,
    load_model,
    parser,
    positive_int,
)

if TYPE_CHECKING:
    from accelerate import PartialState


def _process_state() -> PartialState:
    """This process's rank and the process count under `accelerate launch` (one process without it).

    Captioning needs the ranks only, not a training `Accelerator`; ACCELERATE_USE_CPU (which the Accelerator
    would read) picks gloo on CPU-only machines.
    """
    from accelerate import PartialState
    from accelerate.utils import parse_flag_from_env

    return PartialState(cpu=parse_flag_from_env("ACCELERATE_USE_CPU"))


def main(argv: list[str]) -> int:
    from mm.captioning import caption_files, caption_shards, media_files, merge_parts
    from mm.errors import InputError

    p = parser("caption", __doc__)
    p.add_argument("paths", nargs="+", help="files, directories or WebDataset .tar shards")
    p.add_argument("--out", required=True, help="output JSONL file")
    p.add_argument("--resume", action="store_true", help="skip items already in --out and append")
    p.add_argument("--batch-size", type=positive_int, default=8, help="items generated together (default: 8)")
    p.add_argument("--prompt", default=None, help="request for every item (default: Describe the image/sound/clip.)")
    p.add_argument("--lang", choices=["en", "zh"], default="en", help="language of the default prompt")
    p.add_argument("--no-recursive", action="store_true", help="do not descend into subdirectories")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_model_args(p)
    add_generation_args(p)
    add_limit_args(p)
    p.set_defaults(max_new_tokens=64)
    args = p.parse_args(argv)
    out = Path(args.out)
    if out.is_dir():
        raise InputError(f"{out}: --out must be a file, not a directory")
    blocking = next((d for d in out.parents if d.exists() and not d.is_dir()), None)
    if blocking is not None:
        raise InputError(f"{blocking}: is a file, so --out {out} cannot be written under it")
    shards = [Path(x) for x in args.paths if x.endswith(".tar")]
    others = [x for x in args.paths if not x.endswith(".tar")]
    if shards and others:
        raise InputError("give either WebDataset .tar shards or files/directories, not both")
    for s in shards:
        if not s.is_file():
            raise InputError(f"{s}: no such shard")
    chat = load_model(args)
    gen = {**generation_kwargs(args), "prompt": args.prompt, "lang": args.lang}
    common = {"resume": args.resume, "batch_size": args.batch_size, "progress": not args.quiet, **gen}
    if shards:
        state = _process_state()
        part = out.with_name(f"{out.stem}.rank-{state.process_index}{out.suffix}")
        counts = caption_shards(chat, sorted(shards), part, rank=state.process_index,
                                world_size=state.num_processes, **common)
        state.wait_for_everyone()
        if state.is_main_process:
            parts = [out.with_name(f"{out.stem}.rank-{r}{out.suffix}") for r in range(state.num_processes)]
            lines = merge_parts(parts, out)
            print(f"merged {len(parts)} parts into {out}: {lines} lines", file=sys.stderr)
        print(json.dumps({"rank": state.process_index, **counts}), file=sys.stderr)
        return 0
    files = list(media_files(args.paths, recursive=not args.no_recursive))
    if not files:
        raise InputError(f"no image, audio or video files under {' '.join(args.paths)}")
    counts = caption_files(chat, files, out, **common)
    print(f"{counts['captioned']} captioned, {counts['failed']} failed, {counts['skipped']} already done "
          f"-> {out}", file=sys.stderr)
    return 0
