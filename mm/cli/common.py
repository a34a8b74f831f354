"""Arguments shared by the subcommands: model selection, generation settings, work limits, and the argument
types that refuse bad values with one line (`mm CMD: error: argument --flag: ...`, exit 2)."""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable
from typing import Any, NoReturn

from mm.limits import DEFAULT_LIMITS, Limits

SEED_LIMIT = 2**64  # seeds are unsigned 64-bit, as torch.Generator.manual_seed takes them


class Parser(argparse.ArgumentParser):
    """argparse whose errors are one line, as every other `mm` error: `mm CMD: error: MESSAGE`, exit 2.

    (Stock argparse prints the whole usage first, a dozen wrapped lines for a command with many flags.)
    """

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def parser(prog: str, doc: str | None) -> argparse.ArgumentParser:
    text = (doc or "").strip()
    first, _, rest = text.partition("\n")
    return Parser(prog=f"mm {prog}", description=first, epilog=rest.strip() or None,
                  formatter_class=argparse.RawDescriptionHelpFormatter)


# Argument types. Each raises ArgumentTypeError, which the parser reports as
# "mm CMD: error: argument --flag: MESSAGE", with exit status 2.

def finite_float(text: str) -> float:
    """A float that is not NaN or infinite (`float("nan")` parses, and would reach the sampler)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    return value


def non_negative_float(text: str) -> float:
    value = finite_float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be >= 0")
    return value


def positive_float(text: str) -> float:
    value = finite_float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be > 0")
    return value


def probability(text: str) -> float:
    """A float in (0, 1], as top-p takes."""
    value = finite_float(text)
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be in (0, 1]")
    return value


def fraction(text: str) -> float:
    """A float in [0, 1]."""
    value = finite_float(text)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be between 0 and 1")
    return value


def int_range(low: int, high: int | None = None) -> Callable[[str], int]:
    """An integer type with `low <= value` (and `value < high` when given)."""

    def parse(text: str) -> int:
        try:
            value = int(text)  # Python refuses over 4300 digits, so a 5000-digit number is cheap to reject
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text[:40]!r} is not a whole number") from None
        if value < low or (high is not None and value >= high):
            bounds = f">= {low}" if high is None else f"between {low} and {high - 1}"
            raise argparse.ArgumentTypeError(f"{text[:40]!r} must be {bounds}")
        return value

    parse.__name__ = f"int >= {low}" if high is None else f"int in [{low}, {high})"
    return parse


positive_int = int_range(1)
non_negative_int = int_range(0)
seed_int = int_range(0, SEED_LIMIT)
port_number = int_range(1, 65536)


def add_model_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("model")
    g.add_argument("--model", default="mm-tiny", help="preset name or saved model directory (default: mm-tiny)")
    g.add_argument("--device", default=None, help="cpu, cuda, cuda:1, mps (default: best available)")
    g.add_argument("--dtype", default=None, help="fp32, bf16, fp16 (default: bf16 on CUDA, else fp32)")
    g.add_argument("--checkpoint", default=None,
                   help="a whole VisualGLM-6B release: the SAT folder, its mp_rank_00_model_states.pt, "
                   "or the HF port folder")
    g.add_argument("--tokenizer", default=None,
                   help="folder with ChatGLM-6B's ice_text.model, for a SAT release")
    g.add_argument("--llm", default=None, help="local LLM checkpoint directory (full-scale presets)")
    g.add_argument("--image-encoder", default=None, help="local image encoder checkpoint")
    g.add_argument("--audio-encoder", default=None, help="local audio encoder checkpoint")
    g.add_argument("--bridge", default=None, help="local bridge checkpoint (ours, BLIP-2 or VisualGLM)")
    g.add_argument("--trust-remote-code", action="store_true", help="allow the LLM checkpoint's own code")
    g.add_argument("--quant", choices=["int8", "int4"], default=None,
                   help="quantize the LLM with bitsandbytes (encoders and bridge stay in --dtype)")


def add_generation_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("generation")
    g.add_argument("--max-new-tokens", type=positive_int, default=256, help="longest answer (default: %(default)s)")
    g.add_argument("--temperature", type=non_negative_float, default=0.0, help="0 = greedy (default)")
    g.add_argument("--top-p", type=probability, default=1.0, help="in (0, 1] (default: 1)")
    g.add_argument("--top-k", type=non_negative_int, default=0, help="0 = no top-k cut (default)")
    g.add_argument("--repetition-penalty", type=positive_float, default=1.0, help="> 0 (default: 1)")
    g.add_argument("--seed", type=seed_int, default=None, help="seed for sampling, 0 to 2**64 - 1")


def generation_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "max_new_tokens": args.max_new_tokens, "temperature": args.temperature, "top_p": args.top_p,
        "top_k": args.top_k, "repetition_penalty": args.repetition_penalty, "seed": args.seed,
    }


def add_limit_args(p: argparse.ArgumentParser) -> None:
    """The `--max-*` flags: how much work one input may cause (`mm.limits.Limits`, same defaults everywhere)."""
    d = DEFAULT_LIMITS
    g = p.add_argument_group("limits", "Inputs past a limit are refused with a message naming it.")
    g.add_argument("--max-file-mb", type=positive_float, default=d.max_file_bytes / 2**20, metavar="MB",
                   help="bytes read from one media file (default: %(default)g MB)")
    g.add_argument("--max-image-pixels", type=positive_int, default=d.max_image_pixels, metavar="N",
                   help="width x height of an image or a video frame (default: %(default)s)")
    g.add_argument("--max-audio-seconds", type=positive_float, default=d.max_audio_seconds, metavar="S",
                   help="length of a sound or a clip's sound track (default: %(default)g)")
    g.add_argument("--max-video-seconds", type=positive_float, default=d.max_video_seconds, metavar="S",
                   help="length of a clip (default: %(default)g)")
    g.add_argument("--max-history-turns", type=positive_int, default=d.max_history_turns, metavar="N",
                   help="earlier question/answer pairs in one conversation (default: %(default)s)")
    g.add_argument("--max-history-kb", type=positive_float, default=d.max_history_bytes / 2**10, metavar="KB",
                   help="UTF-8 size of those pairs together (default: %(default)g KB)")
    g.add_argument("--max-clip-segments", type=positive_int, default=d.max_clip_segments, metavar="N",
                   help="segments of one clip in a comparison (default: %(default)s)")
    g.add_argument("--deadline-seconds", type=positive_float, default=d.deadline_seconds, metavar="S",
                   help="one request: decoding, encoding and generation together (default: %(default)g)")


def limits_from_args(args: argparse.Namespace) -> Limits:
    """The `Limits` the `add_limit_args` flags ask for; `InputError` (from `Limits`) when one is out of range."""
    return Limits(
        max_file_bytes=max(1, round(args.max_file_mb * 2**20)),
        max_image_pixels=args.max_image_pixels,
        max_audio_seconds=args.max_audio_seconds,
        max_video_seconds=args.max_video_seconds,
        max_history_turns=args.max_history_turns,
        max_history_bytes=max(1, round(args.max_history_kb * 2**10)),
        max_clip_segments=args.max_clip_segments,
        deadline_seconds=args.deadline_seconds,
    )


def load_model(args: argparse.Namespace):
    """`mm.load` with the model flags, and the limit flags when the command has them (`add_limit_args`)."""
    import mm

    limits = limits_from_args(args) if hasattr(args, "max_file_mb") else None
    return mm.load(args.model, limits=limits, device=args.device, dtype=args.dtype, checkpoint=args.checkpoint,
                   tokenizer=args.tokenizer, llm=args.llm,
                   image_encoder=args.image_encoder, audio_encoder=args.audio_encoder, bridge=args.bridge,
                   trust_remote_code=args.trust_remote_code, quant=args.quant)


def recent_history(history: list, limits: Limits) -> list:
    """The newest turns of a conversation that fit `limits.max_history_turns` and `max_history_bytes`.

    `mm chat` and the app keep every turn; the model is given what fits, so a long conversation goes on
    instead of being refused.
    """
    kept: list = []
    size = 0
    for q, a in reversed(history[-limits.max_history_turns:]):
        size += len(str(q).encode("utf-8", "surrogatepass")) + len(str(a).encode("utf-8", "surrogatepass"))
        if size > limits.max_history_bytes:
            break
        kept.append((q, a))
    return kept[::-1]


def stream_to(stream, out=None) -> str:
    """Print a stream_chat generator's new text as it arrives; return the final response."""
    out = out or sys.stdout  # looked up per call, so redirected output (tests, pipes) is honoured
    shown = ""
    for partial, _ in stream:
        if partial.startswith(shown):
            out.write(partial[len(shown):])
        else:  # the final text is stripped; re-sync rather than print garbage
            out.write("\r" + partial)
        out.flush()
        shown = partial
    out.write("\n")
    return shown
