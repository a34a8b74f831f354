"""Audio loading and the Whisper log-mel front end: pure functions.

Shape letters: S samples, C channels, M mel bins, T mel frames.

`load_audio` accepts a path, bytes, a `(waveform, sample_rate)` pair in either order (Gradio gives
`(sample_rate, data)`), or an array already at the target rate; it mixes down to mono and resamples
(torchaudio) to 16 kHz. WAV/FLAC/OGG go through soundfile; anything else (mp3, aac, opus, m4a, video
containers) through PyAV.
"""

from __future__ import annotations

import io
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torchaudio.functional as AF

from encoders.av_guard import (
    AUDIO_LIMIT,
    check_deadline,
    check_seconds,
    configure_stream,
    missing_stream,
    quiet_ffmpeg,
)
from encoders.source_bytes import read_source
from mm.errors import InputError, describe_source

SAMPLE_RATE = 16000
N_FFT = 400  # 25 ms Hann window at 16 kHz (Whisper)
HOP_LENGTH = 160  # 10 ms hop: 100 mel frames per second


MAX_FLOAT_PEAK = 4.0  # float samples are [-1, 1]; codecs and resamplers overshoot a little, never this much


def _to_mono_float(data: Any, name: str) -> torch.Tensor:
    """Array of int/float samples, (S,), (S, C) or (C, S) -> float32 (S,) in [-1, 1].

    Float samples must lie in [-1, 1]; a peak up to `MAX_FLOAT_PEAK` is kept as it is (codec overshoot),
    anything larger (int16 values stored as floats, 1e30) is an InputError rather than a silent wrong
    answer: scaled to float32 power it would overflow to inf in the log-mel front end.
    """
    arr = data.detach().cpu().numpy() if isinstance(data, torch.Tensor) else np.asarray(data)
    if arr.dtype == np.int16:
        arr = arr.astype(np.float32) / 32768.0
    elif arr.dtype == np.int32:
        arr = arr.astype(np.float32) / 2147483648.0
    elif arr.dtype == np.uint8:
        arr = (arr.astype(np.float32) - 128.0) / 128.0
    elif np.issubdtype(arr.dtype, np.floating):
        arr = arr.astype(np.float64)  # checked before narrowing: 1e300 is finite here, inf in float32
    else:
        raise InputError(f"{name}: unsupported audio sample type {arr.dtype}")
    if arr.ndim not in (1, 2):
        raise InputError(f"{name}: audio must be 1-D or 2-D (samples x channels), got shape {arr.shape}")
    if arr.size == 0:
        raise InputError(f"{name}: the audio has no samples")
    if arr.ndim == 2:
        # Channels are the short axis: Gradio and soundfile give (S, C), torchaudio gives (C, S).
        arr = arr.mean(axis=1) if arr.shape[0] >= arr.shape[1] else arr.mean(axis=0)
    if not np.isfinite(arr).all():
        raise InputError(f"{name}: the audio holds NaN or infinite samples")
    peak = float(np.abs(arr).max())
    if peak > MAX_FLOAT_PEAK:
        raise InputError(f"{name}: float samples must be in [-1, 1] (peak {peak:.3g}); scale them first "
                         "(divide 16-bit values by 32768) or pass an int16 array")
    return torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float32))


def _decode_soundfile(data: bytes, name: str, max_seconds: float | None) -> tuple[np.ndarray, int] | None:
    """WAV/FLAC/OGG through libsndfile; None when it cannot read the format (PyAV is tried next).

    The length in the header is checked against `max_seconds` before any sample is decoded.
    """
    import soundfile as sf

    try:
        info = sf.info(io.BytesIO(data))
    except Exception:  # noqa: BLE001 - soundfile raises several types; fall back to PyAV
        return None
    if info.frames == 0 or info.samplerate <= 0:
        raise InputError(f"{name}: the audio has no samples")
    check_seconds(info.frames / info.samplerate, max_seconds, name, "the sound", AUDIO_LIMIT)
    try:
        arr, sr = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
    except Exception:  # noqa: BLE001 - a header libsndfile reads but a body it cannot: try PyAV
        return None
    if arr.size == 0:
        raise InputError(f"{name}: the audio has no samples")
    return arr, int(sr)


