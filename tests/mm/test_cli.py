"""The `mm` command as a user runs it: a real subprocess of the installed console script."""

import shutil
import subprocess
import sys

import pytest

from tests.conftest import make_image

MM = shutil.which("mm") or str(__import__("pathlib").Path(sys.executable).parent / "mm")


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([MM, *args], capture_output=True, text=True, timeout=300)


def test_help_lists_commands_and_each_has_help():
    out = run("--help")
    assert out.returncode == 0 and "chat" in out.stdout and "info" in out.stdout
    for cmd in ("chat", "info"):
        sub = run(cmd, "--help")
        assert sub.returncode == 0 and f"usage: mm {cmd}" in sub.stdout


def test_info_prints_the_component_table():
    out = run("info", "visualglm-6b")
    assert out.returncode == 0, out.stderr
    assert "image Q-Former *" in out.stdout and "105.2M" in out.stdout and "int4 GiB" in out.stdout


def test_chat_runs_end_to_end(tmp_path):
    make_image().save(tmp_path / "x.png")
    out = run("chat", "--image", str(tmp_path / "x.png"), "What colour is the circle?", "--max-new-tokens", "6")
    assert out.returncode == 0, out.stderr
    assert out.stdout.endswith("\n")


@pytest.mark.parametrize("args,message", [
    (("chat", "--image", "missing.png", "hi"), "mm chat: error: missing.png: no such file"),
    (("info", "mm-huge"), "unknown preset 'mm-huge'"),
    (("frobnicate",), "unknown command 'frobnicate'"),
])
def test_errors_are_one_clear_line(args, message):
    out = run(*args)
    assert out.returncode != 0
    assert message in out.stderr and "Traceback" not in out.stderr


def test_interactive_chat_reads_commands_from_stdin(tmp_path):
    make_image().save(tmp_path / "x.png")
    script = f"/image {tmp_path / 'x.png'}\nWhat colour is it?\n/image nope.png\n/frob\nAnd its shape?\n/clear\n/exit\n"
    out = subprocess.run([MM, "chat", "--max-new-tokens", "4"], input=script, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr
    assert "(attached image x.png)" in out.stdout and "(conversation cleared)" in out.stdout
    assert out.stdout.count("mm> ") == 2
    assert "no such file: nope.png" in out.stderr and "unknown command /frob" in out.stderr
