"""Log-mel stream: 80 bands, n_fft 1024, fmin 80 Hz, fmax 8000 Hz, one frame per output frame.

Frame ``s`` is the Hann-windowed 1024-sample stretch centred on sample
``round(s * 16000 / fps)``. At 30 fps that is a hop of 533⅓ samples: the
nominal hop of 533 is kept on average, but frames never drift from the
video grid (a fixed 533 hop drifts 2.3 s over an hour of audio).
Samples outside the recording are silence (zeros).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from functools import lru_cache

import numpy as np

LOG_FLOOR = 1e-6  # added to mel power before the log; digital silence maps to log(1e-6)


@dataclass(frozen=True)
class MelConfig:
    sample_rate: int = 16000
    fps: int = 30
    n_fft: int = 1024
    hop_length: int = 533  # nominal; frames are placed on the exact fps grid
    n_mels: int = 80
    fmin: float = 80.0
    fmax: float = 8000.0

    def to_dict(self) -> dict:
        return asdict(self)


def frame_center(s: np.ndarray | int, cfg: MelConfig = MelConfig()) -> np.ndarray:
    """Centre sample of frame ``s``: round(s * rate / fps), exact in integers."""
    s = np.asarray(s, dtype=np.int64)
    num = 2 * s * cfg.sample_rate + cfg.fps
    return num // (2 * cfg.fps)


def frame_windows(buffer: np.ndarray, centres: np.ndarray, half: int, buffer_start: int = 0) -> np.ndarray:
    """(len(centres), 2*half) samples ``centre-half .. centre+half-1`` around each absolute centre sample.

    ``buffer`` holds samples from absolute index ``buffer_start``; anything outside it is silence.
    """
    idx = np.asarray(centres, dtype=np.int64)[:, None] - buffer_start + np.arange(-half, half)[None, :]
    if len(buffer) == 0:
        return np.zeros(idx.shape, np.float32)
    valid = (idx >= 0) & (idx < len(buffer))
    return np.where(valid, buffer[np.clip(idx, 0, len(buffer) - 1)], 0.0)


def _hz_to_mel(f):
    return 2595.0 * np.log10(1.0 + np.asarray(f, dtype=np.float64) / 700.0)


def _mel_to_hz(m):
    return 700.0 * (10.0 ** (np.asarray(m, dtype=np.float64) / 2595.0) - 1.0)


def band_edges(cfg: MelConfig = MelConfig()) -> np.ndarray:
    """(n_mels + 2,) HTK-mel band edges in Hz: band b rises from edge b, peaks at b+1, falls to b+2."""
    return _mel_to_hz(np.linspace(_hz_to_mel(cfg.fmin), _hz_to_mel(cfg.fmax), cfg.n_mels + 2))


@lru_cache(maxsize=4)
def mel_filterbank(cfg: MelConfig = MelConfig()) -> np.ndarray:
    """(n_mels, n_fft//2+1) triangular HTK-mel filters, each with unit peak."""
    freqs = np.linspace(0.0, cfg.sample_rate / 2, cfg.n_fft // 2 + 1)
    edges = band_edges(cfg)
    lower, centre, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rising = (freqs[None, :] - lower) / (centre - lower)
    falling = (upper - freqs[None, :]) / (upper - centre)
    fb = np.clip(np.minimum(rising, falling), 0.0, None)
    return fb.astype(np.float32)


@lru_cache(maxsize=4)
def _window(n_fft: int) -> np.ndarray:
    return (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)).astype(np.float32)


def log_mel(buffer: np.ndarray, buffer_start: int, s0: int, s1: int, cfg: MelConfig = MelConfig(),
            block: int = 512) -> np.ndarray:
    """Log-mel frames ``s0 .. s1-1`` as a (s1-s0, n_mels) float32 array.

    ``buffer`` holds 16 kHz samples starting at absolute sample ``buffer_start``;
    samples outside it are taken as silence, so the caller passes a buffer
    that covers every sample of the recording the frames touch.
    """
    n = max(0, s1 - s0)
    out = np.empty((n, cfg.n_mels), dtype=np.float32)
    fb = mel_filterbank(cfg).T
    win = _window(cfg.n_fft)
    half = cfg.n_fft // 2
    for i in range(0, n, block):
        s = np.arange(s0 + i, min(s1, s0 + i + block))
        frames = frame_windows(buffer, frame_center(s, cfg), half, buffer_start)
        spec = np.fft.rfft(frames.astype(np.float32) * win, axis=1)
        power = (spec.real ** 2 + spec.imag ** 2).astype(np.float32)
        out[i:i + len(s)] = np.log(power @ fb + LOG_FLOOR)
    return out


def num_frames(num_samples: int, fps: int = 30, sample_rate: int = 16000) -> int:
    """Output frames for a recording: one per 1/fps s, covering every sample (ceil)."""
    return max(1, -(-num_samples * fps // sample_rate))
