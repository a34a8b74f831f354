"""Show a preset's architecture: parameters and weight memory per component, built without weights.

Examples:
  mm info visualglm-6b
  mm info --list
"""

from __future__ import annotations

import json

from mm.cli.common import parser


def main(argv: list[str]) -> int:
    from mm.config import MMConfig, list_presets, preset
    from mm.info import components, format_table

    p = parser("info", __doc__)
    p.add_argument("model", nargs="?", default="mm-tiny", help="preset name or saved model directory")
    p.add_argument("--list", action="store_true", help="list the presets")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = p.parse_args(argv)
    if args.list:
        print("\n".join(list_presets()))
        return 0
    from pathlib import Path

    cfg = MMConfig.load(Path(args.model) / "config.json") if Path(args.model).is_dir() else preset(args.model)
    if args.json:
        print(json.dumps({"name": cfg.name, "components": [c.__dict__ for c in components(cfg)]}))
    else:
        print(format_table(cfg))
    return 0
