"""Timed phones -> ARKit curves: poses per phone class blended with dominance functions.

Cohen-Massaro style: every phone pulls the face towards its class pose
with a weight (dominance) that is flat over the phone and decays
exponentially outside it; the curves are the weighted mean of all poses.
Lips lead the sound (``anticipation``); decay is slower before a phone
(anticipatory coarticulation) than after it (carry-over), and shorter when
speech is fast. Two rules no blend guarantees are enforced afterwards:
every bilabial reaches a full lip seal (mouthClose = jawOpen) for at least
one frame, however short it is, and the face rests in pauses.

The jaw follows the voice: each vowel's opening is scaled by the
loudness of its stretch of audio relative to the utterance's median vowel,
and by its stress where the source marks it (Piper).
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

import numpy as np

from ..arkit import ARKIT_NAMES, INDEX, lip_aperture
from ..curves import BlendshapeCurves
from .inventory import CLASSES, VOWELS, Phone


@dataclass(frozen=True)
class TeacherConfig:
    fps: float = 30.0
    anticipation: float = 0.05      # s the lips lead the sound
    tau_before: float = 0.055       # s, dominance decay before a phone
    tau_after: float = 0.03         # s, dominance decay after a phone
    onset_lead: float = 0.03        # s, lead and decay of the first phone after a pause (quick start from rest)
    closure_ramp: float = 0.05      # s, lip seal ramps in/out
    min_closure_half: float = 0.0175  # s, a seal lasts at least 35 ms (one frame at 30 fps)
    loudness_db_per_unit: float = 18.0
    loudness_range: tuple[float, float] = (0.55, 1.4)
    stress_gain: tuple[float, float] = (1.25, 1.1)  # jaw gain of primary / secondary stressed vowels


@lru_cache(maxsize=1)
def pose_table() -> tuple[np.ndarray, np.ndarray]:
    """(classes, 52) poses and (classes,) dominances from ``poses.toml``."""
    text = resources.files("a2f_core.teacher").joinpath("poses.toml").read_text(encoding="utf-8")
    table = tomllib.loads(text)["classes"]
    poses = np.zeros((len(CLASSES), len(ARKIT_NAMES)), np.float32)
    dom = np.zeros(len(CLASSES), np.float32)
    for k, cls in enumerate(CLASSES):
        entry = table[cls]
        dom[k] = entry["dominance"]
        for name, value in entry.get("pose", {}).items():
            poses[k, INDEX[name]] = value
    return poses, dom


def _rms_db(audio: np.ndarray, rate: int, start: float, end: float) -> float:
    a = audio[int(start * rate):max(int(end * rate), int(start * rate) + 1)]
    return float(10 * np.log10(np.mean(a.astype(np.float64) ** 2) + 1e-10)) if len(a) else -100.0


def phones_to_curves(phones: list[Phone], n_frames: int, audio: np.ndarray | None = None, rate: int = 16000,
                     cfg: TeacherConfig = TeacherConfig()) -> BlendshapeCurves:
    """Blend class poses of ``phones`` into ``n_frames`` frames at ``cfg.fps``."""
    poses, dom = pose_table()
    cls_index = {c: i for i, c in enumerate(CLASSES)}
    t = np.arange(n_frames) / cfg.fps
    speech = [p for p in phones if p.cls != "sil"]
    med = float(np.median([p.dur for p in speech])) if speech else 0.08
    rate_scale = float(np.clip(med / 0.08, 0.6, 1.2))   # fast speech: shorter reach of each phone
    tb, ta = cfg.tau_before * rate_scale, cfg.tau_after * rate_scale
    gains = np.ones(len(phones), np.float32)
    if audio is not None and len(audio):
        vowel_db = {i: _rms_db(audio, rate, p.start, p.end) for i, p in enumerate(phones) if p.cls in VOWELS}
        if vowel_db:
            ref = float(np.median(list(vowel_db.values())))
            lo, hi = cfg.loudness_range
            for i, db in vowel_db.items():
                gains[i] = np.clip(1.0 + (db - ref) / cfg.loudness_db_per_unit, lo, hi)
    for i, p in enumerate(phones):       # sources that mark stress (Piper): stressed syllables open wider
        if p.cls in VOWELS and p.stress in (1, 2):
            gains[i] *= cfg.stress_gain[p.stress - 1]
    num = np.zeros((n_frames, len(ARKIT_NAMES)), np.float64)
    den = np.full(n_frames, 1e-9)
    jaw_like = [INDEX[n] for n in ("jawOpen", "mouthLowerDownLeft", "mouthLowerDownRight")]
    pause_end = -1.0
    for i, p in enumerate(phones):
        k = cls_index[p.cls]
        if p.cls == "sil" and p.dur >= 0.15:
            pause_end = p.end
        # speech starting from rest moves quickly: the first 150 ms after a pause anticipate less
        after_pause = p.cls != "sil" and 0.0 <= p.start - pause_end < 0.15
        lead = 0.0 if p.cls == "sil" else (cfg.onset_lead if after_pause else cfg.anticipation)
        before = cfg.onset_lead if after_pause else tb
        s, e = p.start - lead, p.end - lead
        d = np.where(t < s, np.exp(-np.maximum(s - t, 0.0) / before),
                     np.where(t > e, np.exp(-np.maximum(t - e, 0.0) / ta), 1.0))
        w = dom[k] * d
        pose = poses[k].astype(np.float64).copy()
        pose[jaw_like] *= gains[i]
        num += w[:, None] * pose[None, :]
        den += w
    out = num / den[:, None]
    # lips seal on every bilabial: mouthClose rises to jawOpen at the closure centre
    jaw, close = INDEX["jawOpen"], INDEX["mouthClose"]
    seal = np.zeros(n_frames)
    for p in phones:
        if p.cls != "bilabial":
            continue
        c = (p.start + p.end) / 2 - 0.3 * cfg.anticipation
        half = max(p.dur / 2 - 0.01, cfg.min_closure_half)
        dist = np.abs(t - c) - half
        env = np.where(dist <= 0, 1.0, np.where(dist < cfg.closure_ramp,
                                                 0.5 + 0.5 * np.cos(np.pi * dist / cfg.closure_ramp), 0.0))
        seal = np.maximum(seal, env)
    out[:, close] = np.maximum(out[:, close], seal * out[:, jaw])
    for name in ("mouthPressLeft", "mouthPressRight"):
        out[:, INDEX[name]] = np.maximum(out[:, INDEX[name]], 0.25 * seal)
    return BlendshapeCurves(np.clip(out, 0.0, 1.0).astype(np.float32), cfg.fps, ARKIT_NAMES)


def aperture(curves: BlendshapeCurves) -> np.ndarray:
    """Lip aperture = clip(jawOpen - mouthClose, 0, 1) (ARKit semantics)."""
    return lip_aperture(curves.values)
