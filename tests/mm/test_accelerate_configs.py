"""The shipped accelerate configs (DDP, DeepSpeed ZeRO-2/3, FSDP) parse with accelerate's own loader."""

from importlib import resources

import pytest
from accelerate.commands.config.config_args import load_config_from_file

CONFIGS = {"ddp.yaml": "MULTI_GPU", "deepspeed_zero2.yaml": "DEEPSPEED", "deepspeed_zero3.yaml": "DEEPSPEED",
           "fsdp.yaml": "FSDP"}


@pytest.mark.parametrize("name,kind", CONFIGS.items())
def test_config_loads(name, kind):
    path = resources.files("mm.configs") / "accelerate" / name
    cfg = load_config_from_file(str(path))
    assert cfg.distributed_type.value == kind
    assert cfg.mixed_precision == "bf16"
    if name.startswith("deepspeed"):
        assert cfg.deepspeed_config["zero_stage"] == int(name[-6])
