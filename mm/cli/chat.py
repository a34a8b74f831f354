"""Ask the model about images and sounds, streaming the answer.

Examples:
  mm chat --image shapes.png "What colour is the circle?"
  mm chat --image a.png --image b.png --audio beep.wav "Which picture matches the sound?"
"""

from __future__ import annotations

from mm.cli.common import (
    add_generation_args,
    add_model_args,
    generation_kwargs,
    load_model,
    parser,
    stream_to,
)


def main(argv: list[str]) -> int:
    p = parser("chat", __doc__)
    p.add_argument("query", help="the question")
    p.add_argument("--image", action="append", default=[], help="image file (repeatable)")
    p.add_argument("--audio", action="append", default=[], help="audio file (repeatable)")
    add_model_args(p)
    add_generation_args(p)
    args = p.parse_args(argv)
    model = load_model(args)
    stream_to(model.stream_chat(args.query, image=args.image or None, audio=args.audio or None,
                                **generation_kwargs(args)))
    return 0
