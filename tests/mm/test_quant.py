"""Quantizing the LLM with bitsandbytes (int8, int4 NF4) on CPU: the layers, the memory, the outputs, the
routes in (`quantize_llm`, `load_llm(quant=)`, `mm.load(quant=)`, `mm info --quant`)."""

import copy
import re
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mm.config import LLMConfig
from mm.errors import InputError
from mm.llm import build_llm, load_llm
from mm.quant import bnb_config, estimate_bytes, quantize_llm, quantized_bytes
from tests.conftest import make_image
from tests.mm.test_cli import MM

CFG = LLMConfig(vocab_size=256, hidden_size=64, intermediate_size=128, num_layers=2, num_heads=4, num_kv_heads=2,
                head_dim=16)


@pytest.fixture(scope="module")
def glm():
    torch.manual_seed(0)
    return build_llm(CFG).eval()


@pytest.fixture(scope="module")
def glm_dir(glm, tmp_path_factory):
    from mm.tokenizer import build_tokenizer

    d = tmp_path_factory.mktemp("glm")
    glm.save_pretrained(d)
    build_tokenizer().save_pretrained(d)
    return d


def _ids() -> torch.Tensor:
    return torch.randint(0, CFG.vocab_size, (2, 24), generator=torch.Generator().manual_seed(1))


def _close_to(out: torch.Tensor, ref: torch.Tensor, min_agree: float) -> None:
    out, ref = out.float().flatten(1), ref.float().flatten(1)
    assert F.cosine_similarity(out.flatten(), ref.flatten(), dim=0) > 0.98
    assert (out - ref).norm() / ref.norm() < 0.2
    agree = (out.view(-1, CFG.vocab_size).argmax(-1) == ref.view(-1, CFG.vocab_size).argmax(-1)).float().mean()
    assert agree >= min_agree, agree


@pytest.mark.parametrize("quant,kind,storage,shrink,agree", [
    ("int8", "Linear8bitLt", torch.int8, 3.5, 0.85),
    ("int4", "Linear4bit", torch.uint8, 6.0, 0.6),
])
def test_quantize_llm_replaces_linears_shrinks_and_stays_close(glm, quant, kind, storage, shrink, agree):
    with torch.no_grad():
        ref = glm(_ids()).logits
    q = quantize_llm(copy.deepcopy(glm), quant, compute_dtype=torch.bfloat16)
    layer = q.model.layers[0]
    for lin in (layer.self_attn.q_proj, layer.self_attn.o_proj, layer.mlp.gate_up_proj, layer.mlp.down_proj):
        assert type(lin).__name__ == kind and lin.weight.dtype == storage
    assert type(q.lm_head) is nn.Linear and q.lm_head.weight.dtype == torch.float32  # skipped
    # The decoder layers' weights are several times smaller; the estimate from shapes is exact.
    assert quantized_bytes(q.model.layers) * shrink < quantized_bytes(glm.model.layers)
    assert quantized_bytes(q) < quantized_bytes(glm)
    with torch.device("meta"):
        shapes_only = build_llm(CFG)
    assert estimate_bytes(shapes_only, quant, torch.float32) == quantized_bytes(q)
    with torch.no_grad():
        _close_to(q(_ids()).logits, ref, agree)
    out = q.generate(_ids()[:1, :6], max_new_tokens=5, do_sample=False)
    assert out.shape == (1, 11)
    q.to(dtype=torch.bfloat16)  # moving the model later keeps the quantized weights as they are
    assert layer.mlp.down_proj.weight.dtype == storage
    with torch.no_grad():
        _close_to(q(_ids()).logits, ref, agree - 0.1)


def test_any_module_with_linears_skips_output_layer_and_lora():
    class Block(nn.Module):  # a ChatGLM-6B v1 shaped block: plain nn.Linear with biases
        def __init__(self) -> None:
            super().__init__()
            self.query_key_value = nn.Linear(64, 192)
            self.dense = nn.Linear(64, 64)
            self.lora_A = nn.ModuleDict({"default": nn.Linear(64, 32, bias=False)})

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.dense(self.query_key_value(x)[..., :64]) + self.lora_A["default"](x).sum(-1, keepdim=True)

    class Native(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.layers = nn.ModuleList(Block() for _ in range(2))
            self.output_layer = nn.Linear(64, 100, bias=False)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            for b in self.layers:
                x = x + b(x)
            return self.output_layer(x)

    torch.manual_seed(0)
    model = Native().eval()
    x = torch.randn(3, 5, 64)
    with torch.no_grad():
        ref = model(x)
    quantize_llm(model, "int4")
    assert type(model.layers[1].query_key_value).__name__ == "Linear4bit"
    assert type(model.output_layer) is nn.Linear and type(model.layers[0].lora_A["default"]) is nn.Linear
    with torch.no_grad():
        assert F.cosine_similarity(model(x).flatten(), ref.flatten(), dim=0) > 0.98
    quantize_llm(model, "int4")  # quantizing twice changes nothing
    assert type(model.layers[1].query_key_value).__name__ == "Linear4bit"


def test_load_llm_quantizes_through_transformers(glm, glm_dir):
    model, tok = load_llm(glm_dir, quant="int4", dtype=torch.float32)
    down = model.model.layers[1].mlp.down_proj
    assert type(down).__name__ == "Linear4bit" and down.weight.dtype == torch.uint8
    with torch.no_grad():
        _close_to(model(_ids()).logits, glm(_ids()).logits, 0.6)
    assert tok.decode(tok("hi")["input_ids"]) == "hi"


def test_unknown_quant_and_missing_bitsandbytes_are_input_errors(glm, glm_dir, monkeypatch):
    for call in (lambda: quantize_llm(copy.deepcopy(glm), "int3"), lambda: bnb_config("int3"),
                 lambda: load_llm(glm_dir, quant="int3")):
        with pytest.raises(InputError, match="unknown quantization 'int3'"):
            call()
    monkeypatch.setitem(sys.modules, "bitsandbytes", None)  # as if it were not installed
    with pytest.raises(InputError, match="pip install 'bitsandbytes"):
        quantize_llm(copy.deepcopy(glm), "int8")


def test_mm_load_int8_answers():
    import mm

    with pytest.raises(InputError, match="int3"):
        mm.load("mm-tiny", quant="int3")
    chat = mm.load("mm-tiny", quant="int8")
    assert type(chat.model.llm.model.layers[0].mlp.down_proj).__name__ == "Linear8bitLt"
    assert type(chat.model.qformers["image"].layers[0].ffn.fc1) is nn.Linear  # the bridge is not quantized
    answer, _ = chat.chat("What colour is the circle?", image=make_image("red"), max_new_tokens=12)
    assert "red" in answer.lower()


def test_cli_info_prints_quantized_memory_beside_published_figures():
    out = subprocess.run([MM, "info", "--model", "visualglm-6b", "--quant", "int4"], capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "LLM in int4" in out.stdout and "total weights" in out.stdout and "8.7 GB" in out.stdout
    # 28 layers of 4.5-bit weights + fp16 embeddings = 3.95 GiB; EVA ViT-g + Q-Former in fp16 add ~2 GiB
    assert "LLM weights          3.95 GiB  (unquantized 11.50 GiB)" in out.stdout
    total = float(re.search(r"total weights +([\d.]+) GiB", out.stdout).group(1))
    assert 5.5 < total < 6.5
