"""Channel augmentation of cached log-mel stretches: microphone colour and speaker size.

Teacher speech comes from a handful of synthesizers through one clean channel; real recordings
come through every microphone, room and vocal tract there is. Measured on the shipped model's
normalisation (z-scores of the training log-mel), speech frames of the real dev clips sit 0.1-0.5
below the synthetic ones and tilt differently across bands (up to 0.4 z, ~10 dB, between the low
and the high bands), where the synthetic voices are flat. The audio augmentation of ``teach build``
varies gain, noise, reverb and bandwidth but never the spectral balance or the formant scale, and
the model reads each band through its own embedding, so it can tie what it does to one voice's
spectrum. This module changes both on the features the trainer already has cached, per stretch:

* **colour**: a random spectral tilt plus a smooth random equaliser (three cosines over the mel
  axis) and a gain, added to the log-mel bands (a linear filter multiplies each band's power);
* **speaker size**: vocal tract length perturbation, the frequency axis scaled by a factor around 1
  (a shorter tract moves every formant up), by reading each band at its warped centre frequency.

Bands without power (digital silence) keep none, so silence is still silence. One draw holds
for a whole stretch: a recording has one channel and one speaker. The eGeMAPS stream is left alone
(its 20 s functionals are the emotion stream's, not the lips').
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..features.mel import LOG_FLOOR, MelConfig, _hz_to_mel, band_edges

DB = np.log(10.0) / 10.0      # one decibel of power in natural-log units


@dataclass(frozen=True)
class SpecAugConfig:
    tilt_db: float = 10.0       # tilt drawn in +-tilt_db from the lowest to the highest band
    eq_db: float = 4.0          # amplitude of each of the three smooth equaliser cosines
    gain_db: float = 6.0        # gain drawn in +-gain_db
    warp: float = 0.12          # frequency scale drawn in [1 - warp, 1 + warp]


def warp_bands(mel: np.ndarray, factor: float, cfg: MelConfig = MelConfig()) -> np.ndarray:
    """(T, n_mels) log-mel as if every frequency were ``factor`` times higher (VTLP).

    Band b of the result reads the input at frequency centre_b / factor, linearly interpolated on
    the mel axis; outside the input's range the edge band is repeated. ``factor`` 1 returns the input.
    """
    if factor == 1.0:
        return mel
    centres = band_edges(cfg)[1:-1]
    pos = np.interp(_hz_to_mel(centres / factor), _hz_to_mel(centres),
                    np.arange(len(centres)))                 # fractional band index, clamped to the edges
    i0 = np.floor(pos).astype(int)
    i1 = np.minimum(i0 + 1, len(centres) - 1)
    f = (pos - i0).astype(mel.dtype)
    return mel[:, i0] * (1 - f) + mel[:, i1] * f


def colour_curve(rng: np.random.Generator, n: int, cfg: SpecAugConfig = SpecAugConfig()) -> np.ndarray:
    """(n,) log-power offsets per band: gain + tilt + three smooth cosines over the band axis."""
    u = np.linspace(-0.5, 0.5, n)
    curve = rng.uniform(-cfg.gain_db, cfg.gain_db) + rng.uniform(-cfg.tilt_db, cfg.tilt_db) * u
    for k in (1, 2, 3):
        curve = curve + rng.uniform(-cfg.eq_db, cfg.eq_db) * np.cos(np.pi * k * (u + 0.5) + rng.uniform(0, np.pi))
    return (curve * DB).astype(np.float32)


def augment_mel(mel: np.ndarray, rng: np.random.Generator, cfg: SpecAugConfig = SpecAugConfig()) -> np.ndarray:
    """One random colour and speaker size applied to a (T, n_mels) raw log-mel stretch (a new array).

    The colour scales each band's power (the log-mel is ``log(power + LOG_FLOOR)``), so a band with
    no power (digital silence) keeps none.
    """
    factor = float(rng.uniform(1 - cfg.warp, 1 + cfg.warp))
    power = np.maximum(np.exp(warp_bands(mel, factor).astype(np.float64)) - LOG_FLOOR, 0.0)
    gain = np.exp(colour_curve(rng, mel.shape[1], cfg).astype(np.float64))
    return np.log(power * gain + LOG_FLOOR).astype(np.float32)
