"""A face that lives: blinks, eye darts, brows that follow the voice, emotion offsets, region intensity.

A procedural layer added on top of the model's curves. It never touches
jawOpen or mouthClose (lip aperture stays the model's, so closure on p/b/m
is unchanged), clamps to [0, 1], and is deterministic for a seed. Turned
off (``enabled=False``) the model's output comes back unchanged.

Blinks follow what people do: about 12 per minute at rest and more while
talking (~20), likelier at the start of pauses (phrase boundaries), 100-250 ms
long with a fast close and slower opening, both eyes together with a
little asymmetry. Brows rise on emphasis: local peaks of loudness and pitch
(stressed syllables); the eyes make small saccades between fixations.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .arkit import BROWS, CHEEKS_NOSE, EYES, INDEX, MOUTH
from .curves import BlendshapeCurves
from .features.mel import frame_center, frame_windows

EMOTIONS: dict[str, dict[str, float]] = {
    "neutral": {},
    "happy": {"mouthSmileLeft": 0.45, "mouthSmileRight": 0.45, "cheekSquintLeft": 0.3, "cheekSquintRight": 0.3,
              "eyeSquintLeft": 0.15, "eyeSquintRight": 0.15, "browOuterUpLeft": 0.1, "browOuterUpRight": 0.1},
    "sad": {"mouthFrownLeft": 0.4, "mouthFrownRight": 0.4, "browInnerUp": 0.45, "browDownLeft": 0.1,
            "browDownRight": 0.1, "mouthShrugLower": 0.15, "eyeLookDownLeft": 0.1, "eyeLookDownRight": 0.1},
    "angry": {"browDownLeft": 0.6, "browDownRight": 0.6, "noseSneerLeft": 0.3, "noseSneerRight": 0.3,
              "eyeSquintLeft": 0.25, "eyeSquintRight": 0.25, "mouthStretchLeft": 0.1, "mouthStretchRight": 0.1},
    "surprised": {"browInnerUp": 0.6, "browOuterUpLeft": 0.6, "browOuterUpRight": 0.6, "eyeWideLeft": 0.5,
                  "eyeWideRight": 0.5},
}
PROTECTED = ("jawOpen", "mouthClose")  # lip aperture belongs to the model


@dataclass
class ExpressionConfig:
    enabled: bool = True
    seed: int = 0
    blinks: bool = True
    blink_rate_rest: float = 12.0      # per minute
    blink_rate_speech: float = 19.0
    saccades: bool = True
    brows: bool = True
    brow_gain: float = 0.45
    emotion: str = "neutral"
    emotion_strength: float = 0.6
    intensity: dict = field(default_factory=lambda: {"mouth": 1.0, "brows": 1.0, "eyes": 1.0, "cheeks": 1.0})


def _frame_rms_db(audio: np.ndarray, n: int) -> np.ndarray:
    fr = frame_windows(audio, frame_center(np.arange(n)), 400)
    return 10 * np.log10((fr.astype(np.float64) ** 2).mean(1) + 1e-10)


def _frame_pitch(audio: np.ndarray, n: int) -> np.ndarray:
    """Rough F0 (Hz) per frame by normalised autocorrelation; NaN where unvoiced."""
    fr = frame_windows(audio, frame_center(np.arange(n)), 512)
    fr = fr - fr.mean(1, keepdims=True)
    spec = np.fft.rfft(fr * np.hanning(1024), n=2048, axis=1)
    ac = np.fft.irfft(np.abs(spec) ** 2, axis=1)[:, :400]
    ac /= ac[:, :1] + 1e-12
    lo, hi = 16000 // 400, 16000 // 70
    lag = lo + np.argmax(ac[:, lo:hi], axis=1)
    peak = ac[np.arange(n), lag]
    f0 = 16000.0 / lag
    return np.where(peak > 0.45, f0, np.nan)


def _smooth(x: np.ndarray, frames: int) -> np.ndarray:
    if frames <= 1:
        return x
    k = np.hanning(frames + 2)[1:-1]
    k /= k.sum()
    return np.convolve(np.pad(x, (frames, frames), mode="edge"), k, mode="same")[frames:-frames]


def speech_activity(audio: np.ndarray, n: int) -> np.ndarray:
    """True where someone speaks (energy above the clip's noise floor)."""
    db = _frame_rms_db(audio, n)
    floor = np.percentile(db, 10)
    top = np.percentile(db, 95)
    return _smooth((db > max(floor + 12, top - 35)).astype(float), 5) > 0.5


def blink_track(n: int, fps: float, active: np.ndarray, cfg: ExpressionConfig, rng: np.random.Generator
                ) -> tuple[np.ndarray, np.ndarray]:
    """Left and right eyeBlink curves."""
    left = np.zeros(n)
    right = np.zeros(n)
    t_frames = np.arange(n) / fps
    pause_start = np.zeros(n, bool)
    pause_start[1:] = active[:-1] & ~active[1:]
    last = -10.0
    f = 0
    while f < n:
        rate = cfg.blink_rate_speech if active[f] else cfg.blink_rate_rest
        p = rate / 60.0 / fps
        if pause_start[f]:
            p *= 8.0  # phrase boundaries invite a blink
        t = t_frames[f]
        if t - last > 1.2 and rng.random() < p:
            close = rng.uniform(0.05, 0.08)
            opening = rng.uniform(0.08, 0.17)
            peak = rng.uniform(0.9, 1.0)
            # the fully closed moment lands on a frame, so every blink reaches its peak in the curves
            tt = t_frames - t
            shape = np.where(tt < -close, 0.0,
                             np.where(tt <= 0, np.sin(0.5 * np.pi * (tt + close) / close) ** 2,
                                      np.where(tt < opening, np.cos(0.5 * np.pi * tt / opening) ** 2, 0.0)))
            asym = rng.normal(0.0, 0.04)
            left = np.maximum(left, np.clip(peak + asym, 0, 1) * shape)
            right = np.maximum(right, np.clip(peak - asym, 0, 1) * shape)
            last = t
            f += int(1.2 * fps)
            continue
        f += 1
    return left, right


def gaze_track(n: int, fps: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Horizontal and vertical gaze (-1..1 of a small range) with saccades between fixations."""
    x = np.zeros(n)
    y = np.zeros(n)
    f = 0
    cx, cy = 0.0, 0.0
    while f < n:
        hold = int(rng.uniform(0.6, 2.8) * fps)
        cx = float(np.clip(rng.normal(0.0, 0.45), -1, 1)) if rng.random() < 0.7 else 0.0
        cy = float(np.clip(rng.normal(-0.05, 0.3), -1, 1))
        x[f:f + hold] = cx
        y[f:f + hold] = cy
        f += hold
    # a saccade takes ~40 ms: one frame of transition
    return _smooth(x, 2), _smooth(y, 2)


def emphasis(audio: np.ndarray, n: int, active: np.ndarray) -> np.ndarray:
    """0..1 where a syllable stands out in loudness and pitch from its neighbourhood."""
    db = _frame_rms_db(audio, n)
    f0 = _frame_pitch(audio, n)
    semis = 12 * np.log2(np.where(np.isfinite(f0), f0, np.nan) / 100.0)
    voiced = np.isfinite(semis) & active
    if voiced.sum() < 5:
        return np.zeros(n)
    from scipy.signal import medfilt

    base_p = np.nanmedian(semis[voiced])
    semis = medfilt(np.where(voiced, semis, base_p), 7)          # drops octave errors and single-frame jumps
    pz = np.clip(np.where(voiced, (semis - base_p) / 3.0, 0.0), -2, 2)  # 3 semitones above the median = 1
    level = float(np.median(db[active])) if active.any() else float(np.median(db))
    base_l = _smooth(np.where(active, db, level), int(1.5 * 30))  # pauses count as ordinary level
    lz = np.where(active, (db - base_l) / 6.0, 0.0)              # 6 dB above the running level = 1
    # pitch accents raise the brows; loudness alone (every syllable nucleus) barely does
    e = np.clip(0.85 * pz + 0.15 * lz - 0.5, 0.0, None)
    return np.clip(_smooth(e, 6), 0.0, 1.0)


def apply_expression(curves: BlendshapeCurves, audio: np.ndarray, cfg: ExpressionConfig = ExpressionConfig()
                     ) -> BlendshapeCurves:
    """Add blinks, gaze, brows and the emotion offset to ``curves`` (16 kHz ``audio`` of the same clip)."""
    if cfg.emotion not in EMOTIONS:
        raise ValueError(f"unknown emotion {cfg.emotion!r}; use one of {', '.join(EMOTIONS)}")
    v = curves.values.astype(np.float64).copy()
    fps = curves.fps
    # the emotion offset is the user's explicit choice: it applies with or without the procedural layer
    for name, value in EMOTIONS[cfg.emotion].items():
        v[:, INDEX[name]] += cfg.emotion_strength * value
    if cfg.enabled:
        v = _procedural(v, fps, audio, cfg)
    # region intensity scales jawOpen and mouthClose together, so a sealed lip stays sealed
    for region, names in (("mouth", MOUTH), ("brows", BROWS), ("eyes", EYES), ("cheeks", CHEEKS_NOSE)):
        gain = float(cfg.intensity.get(region, 1.0))
        if gain != 1.0:
            v[:, [INDEX[m] for m in names]] *= gain
    return BlendshapeCurves(np.clip(v, 0.0, 1.0).astype(np.float32), fps, curves.names)


def _procedural(v: np.ndarray, fps: float, audio: np.ndarray, cfg: ExpressionConfig) -> np.ndarray:
    n = len(v)
    jaw_close = v[:, [INDEX[p] for p in PROTECTED]].copy()
    rng = np.random.default_rng(cfg.seed)
    active = speech_activity(audio, n) if len(audio) else np.zeros(n, bool)
    if cfg.blinks:
        bl, br = blink_track(n, fps, active, cfg, rng)
        v[:, INDEX["eyeBlinkLeft"]] = np.maximum(v[:, INDEX["eyeBlinkLeft"]], bl)
        v[:, INDEX["eyeBlinkRight"]] = np.maximum(v[:, INDEX["eyeBlinkRight"]], br)
    if cfg.saccades:
        gx, gy = gaze_track(n, fps, rng)
        amp = 0.35
        v[:, INDEX["eyeLookOutLeft"]] += amp * np.clip(gx, 0, None)
        v[:, INDEX["eyeLookInRight"]] += amp * np.clip(gx, 0, None)
        v[:, INDEX["eyeLookInLeft"]] += amp * np.clip(-gx, 0, None)
        v[:, INDEX["eyeLookOutRight"]] += amp * np.clip(-gx, 0, None)
        for side in ("Left", "Right"):
            v[:, INDEX["eyeLookUp" + side]] += amp * np.clip(gy, 0, None)
            v[:, INDEX["eyeLookDown" + side]] += amp * np.clip(-gy, 0, None)
    if cfg.brows and len(audio):
        e = emphasis(audio, n, active)
        v[:, INDEX["browInnerUp"]] += cfg.brow_gain * e
        v[:, INDEX["browOuterUpLeft"]] += 0.7 * cfg.brow_gain * e
        v[:, INDEX["browOuterUpRight"]] += 0.7 * cfg.brow_gain * e
    # eyes squint and cheeks lift with a smile
    smile = 0.5 * (v[:, INDEX["mouthSmileLeft"]] + v[:, INDEX["mouthSmileRight"]])
    for side in ("Left", "Right"):
        v[:, INDEX["eyeSquint" + side]] = np.maximum(v[:, INDEX["eyeSquint" + side]], 0.35 * smile)
        v[:, INDEX["cheekSquint" + side]] = np.maximum(v[:, INDEX["cheekSquint" + side]], 0.45 * smile)
    v[:, [INDEX[p] for p in PROTECTED]] = jaw_close
    return v
