"""One object per input kind (image, audio, video): everything the model does with that kind of media.

Shape letters: B batch, N encoder tokens, F frames, Q query slots of one item, D Q-Former width,
E LLM embedding width.

A `Modality` owns its file extensions, preparing a user's item (decoding within `Limits` and the
deadline, preprocessing), collating prepared items into the encoder's batch input, encoding (frozen),
bridging (Q-Former), its slot count per item, projecting into the LLM's embedding space and the cache
fingerprint of an item. It also says how the server reads an upload of its kind (`check_header`,
`decode_in_child`, `child_options`) and how training reads a dataset's file
(`prepare_training`, `sound_track`; stage-0 encoder pretraining: `pretrain_input`, `pretrain_tokens`).
`MMModel` keeps one per modality in a dict and loops over them (torchtune's `EarlyFusionModel`); adding
an input kind is a new class in `MODALITY_TYPES`, not a branch elsewhere.

The weights stay where they always were (`encoders.<name>`, `qformers.<name>`, `projectors.<name>` in
`MMModel`, so state-dict keys do not change): a modality object is not a module, it reads its parts from
the model's `ModuleDict`s by its name. Video reads frames with the image encoder and image Q-Former (its
`image` peer) and turns a clip's frames into V slots with the temporal Q-Former (`bridge.temporal`); a
clip's sound track becomes an item of its `audio` peer, placed right after the clip.
"""

from __future__ import annotations

import abc
import dataclasses
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, NamedTuple

import torch
from torch import nn

from bridge.projector import Projector, ProjectorConfig
from bridge.qformer import QFormer
from bridge.temporal import TemporalQFormer
from encoders.audio_io import load_audio, log_mel
from encoders.audio_whisper import AudioBatch
from encoders.av_guard import AUDIO_LIMIT, check_pixels, check_seconds
from encoders.base import FrozenEncoder
from encoders.image_io import check_image_header, load_image
from encoders.media_types import AUDIO_EXTENSIONS, IMAGE_EXTENSIONS, VIDEO_EXTENSIONS
from encoders.registry import create_encoder
from encoders.video_io import VideoClip
from mm.collate import pad_and_mask
from mm.config import EncoderConfig, MMConfig
from mm.errors import InputError, describe_source
from mm.limits import DEFAULT_LIMITS, Limits

VIDEO_SAMPLE_RATE = 16000  # a clip's sound track is decoded at the audio encoders' rate


@dataclass
class Prepared:
    modality: str  # the name of the `Modality` that reads it
    data: torch.Tensor  # image: (3, H, W) pixels; audio: (S,) 16 kHz waveform; video: (F, 3, H, W) frames
    key: str  # content fingerprint of `data` (the embedding cache's key)


def fingerprint(modality: str, data: torch.Tensor) -> str:
    """Content hash of a prepared item: the same pixels or samples give the same key, whatever the source."""
    return hashlib.sha256(modality.encode() + data.numpy().tobytes()).hexdigest()


def _bound(limits: Limits | None, name: str) -> Any:
    """`limits.<name>`, or None (the loader's own default) without limits (a training set's own files)."""
    return None if limits is None else getattr(limits, name)


@dataclass
class VideoBatch:
    pixels: torch.Tensor  # (B, F, 3, H, W), frames beyond a clip's length are zero
    frames: list[int]  # real frames per clip

    def to(self, device: torch.device | str | None) -> VideoBatch:
        return VideoBatch(self.pixels.to(device), self.frames)


MediaBatch = torch.Tensor | AudioBatch | VideoBatch  # what `collate` gives and `encode` takes


class EncoderOutput(NamedTuple):
    states: torch.Tensor  # (B, N, De) frozen encoder states (video: N = F*Nf, frame after frame)
    mask: torch.Tensor | None  # (B, N) bool, True on real tokens; None when every token is real
    valid: list[int]  # real tokens per item


@dataclass
class ModalityParts:
    """What one modality adds to the model (built before the weights are loaded)."""

    encoder: FrozenEncoder | None  # None: it reads through a peer's encoder (video frames: the image one)
    qformer: nn.Module
    projector: Projector
    encoder_label: str = ""  # for `mm info`: "image encoder (tiny-vit)"
    qformer_label: str = "Q-Former"


