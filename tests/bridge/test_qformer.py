import pytest
import torch
from transformers import Blip2QFormerConfig, Blip2QFormerModel

from bridge import QFormer, QFormerConfig, qformer_from_blip2, qformer_state_from_blip2


def _hf(hidden=32, layers=2, heads=4, inner=64, enc=24, every=1, seed=0):
    torch.manual_seed(seed)
    cfg = Blip2QFormerConfig(hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
                             intermediate_size=inner, encoder_hidden_size=enc, cross_attention_frequency=every)
    model = Blip2QFormerModel(cfg).eval()
    # Random LayerNorm affine and biases too, so a mis-mapped parameter cannot hide.
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    return model


@pytest.mark.parametrize(
    "hidden,layers,heads,inner,enc,every,queries",
    [(32, 2, 4, 64, 24, 1, 8), (32, 4, 4, 64, 48, 2, 5), (64, 3, 8, 128, 40, 2, 16), (48, 3, 6, 96, 48, 3, 1)],
)
def test_parity_with_transformers_blip2(hidden, layers, heads, inner, enc, every, queries):
    hf = _hf(hidden, layers, heads, inner, enc, every)
    query_tokens = torch.randn(1, queries, hidden)
    ours = qformer_from_blip2(hf, query_tokens).eval()
    x = torch.randn(3, 11, enc)
    expected = hf(query_embeds=query_tokens.expand(3, -1, -1), encoder_hidden_states=x).last_hidden_state
    torch.testing.assert_close(ours(x), expected)
    # Cross-attention layers match BLIP-2's schedule.
    assert [layer.cross_attn is not None for layer in ours.layers] == [i % every == 0 for i in range(layers)]


def test_parity_with_encoder_mask():
    hf = _hf(every=1)
    query_tokens = torch.randn(1, 4, 32)
    ours = qformer_from_blip2(hf, query_tokens).eval()
    x = torch.randn(2, 9, 24)
    mask = torch.ones(2, 9, dtype=torch.long)
    mask[1, 5:] = 0
    expected = hf(query_embeds=query_tokens.expand(2, -1, -1), encoder_hidden_states=x,
                  encoder_attention_mask=mask).last_hidden_state
    torch.testing.assert_close(ours(x, mask), expected)
    # A masked-out tail cannot influence the output: same as feeding only the valid tokens.
    torch.testing.assert_close(ours(x, mask)[1], ours(x[1:, :5])[0])


def test_lavis_names_map_to_the_same_weights():
    hf = _hf()
    state = {"Qformer.bert." + k.replace("attention.attention.", "attention.self.")
             .replace("crossattention.attention.", "crossattention.self.")
             .replace("layernorm.", "embeddings.LayerNorm."): v for k, v in hf.state_dict().items()}
    ours = qformer_state_from_blip2(state)
    direct = qformer_state_from_blip2(dict(hf.state_dict()))
    assert ours.keys() == direct.keys() and len(ours) == len(hf.state_dict())


def test_window_level_qformer_reads_each_window_separately():
    cfg = QFormerConfig(num_queries=2, hidden_size=32, num_layers=2, num_heads=4, intermediate_size=64,
                        encoder_width=16, window_size=4)
    q = QFormer(cfg).eval()
    x = torch.randn(1, 10, 16)  # windows [0:4], [4:8], [8:10 + padding]
    out = q(x)
    assert out.shape == (1, 3 * 2, 32)
    assert q.num_output_tokens(10) == 6
    plain = QFormer(QFormerConfig(**{**cfg.__dict__, "window_size": 0, "window_stride": 0})).eval()
    plain.load_state_dict(q.state_dict())
    torch.testing.assert_close(out[0, 2:4], plain(x[:, 4:8])[0])
    torch.testing.assert_close(out[0, 4:6], plain(x[:, 8:10])[0])  # the padded tail is masked


def test_config_errors_name_the_bad_value():
    with pytest.raises(ValueError, match="num_heads=5"):
        QFormerConfig(hidden_size=32, num_heads=5)
    with pytest.raises(ValueError, match="num_queries"):
        QFormerConfig(num_queries=0)
    q = QFormer(QFormerConfig(hidden_size=32, num_heads=4, intermediate_size=64, num_layers=1, encoder_width=16))
    with pytest.raises(ValueError, match="encoder width 8"):
        q(torch.randn(1, 3, 8))


def test_blip2_size_on_meta_device():
    # BLIP-2 / VisualGLM Q-Former: 12 layers, 768 wide, cross-attention every 2nd layer, ViT-g width 1408.
    with torch.device("meta"):
        q = QFormer(QFormerConfig())
    n = sum(p.numel() for p in q.parameters())
    assert abs(n - 1.05e8) / 1.05e8 < 0.02, n


def test_gradients_reach_queries_and_weights():
    q = QFormer(QFormerConfig(hidden_size=32, num_heads=4, intermediate_size=64, num_layers=2, encoder_width=16))
    q(torch.randn(2, 5, 16)).sum().backward()
    assert q.query_tokens.grad is not None and q.query_tokens.grad.abs().sum() > 0
    assert q.layers[0].cross_attn.key.weight.grad.abs().sum() > 0
