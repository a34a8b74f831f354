"""The `mm` command: one console script, one module per subcommand, each a `main(argv) -> int`."""

from __future__ import annotations

import importlib
import logging
import sys

# name -> module under mm.cli; each module's docstring is its help text.
COMMANDS = {
    "chat": "mm.cli.chat",
    "caption": "mm.cli.caption",
    "compare": "mm.cli.compare",
    "demo": "mm.cli.demo",
    "info": "mm.cli.info",
    "synth": "mm.cli.synth",
    "train": "mm.cli.train",
    "eval": "mm.cli.eval",
    "serve": "mm.cli.serve",
    "bench": "mm.cli.bench",
    "convert": "mm.cli.convert",
}

USAGE = """usage: mm COMMAND [ARGS...]

A vision-audio-language chat model. Commands:
{commands}

`mm COMMAND --help` explains each one. `--model` takes a preset name or a saved directory (default mm-tiny).
"""


def _summary(module_name: str) -> str:
    doc = importlib.import_module(module_name).__doc__ or ""
    return doc.strip().splitlines()[0] if doc.strip() else ""


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        width = max(map(len, COMMANDS))
        lines = "\n".join(f"  {name.ljust(width)}  {_summary(mod)}" for name, mod in COMMANDS.items())
        print(USAGE.format(commands=lines))
        return 0 if argv else 2
    if argv[0] in ("-V", "--version"):
        from mm import __version__

        print(f"mm {__version__}")
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"mm: unknown command {name!r}; commands: {', '.join(COMMANDS)}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    from mm.errors import InputError

    try:
        return importlib.import_module(COMMANDS[name]).main(rest)
    except InputError as e:
        print(f"mm {name}: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def run() -> None:
    sys.exit(main())


if __name__ == "__main__":
    run()
