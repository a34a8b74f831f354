"""demos/compare_clips.py as a user runs it: the synthetic demo, the model and limit flags, clear errors."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[2]
DEMO = [sys.executable, str(ROOT / "demos" / "compare_clips.py")]


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*DEMO, *args], capture_output=True, text=True, cwd=ROOT, timeout=600)


def test_the_demo_compares_two_rendered_clips_and_writes_a_report(tmp_path):
    r = run("--demo", "--change", "colour", "--out", str(tmp_path / "rep"))
    assert r.returncode == 0, r.stderr[-2000:]
    assert "visual score" in r.stdout and "difference:" in r.stdout
    assert (tmp_path / "rep/report.html").is_file() and (tmp_path / "rep/clip_a.mp4").is_file()
    # The limit flags reach the model: a 0.5-second limit refuses the 2-second clips, in one line.
    r = run(str(tmp_path / "rep/clip_a.mp4"), str(tmp_path / "rep/clip_b.mp4"), "--out", str(tmp_path / "x"),
            "--max-video-seconds", "0.5")
    assert r.returncode == 1 and r.stderr.startswith("error: ") and "Traceback" not in r.stderr
    assert "the limit is 0.5 s" in r.stderr and "--max-video-seconds" in r.stderr, r.stderr


def test_bad_arguments_are_one_line_errors(tmp_path):
    r = run(str(tmp_path / "none.mp4"), str(tmp_path / "none2.mp4"), "--out", str(tmp_path / "x"))
    assert r.returncode == 1 and "Traceback" not in r.stderr and "none.mp4" in r.stderr
    r = run("--demo", "--change", "smell")
    assert r.returncode == 2 and "invalid choice: 'smell'" in r.stderr and len(r.stderr.splitlines()) == 1
    r = run("only-one.mp4")
    assert r.returncode == 2 and "give two clips A B, or --demo" in r.stderr
    (tmp_path / "file").write_text("x")
    r = run("--demo", "--out", str(tmp_path / "file"))
    assert r.returncode == 1 and "is not a directory" in r.stderr
