"""Convert a ChatGLM2-6B / ChatGLM3-6B remote-code checkpoint into transformers' native GLM (run once).

Examples:
  mm convert chatglm3 ~/models/chatglm3-6b ~/models/chatglm3-6b-glm
  mm convert chatglm2 ~/models/chatglm2-6b ~/models/chatglm2-6b-glm --dtype bf16

DST then holds config.json (GlmForCausalLM), safetensors shards and a fast tokenizer; it loads with
transformers.AutoModelForCausalLM / AutoTokenizer.from_pretrained(DST) and no remote code, and is what
the chat model takes as --llm DST (mm.load(..., llm=DST)).
"""

from __future__ import annotations

from mm.cli.common import parser


def main(argv: list[str]) -> int:
    p = parser("convert", __doc__)
    p.add_argument("format", choices=["chatglm2", "chatglm3"], help="which release SRC is")
    p.add_argument("src", help="the checkpoint directory (config.json, pytorch_model*.bin, tokenizer.model)")
    p.add_argument("dst", help="the directory to write (absent or empty unless --force)")
    p.add_argument("--dtype", default="auto", choices=["auto", "fp32", "fp16", "bf16"],
                   help="weight precision to write (default: as stored, fp16 for THUDM's releases)")
    p.add_argument("--max-shard-size", default="5GB", help="largest safetensors shard (default: 5GB)")
    p.add_argument("--force", action="store_true", help="write into a DST that is not empty")
    args = p.parse_args(argv)

    from mm.convert.chatglm import convert_chatglm
    from mm.device import resolve_dtype

    dtype = None if args.dtype == "auto" else resolve_dtype(args.dtype)
    out = convert_chatglm(args.src, args.dst, version=args.format, dtype=dtype,
                          max_shard_size=args.max_shard_size, force=args.force)
    print(f"wrote {out} (load it with --llm {out})")
    return 0
