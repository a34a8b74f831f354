"""The `mm` command: one console script, one module per subcommand, each a `main(argv) -> int`."""

from __future__ import annotations

import importlib
import logging
import os
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
`mm --debug COMMAND ...` (or MM_DEBUG=1) shows the traceback of an error and debug logs.
"""


def _os_error(e: OSError) -> str:
    """`[Errno 28] No space left on device: 'x'` -> `x: No space left on device`."""
    what = e.strerror or str(e)
    names = [str(n) for n in (e.filename, e.filename2) if n is not None]
    return f"{' -> '.join(names)}: {what}" if names else what


def _quiet_broken_pipe() -> None:
    """The reader went away (`mm caption ... | head`): point stdout at devnull so the exit flush is silent."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # stdout has no file descriptor (tests capture it)
        pass


def _summary(module_name: str) -> str:
    doc = importlib.import_module(module_name).__doc__ or ""
    return doc.strip().splitlines()[0] if doc.strip() else ""


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = os.environ.get("MM_DEBUG", "") not in ("", "0")
    if argv[:1] == ["--debug"]:
        debug, argv = True, argv[1:]
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
    if debug:
        logging.getLogger("mm").setLevel(logging.DEBUG)
    from mm.errors import InputError

    # Every error is one line on stderr and a non-zero exit; the traceback only with --debug / MM_DEBUG=1.
    # Bad flag values never get here: the parser (mm.cli.common.Parser) prints one line itself, exit 2.
    try:
        code = importlib.import_module(COMMANDS[name]).main(rest)
        sys.stdout.flush()  # here, so a reader that went away is caught below rather than at exit
        return code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        _quiet_broken_pipe()
        return 141  # what a shell reports for a process ended by SIGPIPE
    except InputError as e:  # bad input: a file, a value, a preset the user named
        error, message = e, str(e)
    except OSError as e:  # the environment: a full disk, a missing folder, no permission
        error, message = e, _os_error(e)
    except Exception as e:  # anything else is our bug
        error, message = e, (f"internal error ({type(e).__name__}: {str(e)[:300]}); this is a bug in mm: please "
                             "report it with the traceback that `mm --debug` or MM_DEBUG=1 shows")
    if debug:
        import traceback

        traceback.print_exception(error)
    message = " ".join(message.split())  # one line, whatever the exception held
    print(f"mm {name}: error: {message}", file=sys.stderr)
    return 1


def run() -> None:
    sys.exit(main())


if __name__ == "__main__":
    run()
