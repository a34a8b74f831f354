import pytest
import torch

import mm
from mm.config import apply_overrides, list_presets, preset
from mm.errors import InputError
from mm.llm import build_llm, chatglm_v1_parameters
from tests.conftest import prompt_tokens


def test_presets_exist():
    assert {"mm-tiny", "visualglm-6b", "mm-6b"} <= set(list_presets())


def test_chatglm3_shape_has_6_24e9_parameters():
    with torch.device("meta"):
        llm = build_llm(preset("mm-6b").llm)
    n = sum(p.numel() for p in llm.parameters())
    assert abs(n - 6.24e9) / 6.24e9 < 0.01, n


def test_chatglm_v1_count_matches_the_published_6_2e9():
    assert abs(chatglm_v1_parameters(preset("visualglm-6b").llm) - 6.2e9) / 6.2e9 < 0.01


def test_flat_override_sets_every_sub_config_and_dotted_sets_one():
    cfg = apply_overrides(preset("mm-tiny"), {"num_queries": 4, "audio_qformer.num_layers": 1})
    assert cfg.image_qformer.num_queries == cfg.audio_qformer.num_queries == 4
    assert (cfg.image_qformer.num_layers, cfg.audio_qformer.num_layers) == (2, 1)


def test_unknown_override_lists_known_fields():
    with pytest.raises(ValueError, match="num_queries"):
        apply_overrides(preset("mm-tiny"), {"num_querys": 4})


def test_load_with_override_changes_the_slot_count():
    small = mm.load("mm-tiny", num_queries=4)
    assert small.config.image_qformer.num_queries == 4
    picture = torch.zeros(8, 8, 3, dtype=torch.uint8).numpy()
    # The picture fills 4 slots of the prompt now, not the shipped 8 (the weights still load and answer).
    assert prompt_tokens(small, "hi", image=picture) - prompt_tokens(small, "hi") == 4
    r, history = small.chat("hi", image=picture, max_new_tokens=2)
    assert history == [("hi", r)]


def test_unknown_preset_and_full_scale_without_weights_are_clear_errors():
    with pytest.raises(InputError, match="presets: mm-6b, mm-tiny, visualglm-6b"):
        mm.load("mm-huge")
    with pytest.raises(InputError, match="llm=PATH"):
        mm.load("visualglm-6b")
    with pytest.raises(InputError, match="no such model directory"):
        mm.load("./does/not/exist")
