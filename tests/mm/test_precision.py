"""`mixed_precision="auto"`: bf16 autocast only where the hardware computes bf16 natively."""

import pytest
import torch
from torch import nn

from mm.train import precision
from mm.train.precision import resolve_precision
from mm.train.trainer import TrainConfig, train


def _cpu(monkeypatch, *, avx512_bf16=False, amx=False):
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: avx512_bf16)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx)


@pytest.mark.parametrize("avx512_bf16,amx,expected", [(False, False, "no"), (True, False, "bf16"),
                                                      (False, True, "bf16")])
def test_auto_on_a_cpu_follows_its_bf16_hardware(monkeypatch, avx512_bf16, amx, expected):
    _cpu(monkeypatch, avx512_bf16=avx512_bf16, amx=amx)
    assert resolve_precision("auto", torch.device("cpu")) == expected


def test_auto_on_cuda_asks_the_device(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert resolve_precision("auto", torch.device("cuda")) == "bf16"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert resolve_precision("auto", torch.device("cuda")) == "no"
    assert resolve_precision("auto", torch.device("mps")) == "no"


def test_a_torch_without_the_probes_counts_as_no_native_bf16(monkeypatch):
    monkeypatch.delattr(torch.cpu, "_is_avx512_bf16_supported")
    monkeypatch.delattr(torch.cpu, "_is_amx_tile_supported")
    assert not precision.cpu_has_native_bf16()


def test_explicit_modes_are_kept_and_unknown_ones_refused(monkeypatch):
    _cpu(monkeypatch)
    for mode in ("no", "bf16", "fp16"):
        assert resolve_precision(mode, torch.device("cpu")) == mode
    with pytest.raises(ValueError, match="mixed_precision must be one of auto, no, bf16, fp16: 'fp32'"):
        resolve_precision("fp32", torch.device("cpu"))
    with pytest.raises(ValueError, match="mixed_precision must be one of"):
        TrainConfig(mixed_precision="fp32")


class _Regression(nn.Module):
    """y = 2x; records whether each forward ran under CPU bf16 autocast."""

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(4, 1)
        self.autocast: list[bool] = []

    def forward(self, batch):
        self.autocast.append(torch.is_autocast_enabled("cpu"))
        x, y = batch
        return ((self.lin(x).squeeze(-1) - y) ** 2).mean()


class _Pairs:
    def __init__(self, n=32):
        g = torch.Generator().manual_seed(0)
        self.x = torch.randn(n, 4, generator=g)

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return self.x[i], 2 * self.x[i].sum()


class _Batch(tuple):
    def to(self, device):
        return _Batch(t.to(device) for t in self)


def _collate(items):
    xs, ys = zip(*items)
    return _Batch((torch.stack(xs), torch.stack(ys)))


@pytest.mark.parametrize("native,expected", [(False, "no"), (True, "bf16")])
def test_training_under_auto_autocasts_only_on_native_bf16(monkeypatch, tmp_path, native, expected):
    _cpu(monkeypatch, avx512_bf16=native)
    model = _Regression()
    cfg = TrainConfig(steps=3, batch_size=8, warmup=1, log_every=1, ckpt_every=3, mixed_precision="auto")
    summary = train(model, _Pairs(), _collate, cfg, tmp_path / "run")
    assert summary["precision"] == expected
    assert summary["config"]["mixed_precision"] == "auto"
    assert model.autocast == [native] * 3
