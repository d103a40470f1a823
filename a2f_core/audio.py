"""Audio in: any file libsndfile reads, or an array, as 16 kHz mono float32.

Files are decoded in blocks and resampled with soxr's streaming resampler,
so a one-hour recording never has to sit in memory at its original rate.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator, Union

import numpy as np

from .errors import AudioError

SAMPLE_RATE = 16000
AudioSource = Union[str, os.PathLike, np.ndarray]


def _check_finite(block: np.ndarray, where: str) -> None:
    if not np.isfinite(block).all():
        raise AudioError(f"{where}: audio contains NaN or infinite samples; re-export it as plain PCM")


def _to_mono(block: np.ndarray) -> np.ndarray:
    if block.ndim == 1:
        return block
    if block.ndim == 2:
        return block.mean(axis=1)
    raise AudioError(f"audio array must be 1-D (samples) or 2-D (samples, channels), got shape {block.shape}")


def _open(path: Path):
    import soundfile as sf

    if not path.exists():
        raise AudioError(f"{path}: no such file")
    if path.is_dir():
        raise AudioError(f"{path}: is a directory, not an audio file")
    if path.stat().st_size == 0:
        raise AudioError(f"{path}: file is empty (0 bytes)")
    try:
        return sf.SoundFile(str(path))
    except (sf.LibsndfileError, RuntimeError, TypeError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise AudioError(f"{path}: not a readable audio file ({reason})") from None


def audio_info(path: AudioSource) -> tuple[float, int, int]:
    """(duration in seconds, sample rate, channels) of an audio file, without decoding it."""
    with _open(Path(path)) as f:
        return f.frames / f.samplerate, f.samplerate, f.channels


def iter_audio(source: AudioSource, rate: int | None = None, block_seconds: float = 30.0) -> Iterator[np.ndarray]:
    """Yield consecutive 16 kHz mono float32 blocks of ``source``.

    ``source`` is a path or an array (then ``rate`` gives its sample rate).
    Raises :class:`AudioError` with a one-line message on unusable input;
    silence is valid.
    """
    import soxr

    if isinstance(source, np.ndarray):
        if rate is None:
            raise AudioError("an audio array needs its sample rate (rate=...)")
        data = _to_mono(np.asarray(source, dtype=np.float32))
        _check_finite(data, "audio array")
        if data.size == 0:
            raise AudioError("audio array is empty (zero samples)")
        if rate != SAMPLE_RATE:
            data = soxr.resample(data, rate, SAMPLE_RATE, quality="HQ").astype(np.float32)
        step = int(block_seconds * SAMPLE_RATE)
        for i in range(0, len(data), step):
            yield data[i:i + step]
        return

    path = Path(source)
    with _open(path) as f:
        if f.frames == 0:
            raise AudioError(f"{path}: audio has zero length")
        if f.samplerate < 4000:
            raise AudioError(f"{path}: sample rate {f.samplerate} Hz is too low for speech (need >= 4000 Hz)")
        resampler = None
        if f.samplerate != SAMPLE_RATE:
            resampler = soxr.ResampleStream(f.samplerate, SAMPLE_RATE, 1, dtype="float32", quality="HQ")
        block = max(1, int(block_seconds * f.samplerate))
        got = 0
        try:
            for raw in f.blocks(blocksize=block, dtype="float32", always_2d=True):
                got += len(raw)
                mono = _to_mono(raw).astype(np.float32)
                _check_finite(mono, str(path))
                if resampler is not None:
                    last = got >= f.frames
                    mono = resampler.resample_chunk(mono, last=last)
                if len(mono):
                    yield mono
        except AudioError:
            raise
        except Exception as exc:  # libsndfile errors mid-file: truncated or corrupt data
            raise AudioError(f"{path}: audio data is corrupt or truncated ({str(exc).splitlines()[0]})") from None
        if got == 0:
            raise AudioError(f"{path}: audio has zero length")


def load_audio(source: AudioSource, rate: int | None = None) -> np.ndarray:
    """Whole ``source`` as one 16 kHz mono float32 array.

    >>> import numpy as np
    >>> load_audio(np.zeros((48000, 2)), rate=48000).shape
    (16000,)
    """
    blocks = list(iter_audio(source, rate))
    out = np.concatenate(blocks) if blocks else np.zeros(0, np.float32)
    if out.size == 0:
        raise AudioError("audio has zero length")
    return out