def _decode_pyav(data: bytes, name: str, max_seconds: float | None, deadline: float | None) -> tuple[np.ndarray, int]:
    import av

    chunks: list[np.ndarray] = []
    n = 0
    try:
        with quiet_ffmpeg(), av.open(io.BytesIO(data)) as container:
            if not container.streams.audio:
                raise missing_stream(container, name, "audio")
            stream = container.streams.audio[0]
            configure_stream(stream)
            if stream.duration and stream.time_base:
                check_seconds(float(stream.duration * stream.time_base), max_seconds, name, "the sound", AUDIO_LIMIT)
            resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
            for frame in container.decode(stream):
                check_deadline(deadline, name)
                for out in resampler.resample(frame):
                    chunks.append(out.to_ndarray().reshape(-1))
                    n += chunks[-1].size
                # Headers can lie (or be absent): count what is actually decoded too.
                check_seconds(n / SAMPLE_RATE, max_seconds, name, "the sound", AUDIO_LIMIT)
            for out in resampler.resample(None):
                chunks.append(out.to_ndarray().reshape(-1))
    except InputError:
        raise
    except Exception as e:  # noqa: BLE001 - PyAV's errors are many; all mean "cannot decode"
        raise InputError(f"{name}: not a readable audio file ({e})") from None
    if not chunks:
        raise InputError(f"{name}: the audio track has no samples")
    return np.concatenate(chunks)[:, None], SAMPLE_RATE


def _split_pair(source: tuple | list, name: str) -> tuple[Any, int]:
    a, b = source
    if isinstance(a, (int, np.integer)) and not isinstance(b, (int, np.integer)):
        return b, int(a)
    if isinstance(b, (int, np.integer)) and not isinstance(a, (int, np.integer)):
        return a, int(b)
    raise InputError(f"{name}: an audio pair must be (waveform, sample_rate) or (sample_rate, waveform)")


def load_audio(source: Any, sample_rate: int = SAMPLE_RATE, *, max_seconds: float | None = None,
               max_bytes: int | None = None, deadline: float | None = None) -> torch.Tensor:
    """Path, bytes, `(waveform, sr)` / `(sr, waveform)` or an array at `sample_rate` -> mono float32 (S,).

    Limits (None: none): `max_seconds` of sound (checked from the header where there is one, before
    decoding), `max_bytes` read from a file (regular files only), `deadline` an absolute
    `time.monotonic()` value checked between decoded packets.
    """
    name = describe_source(source)
    if isinstance(source, (tuple, list)) and len(source) == 2:
        data, sr = _split_pair(source, name)
        if sr <= 0:
            raise InputError(f"{name}: sample rate must be positive, got {sr}")
        wave = _to_mono_float(data, name)
    elif isinstance(source, (np.ndarray, torch.Tensor)):
        wave, sr = _to_mono_float(source, name), sample_rate
    elif isinstance(source, (str, Path, bytes, bytearray)) or hasattr(source, "read"):
        data = read_source(source, max_bytes, name)
        decoded = _decode_soundfile(data, name, max_seconds) or _decode_pyav(data, name, max_seconds, deadline)
        wave, sr = _to_mono_float(decoded[0], name), decoded[1]
    else:
        raise InputError(f"{name}: expected an audio path, bytes, a (waveform, sample_rate) pair or an array")
    check_seconds(wave.shape[0] / sr, max_seconds, name, "the sound", AUDIO_LIMIT)
    if sr != sample_rate:
        wave = AF.resample(wave, sr, sample_rate)
    return wave


@lru_cache(maxsize=8)
def mel_filters(n_mels: int, n_fft: int = N_FFT, sample_rate: int = SAMPLE_RATE) -> torch.Tensor:
    """(n_fft//2+1, M) Slaney-style mel filterbank, as librosa and Whisper use."""
    return AF.melscale_fbanks(
        n_freqs=n_fft // 2 + 1, f_min=0.0, f_max=sample_rate / 2, n_mels=n_mels,
        sample_rate=sample_rate, norm="slaney", mel_scale="slaney",
    )


def log_mel(wave: torch.Tensor, n_mels: int = 80, n_frames: int | None = None) -> torch.Tensor:
    """Whisper's log-mel spectrogram: (S,) or (B, S) -> (M, T) or (B, M, T).

    With `n_frames`, the waveform is zero-padded or cut to `n_frames * HOP_LENGTH` samples first, as
    Whisper pads every window to 30 s. Values are log10 power, floored 8 below the per-item maximum
    and scaled to about [-1, 1].
    """
    if n_frames is not None:
        target = n_frames * HOP_LENGTH
        wave = wave[..., :target]
        wave = torch.nn.functional.pad(wave, (0, target - wave.shape[-1]))
    window = torch.hann_window(N_FFT, device=wave.device)
    spec = torch.stft(wave.float(), N_FFT, HOP_LENGTH, window=window, return_complex=True)
    power = spec[..., :-1].abs() ** 2  # (..., F, T): Whisper drops the last frame
    mel = (power.transpose(-1, -2) @ mel_filters(n_mels).to(wave.device)).transpose(-1, -2)  # (..., M, T)
    logm = torch.clamp(mel, min=1e-10).log10()
    floor = logm.amax(dim=(-2, -1), keepdim=True) - 8.0
    return (torch.maximum(logm, floor) + 4.0) / 4.0