class Modality(abc.ABC):
    """Base of the per-kind objects; see the module doc. Subclasses set `name` and `extensions`."""

    name: ClassVar[str]
    extensions: ClassVar[frozenset[str]]
    single_item: ClassVar[bool] = True  # one user item is one model item (a clip with sound is two)
    # The modality that reads this kind's sound track as an item of its own (a clip's: audio); None: none.
    sound_track: ClassVar[str | None] = None
    # The server decodes uploads of this kind in its child process (`mm.decode_process`, by this name):
    # codecs that a hostile file can hang or crash. False: `prepare` reads the bytes in-process, after
    # `check_header`.
    decode_in_child: ClassVar[bool] = True

    def __init__(self, config: MMConfig, encoders: nn.ModuleDict, qformers: nn.ModuleDict,
                 projectors: nn.ModuleDict, peers: Mapping[str, Modality]) -> None:
        self.config = config
        self._encoders, self._qformers, self._projectors = encoders, qformers, projectors
        self.peers = peers  # the model's modalities by name (video reads through image and audio)

    @classmethod
    @abc.abstractmethod
    def build_parts(cls, config: MMConfig, llm_width: int, encoder: FrozenEncoder | None = None) -> ModalityParts:
        """Encoder (unless given prebuilt), Q-Former and projection of this modality for `config`."""

    # -- parts ------------------------------------------------------------------------------------

    @property
    def encoder(self) -> FrozenEncoder:
        return self._encoders[self.name]

    @property
    def qformer(self) -> nn.Module:
        return self._qformers[self.name]

    @property
    def projector(self) -> nn.Module:
        return self._projectors[self.name]

    @property
    def encoder_config(self) -> EncoderConfig:
        """The config of the encoder that reads this modality (`<name>_encoder`)."""
        return getattr(self.config, f"{self.name}_encoder")

    @property
    def bridge_width(self) -> int:
        """D: the width of the bridge outputs before projection."""
        return self.qformer.config.hidden_size

    @abc.abstractmethod
    def preprocessing(self) -> list[list[Any]]:
        """What turns a source into encoder input, as JSON-able values (part of `cache_fingerprint`)."""

    def cache_fingerprint(self) -> str:
        """Hash of what determines this modality's encoder features (encoder identity, preprocessing,
        weights): the name of the on-disk feature cache of training (`mm.train.features`)."""
        cfg = self.encoder_config
        h = hashlib.sha256(json.dumps({"name": cfg.name, "options": cfg.options}, sort_keys=True).encode())
        for part in self.preprocessing():
            h.update(json.dumps(part).encode())
        for name, t in sorted(self.encoder.state_dict().items()):
            h.update(name.encode())
            h.update(t.detach().float().cpu().numpy().tobytes())
        return h.hexdigest()[:16]

    # -- items ------------------------------------------------------------------------------------

    def item(self, data: torch.Tensor) -> Prepared:
        return Prepared(self.name, data, self.fingerprint(data))

    def fingerprint(self, data: torch.Tensor) -> str:
        return fingerprint(self.name, data)

    @abc.abstractmethod
    def _load(self, item: Any, limits: Limits | None, deadline: float | None) -> torch.Tensor:
        """One item -> the data of its first model item; `limits` None: only the loaders' own defaults."""

    def prepare(self, item: Any, limits: Limits = DEFAULT_LIMITS, deadline: float | None = None) -> list[Prepared]:
        """One user item -> the model items it becomes (a video with sound gives two).

        `limits` bound the work (bytes read, pixels, seconds); `deadline` is an absolute `time.monotonic()`
        value checked while decoding (None: no deadline)."""
        return [self.item(self._load(item, limits, deadline))]

    def prepare_training(self, source: Any) -> torch.Tensor:
        """A training set's file (or bytes) -> the data of the one item its feature cache keeps.

        As `prepare`, but a dataset's own files are trusted: no `Limits` or deadline (the loaders' own
        defaults apply). A clip gives its frames only: its sound track is cached by the `sound_track`
        modality, which reads it from the clip's file."""
        return self._load(source, None, None)

    # -- uploads to the server (`mm.serve.app`) ---------------------------------------------------

    @classmethod
    def check_header(cls, data: bytes, limits: Limits, name: str) -> None:
        """Refuse an upload from its header alone, before any work is queued (images: the pixel count).

        By default nothing is refused here: kinds decoded in the child process are checked there."""
        return None

    def child_options(self) -> dict[str, Any]:
        """Keywords of `DecodeProcess.decode` that decode this kind as this model reads it."""
        return {}

    # -- stage-0 pretraining of the encoder itself (`mm.train.contrastive`) -----------------------

    def pretrain_input(self, source: Any) -> torch.Tensor:
        """A training file -> one input of the encoder being pretrained (stacked into a batch)."""
        raise ValueError(f"the {self.name} modality has no encoder of its own to pretrain")

    def pretrain_tokens(self, inputs: torch.Tensor) -> torch.Tensor:
        """(B, ...) stacked `pretrain_input`s -> (B, N, De) encoder tokens, with gradients."""
        raise ValueError(f"the {self.name} modality has no encoder of its own to pretrain")

    @abc.abstractmethod
    def collate(self, items: Sequence[Prepared], device: torch.device | str | None = None) -> MediaBatch:
        """Prepared items of this modality -> the encoder's batch input, on `device`."""

    # -- forward ----------------------------------------------------------------------------------

    @abc.abstractmethod
    def encode(self, inputs: MediaBatch) -> EncoderOutput:
        """The frozen encoder over a collated batch: states, mask, valid tokens per item."""

    def bridge(self, states: torch.Tensor, mask: torch.Tensor | None, valid: list[int]) -> list[torch.Tensor]:
        """Q-Former over encoder states -> one (Q_i, D) tensor per item (the trainable path)."""
        qformer = self.qformer
        out = qformer(states.to(qformer.query_tokens.dtype), mask)  # (B, Q', D)
        return [o[: qformer.num_output_tokens(v)] for o, v in zip(out, valid)]

    def num_slots(self, valid_tokens: int) -> int:
        """Query slots an item with `valid_tokens` encoder tokens fills in the prompt."""
        return self.qformer.num_output_tokens(valid_tokens)

    def bridge_tokens(self, inputs: MediaBatch) -> list[torch.Tensor]:
        """Pre-projection bridge outputs, one (Q_i, D) tensor per item (pooling and embeddings)."""
        return self.bridge(*self.encode(inputs))

    def embed(self, inputs: MediaBatch) -> list[torch.Tensor]:
        """Bridge outputs in the LLM's embedding space, one (Q_i, E) tensor per item."""
        proj = self.projector
        return [proj(t) for t in self.bridge_tokens(inputs)]


