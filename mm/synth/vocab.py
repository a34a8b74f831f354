"""Names of everything in the synthetic world, in English and Chinese."""

from __future__ import annotations

# name -> (Chinese, RGB). No black or white: the background is white and digits are drawn in dark grey.
COLOURS: dict[str, tuple[str, tuple[int, int, int]]] = {
    "red": ("红色", (220, 40, 40)),
    "green": ("绿色", (40, 170, 60)),
    "blue": ("蓝色", (40, 80, 220)),
    "yellow": ("黄色", (235, 200, 30)),
    "purple": ("紫色", (140, 60, 190)),
    "orange": ("橙色", (245, 140, 30)),
}
SHAPES: dict[str, str] = {"circle": "圆形", "square": "正方形", "triangle": "三角形", "star": "星形"}
SIZES: dict[str, str] = {"small": "小", "large": "大"}
# 3x3 grid cells, row-major: name -> Chinese.
POSITIONS: dict[str, str] = {
    "top left": "左上方", "top": "上方", "top right": "右上方",
    "left": "左侧", "centre": "中间", "right": "右侧",
    "bottom left": "左下方", "bottom": "下方", "bottom right": "右下方",
}
NUMBERS_EN = ["zero", "one", "two", "three", "four", "five"]
NUMBERS_ZH = ["零", "一", "两", "三", "四", "五"]

# Sounds.
PITCHES: dict[str, tuple[str, float]] = {"low": ("低", 300.0), "medium": ("中", 600.0), "high": ("高", 1200.0)}
SOUND_KINDS: dict[str, str] = {"tone": "持续的音调", "beeps": "哔声", "sweep": "扫频音", "noise": "噪声"}
DIRECTIONS: dict[str, str] = {"rising": "上升", "falling": "下降"}

# Clips.
MOTIONS: dict[str, str] = {"left": "向左", "right": "向右", "up": "向上", "down": "向下"}
SPEEDS: dict[str, str] = {"slow": "慢", "fast": "快"}
WHEN: dict[str, str] = {"start": "开头", "end": "结尾"}

# Question types by modality: the one place evaluation reads them from. CLASSIC_TYPES are the world's
# original types (what the shipped mm-tiny was trained on); the new image kinds are yes/no questions,
# questions about an object that is not there, relations between two shapes, and filtered counts.
TYPES_BY_MODALITY: dict[str, tuple[str, ...]] = {
    "image": ("colour", "shape", "count", "position", "size", "digit", "yesno", "absent", "relation", "filtered_count"),
    "audio": ("pitch", "beeps", "sweep", "kind"),
    "video": ("motion", "speed", "object", "beep", "when", "difference"),
}
QUESTION_TYPES: tuple[str, ...] = tuple(t for types in TYPES_BY_MODALITY.values() for t in types)
CLASSIC_TYPES: tuple[str, ...] = ("colour", "shape", "count", "position", "size", "digit", "pitch", "beeps", "sweep",
                                  "kind", "motion", "speed", "object", "beep", "when", "difference")
