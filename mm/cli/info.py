"""Show a preset's architecture: parameters and weight memory per component, built without weights.

With --quant, also the weight memory with the LLM quantized by bitsandbytes (encoders and bridge in
--dtype), beside the published figures where there are some.

Examples:
  mm info visualglm-6b
  mm info --model visualglm-6b --quant int4
  mm info --list
"""

from __future__ import annotations

import json

from mm.cli.common import parser


def main(argv: list[str]) -> int:
    from mm.config import MMConfig, list_presets, preset
    from mm.device import resolve_dtype
    from mm.info import components, format_quant, format_table, quant_memory

    p = parser("info", __doc__)
    p.add_argument("model", nargs="?", default="mm-tiny", help="preset name or saved model directory")
    p.add_argument("--model", dest="model_option", default=None, help="the same, as an option")
    p.add_argument("--quant", choices=["int8", "int4"], default=None,
                   help="also show the weight memory with the LLM quantized by bitsandbytes")
    p.add_argument("--dtype", default="fp16", help="dtype of the unquantized weights for --quant (default fp16)")
    p.add_argument("--list", action="store_true", help="list the presets")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = p.parse_args(argv)
    if args.list:
        print("\n".join(list_presets()))
        return 0
    from pathlib import Path

    model = args.model_option or args.model
    cfg = MMConfig.load(Path(model) / "config.json") if Path(model).is_dir() else preset(model)
    mem = None
    if args.quant:
        mem = quant_memory(cfg, args.quant, resolve_dtype(args.dtype))
    if args.json:
        out = {"name": cfg.name, "components": [c.__dict__ for c in components(cfg)]}
        if mem is not None:
            out["quant"] = mem.to_dict()
        print(json.dumps(out))
    else:
        print(format_table(cfg))
        if mem is not None:
            print()
            print(format_quant(mem))
    return 0
