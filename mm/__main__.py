"""`python -m mm ...` (used by `accelerate launch -m mm caption ...`)."""

from mm.cli.main import run

run()
