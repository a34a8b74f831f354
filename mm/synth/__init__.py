"""The synthetic world: shapes, digits and sounds with known truth, bilingual captions and dialogues."""

from mm.synth.world import SPLITS, image_record, pair_record, sound_record, video_record, write_split

__all__ = ["SPLITS", "image_record", "pair_record", "sound_record", "video_record", "write_split"]