def _encoder_and_qformer(config: MMConfig, name: str, llm_width: int,
                         encoder: FrozenEncoder | None) -> ModalityParts:
    """The image and audio layout: `<name>_encoder` -> `<name>_qformer` -> projection."""
    enc_cfg = getattr(config, f"{name}_encoder")
    encoder = encoder or create_encoder(enc_cfg.name, **enc_cfg.options)
    if encoder.modality != name:
        raise ValueError(f"{name}_encoder {enc_cfg.name!r} is a {encoder.modality} encoder")
    q_cfg = dataclasses.replace(getattr(config, f"{name}_qformer"), encoder_width=encoder.width)
    return ModalityParts(encoder, QFormer(q_cfg), Projector(ProjectorConfig(config.projector, q_cfg.hidden_size, llm_width)),
                         encoder_label=f"{name} encoder ({enc_cfg.name})")


class ImageModality(Modality):
    name = "image"
    extensions = IMAGE_EXTENSIONS
    decode_in_child = False  # Pillow, bounded by the header's pixel count (`check_header`)

    @classmethod
    def build_parts(cls, config: MMConfig, llm_width: int, encoder: FrozenEncoder | None = None) -> ModalityParts:
        return _encoder_and_qformer(config, cls.name, llm_width, encoder)

    def preprocessing(self) -> list[list[Any]]:
        enc = self.encoder
        return [[enc.image_size, list(enc.mean), list(enc.std), enc.layer]]

    def _load(self, item: Any, limits: Limits | None, deadline: float | None) -> torch.Tensor:
        image = load_image(item, max_pixels=_bound(limits, "max_image_pixels"),
                           max_bytes=_bound(limits, "max_file_bytes"))
        return self.encoder.preprocess(image)  # (3, H, W)

    @classmethod
    def check_header(cls, data: bytes, limits: Limits, name: str) -> None:
        check_image_header(data, limits.max_image_pixels, name)

    def pretrain_input(self, source: Any) -> torch.Tensor:
        return self.prepare_training(source)  # (3, H, W)

    def pretrain_tokens(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.encoder.tokens(inputs)  # (B, N, De), with grad: this is the tower being trained

    def collate(self, items: Sequence[Prepared], device: torch.device | str | None = None) -> torch.Tensor:
        return torch.stack([p.data for p in items]).to(device)  # (B, 3, H, W)

    def encode(self, inputs: torch.Tensor) -> EncoderOutput:
        states = self.encoder(inputs)  # (B, N, De)
        return EncoderOutput(states, None, [states.shape[1]] * states.shape[0])


class AudioModality(Modality):
    name = "audio"
    extensions = AUDIO_EXTENSIONS

    @classmethod
    def build_parts(cls, config: MMConfig, llm_width: int, encoder: FrozenEncoder | None = None) -> ModalityParts:
        return _encoder_and_qformer(config, cls.name, llm_width, encoder)

    def preprocessing(self) -> list[list[Any]]:
        enc = self.encoder
        return [[enc.n_mels, enc.window_frames, enc.sample_rate]]

    def _load(self, item: Any, limits: Limits | None, deadline: float | None) -> torch.Tensor:
        return load_audio(item, self.encoder.sample_rate, max_seconds=_bound(limits, "max_audio_seconds"),
                          max_bytes=_bound(limits, "max_file_bytes"), deadline=deadline)  # (S,)

    def child_options(self) -> dict[str, Any]:
        return {"sample_rate": self.encoder.sample_rate}  # the child's wave is then what `prepare` takes

    def pretrain_input(self, source: Any) -> torch.Tensor:
        enc = self.encoder
        return log_mel(self.prepare_training(source), enc.n_mels, enc.window_frames)  # (M, T)

    def pretrain_tokens(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.encoder.model(inputs).last_hidden_state  # (B, N, De), with grad

    def collate(self, items: Sequence[Prepared], device: torch.device | str | None = None) -> AudioBatch:
        batch = self.encoder.features([p.data for p in items])
        batch.mel = batch.mel.to(device)
        return batch

    def encode(self, inputs: AudioBatch) -> EncoderOutput:
        states, mask = self.encoder.encode(inputs)  # (B, W*N, De), (B, W*N)
        return EncoderOutput(states, mask, list(inputs.tokens))


class VideoModality(Modality):
    """Frames through the image encoder and image Q-Former, then the temporal Q-Former: V slots a clip."""

    name = "video"
    extensions = VIDEO_EXTENSIONS
    single_item = False
    sound_track = AudioModality.name

    @classmethod
    def build_parts(cls, config: MMConfig, llm_width: int, encoder: FrozenEncoder | None = None) -> ModalityParts:
        t_cfg = dataclasses.replace(config.video.temporal, encoder_width=config.image_qformer.hidden_size)
        return ModalityParts(None, TemporalQFormer(t_cfg, config.video.max_frames),
                             Projector(ProjectorConfig(config.projector, t_cfg.hidden_size, llm_width)),
                             qformer_label="temporal Q-Former")

    @property
    def image(self) -> Modality:
        return self.peers[ImageModality.name]

    @property
    def audio(self) -> Modality | None:
        """The peer that reads a clip's sound track; None when the model takes no sound."""
        return self.peers.get(self.sound_track)

    @property
    def encoder(self) -> FrozenEncoder:
        return self.image.encoder

    @property
    def encoder_config(self) -> EncoderConfig:
        return self.image.encoder_config

    @property
    def bridge_width(self) -> int:
        return self.qformer.qformer.config.hidden_size

    def preprocessing(self) -> list[list[Any]]:
        v = self.config.video
        return [["video", v.frames, v.fps, v.max_frames], *self.image.preprocessing()]

    def frames(self, frames: Sequence[Any]) -> torch.Tensor:
        """Decoded frames (PIL images) -> (F, 3, H, W) pixels for the image encoder."""
        return torch.stack([self.encoder.preprocess(f) for f in frames])

    def decode(self, item: Any, limits: Limits = DEFAULT_LIMITS, deadline: float | None = None) -> VideoClip | torch.Tensor:
        """A clip -> `VideoClip` decoded as the model's video config asks; an audio-only file -> its (S,) sound.

        This is the decoding half of `prepare`, the part the server runs in a child process."""
        from encoders.video_io import has_video, load_video

        if not has_video(item, max_bytes=limits.max_file_bytes):
            if self.audio is not None:  # audio-only container: its sound is all there is
                return load_audio(item, self.audio.encoder.sample_rate, max_seconds=limits.max_audio_seconds,
                                  max_bytes=limits.max_file_bytes, deadline=deadline)
            raise InputError(f"{describe_source(item)}: the file has no video track")
        vcfg = self.config.video
        return load_video(item, frames=vcfg.frames, fps=vcfg.fps, max_frames=vcfg.max_frames,
                          audio=self.audio is not None, sample_rate=VIDEO_SAMPLE_RATE,
                          max_seconds=limits.max_video_seconds, max_pixels=limits.max_image_pixels,
                          max_bytes=limits.max_file_bytes, deadline=deadline)

    def child_options(self) -> dict[str, Any]:
        vcfg = self.config.video
        return {"frames": vcfg.frames, "fps": vcfg.fps, "max_frames": vcfg.max_frames,
                "sample_rate": VIDEO_SAMPLE_RATE, "with_audio": self.audio is not None}

    def _load(self, item: Any, limits: Limits | None, deadline: float | None) -> torch.Tensor:
        """A clip -> its (F, 3, H, W) frames alone (its sound is not decoded)."""
        from encoders.video_io import load_video

        vcfg = self.config.video
        clip = load_video(item, frames=vcfg.frames, fps=vcfg.fps, max_frames=vcfg.max_frames, audio=False,
                          max_seconds=_bound(limits, "max_video_seconds"),
                          max_pixels=_bound(limits, "max_image_pixels"), max_bytes=_bound(limits, "max_file_bytes"),
                          deadline=deadline)
        return self.frames(clip.frames)

    def prepare(self, item: Any, limits: Limits = DEFAULT_LIMITS, deadline: float | None = None) -> list[Prepared]:
        """A clip -> [video frames] or [video frames, its sound track]; an audio-only file -> [sound].

        `item` is a path, bytes or file object, or an already decoded `VideoClip` (the server decodes in a
        child process, see `mm.decode_process`). The sound track is kept when the model takes audio and the
        clip has one, and must fit `limits.max_audio_seconds`; frames must fit `limits.max_image_pixels`.
        """
        if isinstance(item, VideoClip):
            clip, name = item, "<VideoClip>"
        else:
            decoded = self.decode(item, limits, deadline)
            if not isinstance(decoded, VideoClip):
                return [self.audio.item(decoded)]
            clip, name = decoded, describe_source(item)
        if not clip.frames:
            raise InputError(f"{name}: the clip has no frames")
        for frame in clip.frames:
            check_pixels(frame.width, frame.height, limits.max_image_pixels, name, "each video frame")
        out = [self.item(self.frames(clip.frames))]
        if self.audio is not None and clip.audio is not None and clip.audio.numel() >= 160:
            seconds = clip.audio.numel() / clip.sample_rate
            check_seconds(seconds, limits.max_audio_seconds, name, "the clip's sound", AUDIO_LIMIT)
            wave = clip.audio if clip.sample_rate == VIDEO_SAMPLE_RATE else load_audio(
                (clip.audio, clip.sample_rate), VIDEO_SAMPLE_RATE)
            out.append(self.audio.item(wave))
        return out

    def collate(self, items: Sequence[Prepared], device: torch.device | str | None = None) -> VideoBatch:
        pixels, _ = pad_and_mask([p.data for p in items])  # (B, F, 3, H, W), missing frames zero
        return VideoBatch(pixels.to(device), [p.data.shape[0] for p in items])

    def encode(self, inputs: VideoBatch) -> EncoderOutput:
        b, f = inputs.pixels.shape[:2]
        states = self.encoder(inputs.pixels.flatten(0, 1))  # (B*F, Nf, De)
        nf = states.shape[1]
        states = states.reshape(b, f * nf, -1)  # (B, F*Nf, De)
        valid = [n * nf for n in inputs.frames]
        mask = torch.arange(f * nf, device=states.device)[None, :] < torch.tensor(valid, device=states.device)[:, None]
        return EncoderOutput(states, mask, valid)

    def bridge(self, states: torch.Tensor, mask: torch.Tensor | None, valid: list[int]) -> list[torch.Tensor]:
        """(B, F*Nf, De) frame tokens -> image Q-Former per frame -> temporal Q-Former -> (V, Dv) per clip."""
        image_q, temporal = self.image.qformer, self.qformer
        nf = self.encoder.num_tokens
        b, n, de = states.shape
        f = n // nf
        frames = states.reshape(b * f, nf, de).to(image_q.query_tokens.dtype)
        tokens = image_q(frames, None)  # (B*F, Q, D)
        tokens = tokens.reshape(b, f, *tokens.shape[1:])  # (B, F, Q, D)
        frame_mask = torch.arange(f, device=states.device)[None, :] < torch.tensor(
            [v // nf for v in valid], device=states.device)[:, None]  # (B, F)
        return list(temporal(tokens, frame_mask))

    def num_slots(self, valid_tokens: int) -> int:
        return self.qformer.num_queries


# The input kinds a model can read, by name; `MMConfig.modalities` says which a model has, in this order.
MODALITY_TYPES: Mapping[str, type[Modality]] = {m.name: m for m in (ImageModality, AudioModality, VideoModality)}
MODALITIES = tuple(MODALITY_TYPES)
