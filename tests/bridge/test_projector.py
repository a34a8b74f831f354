import pytest
import torch

from bridge import Projector, ProjectorConfig


@pytest.mark.parametrize("kind", ["linear", "mlp"])
def test_projects_to_llm_width(kind):
    p = Projector(ProjectorConfig(kind, 32, 48))
    assert p(torch.randn(2, 5, 32)).shape == (2, 5, 48)


def test_unknown_kind_is_rejected():
    with pytest.raises(ValueError, match="'conv'"):
        ProjectorConfig("conv")
