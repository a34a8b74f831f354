"""OpenAI Whisper `.pt` checkpoints (`{"dims", "model_state_dict"}`) load strictly into the audio encoder.

The reference forward is written here from openai/whisper `AudioEncoder` (conv1 GELU conv2 GELU, stored
positions, pre-norm blocks with q,k scaled by Dh^-1/4 and no key bias, ln_post), reading the checkpoint's
tensors by their OpenAI names; transformers' `WhisperEncoder` is the code under test.
"""

import logging
import math

import pytest
import torch
import torch.nn.functional as F

from encoders import create_encoder
from encoders.whisper_layouts import whisper_state_from_openai
from mm.errors import InputError

MELS, CTX, STATE, HEADS, LAYERS = 16, 20, 32, 4, 2  # 40 mel frames -> 20 positions


def tiny_whisper():
    return create_encoder("tiny-whisper", num_mel_bins=MELS, max_source_positions=CTX, d_model=STATE,
                          encoder_attention_heads=HEADS, encoder_layers=LAYERS, encoder_ffn_dim=4 * STATE)


def openai_sinusoids(length, channels):
    """Whisper's `sinusoids`, written out: log-spaced timescales, sin then cos."""
    step = math.log(10000) / (channels // 2 - 1)
    scaled = torch.arange(length)[:, None] * torch.exp(-step * torch.arange(channels // 2))[None, :]
    return torch.cat([scaled.sin(), scaled.cos()], dim=1)


def openai_checkpoint(seed=0, layers=LAYERS):
    """Random tensors in OpenAI names (encoder and a small decoder), as `torch.save` of a Whisper model."""
    g = torch.Generator().manual_seed(seed)

    def r(*shape, scale=0.2):
        return torch.randn(*shape, generator=g) * scale

    sd = {"encoder.conv1.weight": r(STATE, MELS, 3), "encoder.conv1.bias": r(STATE),
          "encoder.conv2.weight": r(STATE, STATE, 3), "encoder.conv2.bias": r(STATE),
          # stored sinusoids in the real files; random here so a recomputed table could not pass
          "encoder.positional_embedding": r(CTX, STATE, scale=1.0),
          "encoder.ln_post.weight": 1 + r(STATE), "encoder.ln_post.bias": r(STATE)}
    for i in range(layers):
        b = f"encoder.blocks.{i}."
        sd |= {b + "attn.query.weight": r(STATE, STATE), b + "attn.query.bias": r(STATE),
               b + "attn.key.weight": r(STATE, STATE),  # no key bias
               b + "attn.value.weight": r(STATE, STATE), b + "attn.value.bias": r(STATE),
               b + "attn.out.weight": r(STATE, STATE), b + "attn.out.bias": r(STATE),
               b + "attn_ln.weight": 1 + r(STATE), b + "attn_ln.bias": r(STATE),
               b + "mlp.0.weight": r(4 * STATE, STATE), b + "mlp.0.bias": r(4 * STATE),
               b + "mlp.2.weight": r(STATE, 4 * STATE), b + "mlp.2.bias": r(STATE),
               b + "mlp_ln.weight": 1 + r(STATE), b + "mlp_ln.bias": r(STATE)}
    sd |= {"decoder.token_embedding.weight": r(50, STATE), "decoder.positional_embedding": r(8, STATE),
           "decoder.blocks.0.cross_attn.query.weight": r(STATE, STATE), "decoder.ln.weight": torch.ones(STATE)}
    dims = dict(n_mels=MELS, n_audio_ctx=CTX, n_audio_state=STATE, n_audio_head=HEADS, n_audio_layer=layers,
                n_vocab=50, n_text_ctx=8, n_text_state=STATE, n_text_head=HEADS, n_text_layer=1)
    return dims, sd


def openai_forward(sd, mel, layers=LAYERS):
    """openai/whisper `AudioEncoder.forward` on the checkpoint's tensors."""
    x = F.gelu(F.conv1d(mel, sd["encoder.conv1.weight"], sd["encoder.conv1.bias"], padding=1))
    x = F.gelu(F.conv1d(x, sd["encoder.conv2.weight"], sd["encoder.conv2.bias"], stride=2, padding=1))
    x = x.permute(0, 2, 1) + sd["encoder.positional_embedding"]  # (B, N, D)
    scale = (STATE // HEADS) ** -0.25
    for i in range(layers):
        b = f"encoder.blocks.{i}."
        h = F.layer_norm(x, (STATE,), sd[b + "attn_ln.weight"], sd[b + "attn_ln.bias"])
        q = F.linear(h, sd[b + "attn.query.weight"], sd[b + "attn.query.bias"])
        k = F.linear(h, sd[b + "attn.key.weight"])
        v = F.linear(h, sd[b + "attn.value.weight"], sd[b + "attn.value.bias"])
        q = q.view(*q.shape[:2], HEADS, -1).permute(0, 2, 1, 3) * scale
        k = k.view(*k.shape[:2], HEADS, -1).permute(0, 2, 3, 1) * scale
        v = v.view(*v.shape[:2], HEADS, -1).permute(0, 2, 1, 3)
        wv = ((q @ k).softmax(-1) @ v).permute(0, 2, 1, 3).flatten(start_dim=2)
        x = x + F.linear(wv, sd[b + "attn.out.weight"], sd[b + "attn.out.bias"])
        h = F.layer_norm(x, (STATE,), sd[b + "mlp_ln.weight"], sd[b + "mlp_ln.bias"])
        x = x + F.linear(F.gelu(F.linear(h, sd[b + "mlp.0.weight"], sd[b + "mlp.0.bias"])),
                         sd[b + "mlp.2.weight"], sd[b + "mlp.2.bias"])
    return F.layer_norm(x, (STATE,), sd["encoder.ln_post.weight"], sd["encoder.ln_post.bias"])


def _mel(seed=3):
    return torch.randn(2, MELS, 2 * CTX, generator=torch.Generator().manual_seed(seed))


def _save(tmp_path, dims, sd, name="tiny.pt"):
    torch.save({"dims": dims, "model_state_dict": sd}, tmp_path / name)
    return tmp_path / name


def test_openai_checkpoint_matches_the_openai_forward(tmp_path, caplog):
    dims, sd = openai_checkpoint()
    enc = tiny_whisper()
    with caplog.at_level(logging.INFO, logger="encoders.audio_whisper"):
        enc.load_weights(_save(tmp_path, dims, sd))
    assert "4 OpenAI decoder tensors left out" in caplog.text
    mel = _mel()
    torch.testing.assert_close(enc(mel), openai_forward(sd, mel))
    assert not enc.training and not any(p.requires_grad for p in enc.parameters())


def test_missing_positional_buffer_is_recomputed_as_whisper_sinusoids(tmp_path):
    dims, sd = openai_checkpoint()
    del sd["encoder.positional_embedding"]
    enc = tiny_whisper()
    enc.load_weights(_save(tmp_path, dims, sd))
    mel = _mel()
    reference = {**sd, "encoder.positional_embedding": openai_sinusoids(CTX, STATE)}
    torch.testing.assert_close(enc(mel), openai_forward(reference, mel))


def test_layout_mistakes_change_the_output():
    dims, sd = openai_checkpoint()
    mel = _mel()
    expected = openai_forward(sd, mel)
    good = {"model." + k: v for k, v in whisper_state_from_openai(sd).items()}
    enc = tiny_whisper()
    enc.load_state_dict(good)
    torch.testing.assert_close(enc(mel), expected)
    # attn_ln and mlp_ln swapped; query and key swapped (a different rename table would do either).
    norms, qk = dict(good), dict(good)
    for i in range(LAYERS):
        p = f"model.layers.{i}."
        for s in ("weight", "bias"):
            norms[p + f"self_attn_layer_norm.{s}"] = good[p + f"final_layer_norm.{s}"]
            norms[p + f"final_layer_norm.{s}"] = good[p + f"self_attn_layer_norm.{s}"]
        qk[p + "self_attn.q_proj.weight"], qk[p + "self_attn.k_proj.weight"] = (
            good[p + "self_attn.k_proj.weight"], good[p + "self_attn.q_proj.weight"])
    for wrong in (norms, qk):
        enc.load_state_dict(wrong)
        assert not torch.allclose(enc(mel), expected, atol=1e-3)


def test_dims_that_do_not_fit_the_encoder_are_an_input_error(tmp_path):
    dims, sd = openai_checkpoint(layers=3)
    with pytest.raises(InputError, match=r"n_audio_layer=3 \(encoder has 2\)"):
        tiny_whisper().load_weights(_save(tmp_path, dims, sd))


def test_extra_or_missing_encoder_tensor_is_an_input_error_naming_it(tmp_path):
    dims, sd = openai_checkpoint()
    with pytest.raises(InputError, match=r"unexpected: model\.encoder\.blocks\.0\.attn\.key\.bias"):
        tiny_whisper().load_weights(_save(tmp_path, dims, sd | {"encoder.blocks.0.attn.key.bias": torch.zeros(STATE)}))
    del sd["encoder.ln_post.bias"]
    with pytest.raises(InputError, match=r"missing: model\.layer_norm\.bias"):
        tiny_whisper().load_weights(_save(tmp_path, dims, sd, "missing.pt"))
