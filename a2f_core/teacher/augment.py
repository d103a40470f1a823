"""Audio augmentation that bridges synthetic -> real speech: gain, noise, reverb, phone band.

Applied to the audio only; the curves stay those of the clean utterance.
Tempo and pitch variety comes from the synthesizers' own rate and pitch
settings, which keep phone timings exact.
"""

from __future__ import annotations

import numpy as np

RATE = 16000


def add_noise(x: np.ndarray, rng: np.random.Generator, snr_db: float) -> np.ndarray:
    noise = rng.standard_normal(len(x))
    if rng.random() < 0.5:  # pink-ish: integrate white noise a little
        from scipy.signal import lfilter

        noise = lfilter([1.0], [1.0, -0.95], noise)
    p_sig = np.mean(x.astype(np.float64) ** 2) + 1e-12
    p_noise = np.mean(noise ** 2) + 1e-12
    return (x + noise * np.sqrt(p_sig / p_noise / 10 ** (snr_db / 10))).astype(np.float32)


def add_reverb(x: np.ndarray, rng: np.random.Generator, rt60: float, wet: float) -> np.ndarray:
    from scipy.signal import fftconvolve

    n = int(rt60 * RATE)
    t = np.arange(n) / RATE
    ir = rng.standard_normal(n) * np.exp(-6.9 * t / rt60)
    ir[0] = 0.0
    ir /= np.sqrt(np.sum(ir ** 2)) + 1e-12
    rev = fftconvolve(x, ir)[: len(x)]
    return ((1 - wet) * x + wet * rev).astype(np.float32)


def phone_band(x: np.ndarray) -> np.ndarray:
    """8 kHz telephone audio: down to 8 kHz and back (content above 4 kHz is gone)."""
    import soxr

    y = soxr.resample(soxr.resample(x, RATE, 8000), 8000, RATE)
    out = np.zeros_like(x)
    out[: min(len(x), len(y))] = y[: len(x)]
    return out


def augment(x: np.ndarray, rng: np.random.Generator, prob: float = 0.7) -> tuple[np.ndarray, dict]:
    """Random chain of augmentations; returns the audio and what was done."""
    done: dict = {}
    if rng.random() >= prob:
        return x, done
    if rng.random() < 0.35:
        rt60 = float(rng.uniform(0.15, 0.8))
        wet = float(rng.uniform(0.2, 0.6))
        x = add_reverb(x, rng, rt60, wet)
        done["reverb"] = [round(rt60, 2), round(wet, 2)]
    if rng.random() < 0.25:
        x = phone_band(x)
        done["phone_band"] = True
    if rng.random() < 0.5:
        snr = float(rng.uniform(5, 35))
        x = add_noise(x, rng, snr)
        done["snr_db"] = round(snr, 1)
    gain = float(rng.uniform(-18, 6))
    x = x * 10 ** (gain / 20)
    done["gain_db"] = round(gain, 1)
    peak = float(np.abs(x).max()) if len(x) else 0.0
    if peak > 0.999:
        if rng.random() < 0.3:  # sometimes keep the clipping, as real recordings do
            x = np.clip(x, -1.0, 1.0)
            done["clipped"] = True
        else:
            x = x / peak * 0.98
    return x.astype(np.float32), done
