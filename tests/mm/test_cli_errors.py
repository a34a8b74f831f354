"""Every `mm` error a user can provoke is one line on stderr and a non-zero exit, never a traceback.

Most cases call `mm.cli.main.main` in-process (one torch import for the file); the last ones run the
installed console script, as a user does.
"""

import os
import subprocess
from pathlib import Path

import pytest
import torch

from mm.cli.main import main
from tests.conftest import make_image
from tests.mm.test_cli import MM

ASSETS = Path(__file__).parents[2] / "demos" / "assets"
CLIPS = [str(ASSETS / "red_circle_left_fast.mp4"), str(ASSETS / "red_circle_left_slow.mp4")]


def run_mm(capsys, *args: str) -> tuple[int, str]:
    """Exit status and stderr of `mm ARGS...` (argparse's SystemExit included)."""
    try:
        code = main(list(args))
    except SystemExit as e:
        code = e.code
    return code, capsys.readouterr().err


def assert_one_line(err: str, command: str, *words: str) -> None:
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"mm {command}: error: "), err
    for w in words:
        assert w in lines[0], err


@pytest.fixture
def image(tmp_path):
    path = tmp_path / "x.png"
    make_image().save(path)
    return str(path)


@pytest.mark.parametrize("flag,value,words", [
    ("--temperature", "nan", ("--temperature", "'nan' is not a finite number")),
    ("--temperature", "inf", ("--temperature", "not a finite number")),
    ("--temperature", "1e400", ("--temperature", "not a finite number")),
    ("--temperature", "-1", ("--temperature", "must be >= 0")),
    ("--top-p", "nan", ("--top-p", "not a finite number")),
    ("--top-p", "1.5", ("--top-p", "(0, 1]")),
    ("--repetition-penalty", "-inf", ("--repetition-penalty", "not a finite number")),
    ("--seed", str(2**70), ("--seed", "must be between 0 and")),
    ("--seed", "9" * 5000, ("--seed", "is not a whole number")),
    ("--seed", "-1", ("--seed",)),
    ("--max-new-tokens", "0", ("--max-new-tokens", "must be >= 1")),
    ("--max-image-pixels", "0", ("--max-image-pixels", "must be >= 1")),
    ("--max-file-mb", "nan", ("--max-file-mb", "not a finite number")),
    ("--max-audio-seconds", "-5", ("--max-audio-seconds", "must be > 0")),
])
def test_bad_flag_values_are_one_line_usage_errors(capsys, image, flag, value, words):
    code, err = run_mm(capsys, "chat", "--image", image, "hi", f"{flag}={value}")
    assert code == 2
    assert_one_line(err, "chat", *words)


@pytest.mark.parametrize("value", ["0", "-3", "two"])
def test_caption_batch_size_must_be_positive(capsys, tmp_path, image, value):
    code, err = run_mm(capsys, "caption", image, "--out", str(tmp_path / "c.jsonl"), "--batch-size", value)
    assert code == 2
    assert_one_line(err, "caption", "--batch-size")
    assert not (tmp_path / "c.jsonl").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
@pytest.mark.parametrize("device", ["cuda", "cuda:1"])
def test_a_device_the_machine_lacks_is_one_line(capsys, image, device):
    code, err = run_mm(capsys, "chat", "--image", image, "hi", "--device", device)
    assert code == 1
    assert_one_line(err, "chat", f"device {device!r}", "no CUDA GPU")


@pytest.mark.parametrize("args,words", [
    (("--device", "gpu7"), ("unknown device 'gpu7'",)),
    (("--dtype", "int3"), ("unknown dtype 'int3'",)),
])
def test_unknown_device_or_dtype_is_one_line(capsys, image, args, words):
    code, err = run_mm(capsys, "chat", "--image", image, "hi", *args)
    assert code == 1
    assert_one_line(err, "chat", *words)


def test_info_with_an_unknown_dtype_is_one_line(capsys):
    code, err = run_mm(capsys, "info", "--quant", "int4", "--dtype", "int3")
    assert code == 1
    assert_one_line(err, "info", "unknown dtype 'int3'")


def test_limit_flags_reach_the_model(capsys, tmp_path):
    big = tmp_path / "big.png"
    make_image(size=(200, 100)).save(big)
    code, err = run_mm(capsys, "chat", "--image", str(big), "hi", "--max-image-pixels", "10000", "--max-new-tokens", "2")
    assert code == 1
    assert_one_line(err, "chat", "big.png", "10000")


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_caption_out_on_a_full_disk_is_one_line(capsys, image):
    code, err = run_mm(capsys, "caption", image, "--out", "/dev/full", "--quiet", "--max-new-tokens", "2")
    assert code == 1
    assert_one_line(err, "caption", "No space left on device")


