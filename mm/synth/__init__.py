"""The synthetic world: shapes, digits and sounds with known truth, bilingual captions and dialogues."""

from mm.synth.world import (
    PHRASINGS,
    RENDERINGS,
    SPLITS,
    check_world,
    image_record,
    pair_record,
    sound_record,
    video_record,
    write_split,
)

__all__ = ["PHRASINGS", "RENDERINGS", "SPLITS", "check_world", "image_record", "pair_record", "sound_record",
           "video_record", "write_split"]
