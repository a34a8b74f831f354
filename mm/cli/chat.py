"""Ask the model about images, sounds and clips, streaming the answer; without a question, chat interactively.

Examples:
  mm chat --image shapes.png "What colour is the circle?"
  mm chat --image a.png --image b.png --audio beep.wav "Which picture matches the sound?"
  mm chat --video clip.mp4 "Which way does the shape move?"
  mm chat                      # interactive: /image PATH, /audio PATH, /video PATH, /clear, /exit

Interactive commands:
  /image PATH   attach an image to the conversation (kept for every following question)
  /audio PATH   attach a sound
  /video PATH   attach a video clip (its frames and its sound)
  /clear        forget the conversation and the attached media
  /exit         leave (Ctrl-D works too)
"""

from __future__ import annotations

import sys
from pathlib import Path

from mm.cli.common import (
    add_generation_args,
    add_limit_args,
    add_model_args,
    generation_kwargs,
    load_model,
    parser,
    recent_history,
    stream_to,
)

PROMPT = "you> "


def _readline_history() -> None:
    try:
        import readline
    except ImportError:  # Windows without pyreadline
        return
    path = Path.home() / ".mm_history"
    try:
        readline.read_history_file(path)
    except OSError:
        pass
    import atexit

    atexit.register(lambda: _save_history(readline, path))


def _save_history(readline, path: Path) -> None:
    try:
        readline.write_history_file(path)
    except OSError:
        pass


def interactive(model, images: list[str], audios: list[str], gen: dict, videos: list[str] | None = None) -> int:
    from mm.errors import InputError

    if sys.stdin.isatty():
        _readline_history()
        print("mm chat: ask about images, sounds and clips. /image PATH, /audio PATH, /video PATH, /clear, /exit")
    history: list = []
    videos = list(videos or [])
    attach = {"/image": images, "/audio": audios, "/video": videos}
    while True:
        try:
            line = input(PROMPT if sys.stdin.isatty() else "").strip()
        except EOFError:
            print()
            return 0
        if not line:
            continue
        command, _, arg = line.partition(" ")
        if command in ("/exit", "/quit"):
            return 0
        if command == "/clear":
            history = []
            for target in attach.values():
                target.clear()
            print("(conversation cleared)")
            continue
        if command in attach:
            target = attach[command]
            path = Path(arg.strip()).expanduser()
            if not arg.strip() or not path.is_file():
                print(f"no such file: {arg.strip() or '(none given)'}", file=sys.stderr)
                continue
            target.append(str(path))
            print(f"(attached {command[1:]} {path.name})")
            continue
        if command.startswith("/"):
            print(f"unknown command {command}; use /image PATH, /audio PATH, /video PATH, /clear, /exit",
                  file=sys.stderr)
            continue
        try:
            sys.stdout.write("mm> ")
            answer = stream_to(model.stream_chat(line, image=images or None, audio=audios or None,
                                                 video=videos or None,
                                                 history=recent_history(history, model.limits), **gen))
        except InputError as e:
            print(f"\nerror: {e}", file=sys.stderr)
            continue
        history.append((line, answer))


def main(argv: list[str]) -> int:
    p = parser("chat", __doc__)
    p.add_argument("query", nargs="?", help="the question (omit for an interactive chat)")
    p.add_argument("--image", action="append", default=[], help="image file (repeatable)")
    p.add_argument("--audio", action="append", default=[], help="audio file (repeatable)")
    p.add_argument("--video", action="append", default=[], help="video file (repeatable)")
    add_model_args(p)
    add_generation_args(p)
    add_limit_args(p)
    args = p.parse_args(argv)
    model = load_model(args)
    if args.query is None:
        return interactive(model, list(args.image), list(args.audio), generation_kwargs(args), list(args.video))
    stream_to(model.stream_chat(args.query, image=args.image or None, audio=args.audio or None,
                                video=args.video or None, **generation_kwargs(args)))
    return 0