def test_caption_out_under_a_file_is_one_line(capsys, tmp_path, image):
    (tmp_path / "notes.txt").write_text("a file, not a folder")
    code, err = run_mm(capsys, "caption", image, "--out", str(tmp_path / "notes.txt" / "c.jsonl"), "--quiet",
                       "--max-new-tokens", "2")
    assert code == 1
    assert_one_line(err, "caption", "notes.txt: is a file")


def test_compare_refuses_to_replace_a_file_named_as_out(capsys, tmp_path):
    existing = tmp_path / "notes.txt"
    existing.write_text("keep me")
    code, err = run_mm(capsys, "compare", *CLIPS, "--out", str(existing), "--no-describe")
    assert code == 1
    assert_one_line(err, "compare", "notes.txt", "exists and is not a directory")
    assert existing.read_text() == "keep me"


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
@pytest.mark.parametrize("out,words", [
    ("/dev/full", ("exists and is not a directory",)),
    ("/dev/full/report", ("Not a directory",)),  # found only when the report is written
])
def test_compare_out_that_cannot_be_written_is_one_line(capsys, out, words):
    code, err = run_mm(capsys, "compare", *CLIPS, "--out", out, "--no-describe")
    assert code == 1
    assert_one_line(err, "compare", *words)


@pytest.mark.parametrize("content,words", [
    (b"a,b\n\xff\xfe.mp4,b.mp4\n", ("pairs.csv", "not UTF-8 text", "0xff")),
    (b"a,b\nonly-a.mp4\n", ("pairs.csv", "row 1 needs both a and b")),
    (b"x,y\n1,2\n", ("pairs.csv", "columns a,b")),
])
def test_compare_bad_pairs_csv_is_one_line(capsys, tmp_path, content, words):
    pairs = tmp_path / "pairs.csv"
    pairs.write_bytes(content)
    code, err = run_mm(capsys, "compare", "--pairs", str(pairs), "--out", str(tmp_path / "out"), "--no-describe")
    assert code == 1
    assert_one_line(err, "compare", *words)


def test_compare_pairs_csv_with_a_byte_order_mark(capsys, tmp_path):
    (tmp_path / "pairs.csv").write_bytes("\ufeffa,b,name\n".encode() + f"{CLIPS[0]},{CLIPS[1]},fast\n".encode())
    code, err = run_mm(capsys, "compare", "--pairs", str(tmp_path / "pairs.csv"), "--out", str(tmp_path / "out"),
                   "--no-describe")
    assert code == 0, err
    assert (tmp_path / "out" / "fast" / "report.json").is_file()


def test_a_bug_is_one_line_and_the_traceback_only_with_debug(capsys, monkeypatch):
    import mm.cli.info

    def broken(argv):
        raise RuntimeError("boom")

    monkeypatch.setattr(mm.cli.info, "main", broken)
    monkeypatch.delenv("MM_DEBUG", raising=False)
    code, err = run_mm(capsys, "info")
    assert code == 1
    assert_one_line(err, "info", "internal error (RuntimeError: boom)", "bug", "MM_DEBUG=1")
    code, err = run_mm(capsys, "--debug", "info")
    assert code == 1 and "Traceback" in err and "RuntimeError: boom" in err
    assert err.strip().splitlines()[-1].startswith("mm info: error: internal error")
    monkeypatch.setenv("MM_DEBUG", "1")
    code, err = run_mm(capsys, "info")
    assert code == 1 and "Traceback" in err


# -- the installed console script ------------------------------------------------------------------


def test_console_script_bad_value_is_one_line(tmp_path):
    out = subprocess.run([MM, "chat", "--temperature", "nan", "hi"], capture_output=True, text=True, timeout=300)
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr.splitlines() == ["mm chat: error: argument --temperature: 'nan' is not a finite number "
                                       "(see mm chat --help)"]


def test_interactive_chat_goes_on_past_the_history_limit():
    """The conversation keeps its newest turns within --max-history-turns instead of refusing the next question."""
    out = subprocess.run([MM, "chat", "--max-new-tokens", "2", "--max-history-turns", "1"],
                         input="Hello?\nAnd again?\nOnce more?\n/exit\n", capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.count("mm> ") == 3 and "error" not in out.stderr


def test_console_script_reader_going_away_is_quiet():
    """`mm info --list | head -0`: the reader closed the pipe before mm wrote; no BrokenPipeError noise."""
    proc = subprocess.Popen([MM, "info", "--list"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=300) == 141
    assert err == ""
