import io

import av
import numpy as np
import pytest
import soundfile as sf
import torch
from transformers import WhisperConfig, WhisperFeatureExtractor, WhisperModel

from encoders import create_encoder, load_audio, log_mel
from mm.errors import InputError
from tests.conftest import tone


@pytest.mark.parametrize("n_mels,chunk", [(80, 30), (128, 30), (80, 2)])
def test_log_mel_matches_whisper_feature_extractor(n_mels, chunk):
    wave = np.random.default_rng(0).standard_normal(16000 * min(chunk, 3)).astype(np.float32) * 0.1
    fe = WhisperFeatureExtractor(feature_size=n_mels, chunk_length=chunk)
    expected = fe(wave, sampling_rate=16000, return_tensors="pt").input_features[0]
    ours = log_mel(torch.from_numpy(wave), n_mels, n_frames=chunk * 100)
    assert ours.shape == expected.shape
    torch.testing.assert_close(ours, expected, atol=2e-3, rtol=1e-3)


def test_stereo_44k_wav_is_mixed_down_and_resampled(tmp_path):
    left, right = tone(440, 1.0, 44100), np.zeros(44100, np.float32)
    sf.write(tmp_path / "s.wav", np.stack([left, right], axis=1), 44100, subtype="PCM_16")
    wave = load_audio(tmp_path / "s.wav")
    assert wave.shape == (16000,)
    assert 0.2 < wave.abs().max() < 0.3  # the mean of a 0.5 tone and silence


def test_gradio_pair_and_torchaudio_pair():
    data = (tone() * 32767).astype(np.int16)
    a = load_audio((8000, data[::2]))  # Gradio: (sample_rate, int16 samples)
    b = load_audio((torch.from_numpy(tone(440, 1.0, 8000))[None], 8000))  # (waveform (C, S), sr)
    assert a.shape == b.shape == (16000,)


def _encode(fmt: str, codec: str, wave: np.ndarray, sr: int = 16000) -> bytes:
    buf = io.BytesIO()
    with av.open(buf, "w", format=fmt) as out:
        stream = out.add_stream(codec, rate=sr, layout="mono")
        frame_size = stream.codec_context.frame_size or 1024
        pcm = (wave * 32767).astype(np.int16)
        fmt_name = stream.codec_context.format.name
        for i in range(0, len(pcm), frame_size):
            chunk = pcm[i:i + frame_size]
            frame = av.AudioFrame.from_ndarray(chunk[None], format="s16", layout="mono")
            frame.sample_rate = sr
            if fmt_name != "s16":
                frame = av.AudioResampler(format=fmt_name, layout="mono", rate=sr).resample(frame)[0]
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return buf.getvalue()


@pytest.mark.parametrize("fmt,codec,sr", [("mp3", "libmp3lame", 44100), ("ogg", "libopus", 48000), ("adts", "aac", 16000)])
def test_compressed_audio_decodes_through_pyav(fmt, codec, sr):
    data = _encode(fmt, codec, tone(440, 1.0, sr), sr)
    wave = load_audio(data)
    assert abs(wave.shape[0] - 16000) < 1600  # encoder priming/padding adds a little
    spectrum = np.abs(np.fft.rfft(wave.numpy()))
    assert abs(np.argmax(spectrum) * 16000 / len(wave) - 440) < 10


@pytest.mark.parametrize("source,message", [
    (b"not audio at all", "not a readable audio file"),
    (b"", "the file is empty"),
    ("missing.wav", "missing.wav: no such file"),
    ((np.zeros(10), np.zeros(10)), "sample_rate"),
    ((16000, np.zeros((2, 2, 2))), "1-D or 2-D"),
    ((16000, np.array([0.0, np.nan])), "NaN"),
])
def test_bad_audio_is_an_input_error(source, message):
    with pytest.raises(InputError, match=message):
        load_audio(source)


def test_long_audio_is_windowed_not_truncated():
    enc = create_encoder("tiny-whisper")  # 2 s windows
    assert enc.window_seconds == 2.0
    wave = torch.from_numpy(np.concatenate([tone(300, 2.0), tone(900, 2.0), tone(1500, 1.0)]))
    batch = enc.features([wave, torch.from_numpy(tone(300, 0.5))])
    assert batch.windows == [3, 1] and batch.tokens == [250, 25]
    states, mask = enc.encode(batch)
    assert states.shape == (2, 300, 128)
    assert mask.sum(1).tolist() == [250, 25]
    # Each window is encoded on its own: window 0 of item 0 equals a 2 s clip alone.
    alone = enc(log_mel(wave[:32000], 80, 200)[None])
    torch.testing.assert_close(states[0, :100], alone[0])


def test_whisper_weights_load_from_a_transformers_checkpoint(tmp_path):
    cfg = WhisperConfig(d_model=128, encoder_layers=2, encoder_attention_heads=4, encoder_ffn_dim=512,
                        decoder_layers=1, decoder_attention_heads=4, decoder_ffn_dim=64, num_mel_bins=80,
                        max_source_positions=100, vocab_size=100, pad_token_id=0,
                        bos_token_id=1, eos_token_id=2, decoder_start_token_id=1)
    torch.manual_seed(1)
    ref = WhisperModel(cfg).eval()
    ref.save_pretrained(tmp_path)
    enc = create_encoder("tiny-whisper")
    enc.load_weights(tmp_path / "model.safetensors")
    mel = log_mel(torch.from_numpy(tone()), 80, 200)[None]
    torch.testing.assert_close(enc(mel), ref.encoder(mel).last_hidden_state)
