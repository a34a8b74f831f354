"""What the shipped `mm-tiny` answers about the example assets (demos/assets), greedy decoding.

The one table of the shipped weights' answers: every test that expects an exact answer from them reads it
here, so a retrain that changes an answer changes this file and nothing else. `tests/mm/test_shipped_model.py`
asks every entry; the server, Gradio, browser, captioning, CLI and comparison tests pick the entries they need.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

ASSETS = Path(__file__).parents[1] / "demos" / "assets"  # demos.app.ASSETS, without importing Gradio


@dataclass(frozen=True)
class Golden:
    question: str
    answer: str  # the exact text `chat` returns
    image: str | None = None  # file names under demos/assets
    audio: str | None = None
    video: str | tuple[str, ...] | None = None  # two clips: the comparison's "what is the difference?"
    follows: str | None = None  # the entry asked just before, in the same conversation (its history)
    truth: str | None = None  # the right answer, where the shipped model's is wrong (the README says how often)

    def media(self) -> dict[str, Any]:
        """The entry's media as keyword arguments of `MMChat.chat` (absolute paths)."""
        out: dict[str, Any] = {}
        for kind in ("image", "audio", "video"):
            name = getattr(self, kind)
            if isinstance(name, tuple):
                out[kind] = [ASSETS / n for n in name]
            elif name is not None:
                out[kind] = ASSETS / name
        return out

    def path(self) -> Path:
        """The entry's one media file."""
        (value,) = self.media().values()
        assert isinstance(value, Path), self
        return value

    def history(self) -> list[tuple[str, str]]:
        """The turns before this one, oldest first, as the model answered them."""
        turns: list[tuple[str, str]] = []
        key = self.follows
        while key is not None:
            turns.insert(0, (GOLDEN[key].question, GOLDEN[key].answer))
            key = GOLDEN[key].follows
        return turns


GOLDEN: dict[str, Golden] = {
    "three_shapes": Golden("How many shapes are there?", "There are three shapes.", image="three_shapes.png"),
    "shapes_digit_zh": Golden("图中有几个形状？", "有两个形状。", image="shapes_digit.png"),
    "red_circle": Golden("What colour is the circle?", "It is red.", image="red_circle.png"),
    "red_circle_shape": Golden("What shape is it?", "It is a circle.", image="red_circle.png"),
    "red_circle_where": Golden("Where is the circle?", "It is at the centre.", image="red_circle.png"),
    "red_circle_no_star": Golden("Is there a star?", "No, there is no star.", image="red_circle.png"),
    "red_circle_small": Golden("Is the circle small?", "No, it is large.", image="red_circle.png"),
    "star_yellow": Golden("Is the star yellow?", "Yes, it is yellow.", image="shapes_digit.png"),
    "three_beeps": Golden("How many beeps are there?", "There are two beeps.", audio="three_beeps.wav",
                          truth="There are three beeps."),
    "three_beeps_pitch_zh": Golden("音调是低、中还是高？", "音调是高。", audio="three_beeps.wav"),
    "three_beeps_pitch": Golden("And is the pitch low, medium or high?", "The pitch is high.",
                                audio="three_beeps.wav", follows="three_beeps"),
    "rising_sweep": Golden("Is the sweep rising or falling?", "It is rising.", audio="rising_sweep.wav"),
    "rising_sweep_zh": Golden("扫频音是上升还是下降？", "是上升的。", audio="rising_sweep.wav"),
    "clip_motion": Golden("Which way does the circle move?", "It moves to the left.", video="red_circle_left_fast.mp4"),
    "clip_when": Golden("When does the beep sound?", "It sounds at the start.", video="red_circle_left_fast.mp4"),
    # `mm.compare_clips(left, right).difference` asks this of the two clips together.
    "compare_left_right": Golden(
        "What is the difference between the two clips?",
        "In the first clip the shape is red; in the second it is red.",
        video=("red_circle_left_fast.mp4", "red_circle_right_fast.mp4"),
        truth="In the first clip the shape moves to the left; in the second it moves to the right."),
}
