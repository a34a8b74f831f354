"""One table of media file extensions, read by chat, captioning, the training readers and video I/O."""

import ast
from pathlib import Path

import pytest

from encoders.media_types import (
    AUDIO_EXTENSIONS,
    IMAGE_EXTENSIONS,
    MEDIA_EXTENSIONS,
    VIDEO_EXTENSIONS,
    modality_of_path,
)

# The three tables this one replaced, as they were (mm/chat.py, mm/train/sources.py, encoders/video_io.py):
# nothing any of them accepted may be refused now, and none of them may move to another kind.
OLD_TABLES = {
    "mm.chat": {"image": {".png", ".jpg", ".jpeg", ".gif", ".bmp", ".webp", ".tif", ".tiff"},
                "audio": {".wav", ".flac", ".mp3", ".ogg", ".opus", ".m4a", ".aac"},
                "video": {".mp4", ".mkv", ".webm", ".mov", ".avi", ".m4v", ".mpg", ".mpeg", ".ts"}},
    "mm.train.sources": {"image": {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif"},
                         "audio": {".wav", ".flac", ".mp3", ".ogg", ".opus", ".m4a"},
                         "video": {".mp4", ".mkv", ".webm", ".mov", ".avi"}},
    "encoders.video_io": {"video": {".mp4", ".mkv", ".webm", ".mov", ".avi", ".m4v", ".mpg", ".mpeg", ".ts"}},
}


@pytest.mark.parametrize("where", sorted(OLD_TABLES))
def test_the_table_covers_every_old_table(where):
    for modality, old in OLD_TABLES[where].items():
        assert old <= MEDIA_EXTENSIONS[modality], (where, modality, old - MEDIA_EXTENSIONS[modality])
        assert all(modality_of_path(f"x{ext}") == modality for ext in old)


def test_kinds_do_not_overlap_and_the_table_is_read_only():
    assert set(MEDIA_EXTENSIONS) == {"image", "audio", "video"}
    assert not (IMAGE_EXTENSIONS & AUDIO_EXTENSIONS or IMAGE_EXTENSIONS & VIDEO_EXTENSIONS
                or AUDIO_EXTENSIONS & VIDEO_EXTENSIONS)
    assert all(e.startswith(".") and e == e.lower() for exts in MEDIA_EXTENSIONS.values() for e in exts)
    with pytest.raises(TypeError):
        MEDIA_EXTENSIONS["text"] = frozenset({".txt"})  # type: ignore[index]


@pytest.mark.parametrize("path,modality", [
    ("a/b/Photo.JPG", "image"), ("clip.MP4", "video"), ("song.m4a", "audio"), ("x.tar.gz", None),
    ("notes.txt", None), ("no_extension", None), (".png", None),  # a dot file has no extension
])
def test_modality_of_path(path, modality):
    assert modality_of_path(path) == modality


def test_no_other_module_keeps_its_own_table():
    """A second table is how the three old ones came to disagree: any set of media extensions in the
    packages outside encoders/media_types.py is one too many."""
    root = Path(__file__).parents[2]
    known = set().union(*MEDIA_EXTENSIONS.values())
    found = []
    for package in ("encoders", "bridge", "mm", "demos"):
        for f in sorted((root / package).rglob("*.py")):
            if f.name == "media_types.py" and f.parent.name == "encoders":
                continue
            for node in ast.walk(ast.parse(f.read_text(encoding="utf-8"))):
                if isinstance(node, (ast.Set, ast.List, ast.Tuple)):
                    exts = {e.value for e in node.elts if isinstance(e, ast.Constant) and isinstance(e.value, str)}
                    if len(exts & known) >= 2:
                        found.append(f"{f.relative_to(root)}:{node.lineno}")
    assert not found, found
