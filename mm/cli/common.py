"""Arguments shared by the subcommands: model selection and generation settings."""

from __future__ import annotations

import argparse
import sys
from typing import Any


def parser(prog: str, doc: str | None) -> argparse.ArgumentParser:
    text = (doc or "").strip()
    first, _, rest = text.partition("\n")
    return argparse.ArgumentParser(prog=f"mm {prog}", description=first, epilog=rest.strip() or None,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)


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
    g.add_argument("--max-new-tokens", type=int, default=256)
    g.add_argument("--temperature", type=float, default=0.0, help="0 = greedy (default)")
    g.add_argument("--top-p", type=float, default=1.0)
    g.add_argument("--top-k", type=int, default=0)
    g.add_argument("--repetition-penalty", type=float, default=1.0)
    g.add_argument("--seed", type=int, default=None, help="seed for sampling")


def generation_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "max_new_tokens": args.max_new_tokens, "temperature": args.temperature, "top_p": args.top_p,
        "top_k": args.top_k, "repetition_penalty": args.repetition_penalty, "seed": args.seed,
    }


def load_model(args: argparse.Namespace):
    import mm

    return mm.load(args.model, device=args.device, dtype=args.dtype, checkpoint=args.checkpoint,
                   tokenizer=args.tokenizer, llm=args.llm,
                   image_encoder=args.image_encoder, audio_encoder=args.audio_encoder, bridge=args.bridge,
                   trust_remote_code=args.trust_remote_code, quant=args.quant)


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
