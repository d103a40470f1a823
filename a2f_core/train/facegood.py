"""FACEGOOD real Mandarin mouth capture -> ARKit channels.

FACEGOOD's own table (``arkit_mapping.csv`` in the data folder) maps their
116-channel rig to ARKit; only mouth channels carry motion. Used here:

| ARKit | FACEGOOD channel(s) | note |
|---|---|---|
| jawOpen | mouth_stretch_c | their jaw drop |
| mouthFunnel | max(mouth_funnel_*) | |
| mouthPucker | max(mouth_pucker_l, mouth_pucker_r) | |
| mouthSmileLeft/Right | mouth_lipCornerPull_l/r | |
| mouthStretchLeft/Right | mouth_lipStretch_l/r | |
| mouthRollLower/Upper | max(mouth_suck_d*) / max(mouth_suck_u*) | |
| mouthShrugLower/Upper | mouth_chinRaise_d/u | |
| mouthPressLeft/Right | mouth_press_l/r | |
| mouthLowerDownLeft/Right | mouth_lowerLipDepress_l/r | |
| mouthUpperUpLeft/Right | mouth_upperLipRaise_l/r | |

``mouthClose`` is always 0 in these labels (their rig closes the lips by
*not* opening the jaw), so it is masked out of the loss; eyes and brows
are not captured and masked out too.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..arkit import ARKIT_NAMES, INDEX
from .data import TrainItem

MAPPING = {
    "jawOpen": ["mouth_stretch_c"],
    "mouthFunnel": ["mouth_funnel_dl", "mouth_funnel_dr", "mouth_funnel_ul", "mouth_funnel_ur"],
    "mouthPucker": ["mouth_pucker_l", "mouth_pucker_r"],
    "mouthSmileLeft": ["mouth_lipCornerPull_l"], "mouthSmileRight": ["mouth_lipCornerPull_r"],
    "mouthStretchLeft": ["mouth_lipStretch_l"], "mouthStretchRight": ["mouth_lipStretch_r"],
    "mouthRollLower": ["mouth_suck_dl", "mouth_suck_dr"], "mouthRollUpper": ["mouth_suck_ul", "mouth_suck_ur"],
    "mouthShrugLower": ["mouth_chinRaise_d"], "mouthShrugUpper": ["mouth_chinRaise_u"],
    "mouthPressLeft": ["mouth_press_l"], "mouthPressRight": ["mouth_press_r"],
    "mouthLowerDownLeft": ["mouth_lowerLipDepress_l"], "mouthLowerDownRight": ["mouth_lowerLipDepress_r"],
    "mouthUpperUpLeft": ["mouth_upperLipRaise_l"], "mouthUpperUpRight": ["mouth_upperLipRaise_r"],
}
CLIPS = ("1114_2_01", "1114_2_02", "1114_2_03", "1114_2_04", "1114_3_15")
DEV_CLIPS = ("1114_2_04", "1114_3_15")   # held apart for evaluation, never trained on


def column_names(folder: Path) -> list[str]:
    import warnings

    with warnings.catch_warnings():   # the name list is a Python-2 pickle: numpy says so on every load
        warnings.filterwarnings("ignore", message="Reading `.npy` or `.npz` file required additional header",
                                category=UserWarning)
        return [str(n) for n in np.load(folder / "shirley_1015_bs_name.npy", allow_pickle=True)]


def to_arkit(labels: np.ndarray, names: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(T, 116) FACEGOOD labels -> (T, 52) ARKit values and the (52,) mask of mapped channels."""
    col = {n: i for i, n in enumerate(names)}
    out = np.zeros((len(labels), len(ARKIT_NAMES)), np.float32)
    mask = np.zeros(len(ARKIT_NAMES), np.float32)
    for arkit, sources in MAPPING.items():
        idx = [col[s] for s in sources if s in col]
        if idx:
            out[:, INDEX[arkit]] = np.clip(labels[:, idx].max(axis=1), 0, 1)
            mask[INDEX[arkit]] = 1.0
    return out, mask


def keep_channels(items: list[TrainItem], names) -> list[TrainItem]:
    """The items with every channel but ``names`` masked out of the loss (e.g. the capture's jaw alone).
    A name the items do not supervise is an error."""
    from dataclasses import replace

    keep = np.zeros(len(ARKIT_NAMES), np.float32)
    for n in names:
        if n not in INDEX:
            raise ValueError(f"{n!r} is not an ARKit blendshape")
        if items and not all(it.mask[INDEX[n]] for it in items):
            raise ValueError(f"{n!r} is not among the FACEGOOD channels (see `teach facegood`)")
        keep[INDEX[n]] = 1.0
    return [replace(it, mask=it.mask * keep) for it in items]


def load_facegood(folder: str | Path, clips=CLIPS, weight: float = 1.0) -> list[TrainItem]:
    folder = Path(folder)
    names = column_names(folder)
    items = []
    for clip in clips:
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            labels = np.load(folder / f"bs_value_{clip}.npy", allow_pickle=True)
        values, mask = to_arkit(np.asarray(labels, np.float64), names)
        items.append(TrainItem(str(folder / f"{clip}.wav"), values, mask, weight, "zh", "facegood", {"id": clip}))
    return items


def mapping_report(folder: str | Path, clips=CLIPS) -> list[dict]:
    """Per mapped ARKit channel: its FACEGOOD source, mean, share of frames active (> 0.05) and the
    Pearson r of the channel with the clip's loudness envelope (all clips pooled), the check that a
    mapping moves with speech at all (jaw-like channels should correlate, lip shapes less)."""
    from ..audio import load_audio
    from ..eval import pearson, rms_baseline

    folder = Path(folder)
    names = column_names(folder)
    vals, loud = [], []
    for item in load_facegood(folder, clips):
        audio = load_audio(item.audio)
        n = min(len(item.target), int(np.ceil(len(audio) * 30 / 16000)))
        vals.append(item.target[:n])
        loud.append(rms_baseline(audio, n).values[:, INDEX["jawOpen"]])
    v, e = np.concatenate(vals), np.concatenate(loud)
    mask = to_arkit(np.zeros((1, len(names))), names)[1]
    out = []
    for arkit, sources in MAPPING.items():
        k = INDEX[arkit]
        if not mask[k]:
            continue
        col = v[:, k]
        out.append({"arkit": arkit, "facegood": "+".join(sources), "mean": round(float(col.mean()), 3),
                    "active": round(float((col > 0.05).mean()), 3),
                    "r_loudness": round(pearson(col, e), 3) if col.std() > 0 else None})
    return out


def _holds(path: Path, audio: np.ndarray) -> bool:
    """Whether the wav at ``path`` holds exactly these 16 kHz samples. Samples, not bytes, are compared:
    libsndfile puts the time of writing in a float wav's PEAK chunk, so the same audio written a second
    later differs in its header."""
    import soundfile as sf

    from ..audio import SAMPLE_RATE

    try:
        old, rate = sf.read(path, dtype="float32")
    except (OSError, RuntimeError):   # missing or unreadable: write it again
        return False
    return rate == SAMPLE_RATE and old.shape == audio.shape and np.array_equal(old, audio)


def dense_variants(items: list[TrainItem], folder: str | Path, n: int, seed: int = 0,
                   speed: tuple[float, float] = (0.9, 1.2), pause: tuple[float, float] = (0.1, 0.3),
                   ) -> list[TrainItem]:
    """``n`` denser copies of each FACEGOOD clip: pauses cut short, the whole clip sped up or slowed down.

    The training captures are words read one at a time, over half of each clip silence; conversational
    and read-aloud speech runs syllable into syllable. Each copy shortens every pause to a random
    ``pause`` length (seconds) and plays the result at a random ``speed`` (resampled, so pitch moves with
    it, as in Ko et al.'s speed perturbation); the curves are cut and stretched with the audio. Cuts fall
    on 100 ms blocks (3 frames, 1600 samples), inside pauses only: blocks where every mapped channel stays
    below 0.001 and the audio is 40 dB below the clip's loudest block. The copies depend on ``seed`` and
    the clip alone (not on the training seed), so runs share them and their cached features; they are
    written under ``folder`` as 16 kHz wavs, their curves as long as their audio.
    """
    import os

    import soundfile as sf
    import soxr

    from ..audio import SAMPLE_RATE, load_audio
    from ..curves import BlendshapeCurves

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    block, fpb = SAMPLE_RATE // 10, 3   # 100 ms: 1600 samples, 3 frames
    out = []
    for item in items:
        clip = item.meta.get("id", Path(item.audio).stem)
        audio = load_audio(item.audio)
        nb = min(len(audio) // block, len(item.target) // fpb)
        rms = np.sqrt(np.mean(audio[: nb * block].reshape(nb, block).astype(np.float64) ** 2, axis=1) + 1e-12)
        still = item.target[: nb * fpb].reshape(nb, fpb, -1).max(axis=(1, 2)) < 1e-3
        quiet = still & (20 * np.log10(rms / rms.max()) < -40)
        for k in range(n):
            rng = np.random.default_rng([seed, k, *clip.encode()])
            keep = np.ones(nb, bool)
            i = 0
            while i < nb:
                if not quiet[i]:
                    i += 1
                    continue
                j = i
                while j < nb and quiet[j]:
                    j += 1
                room = max(1, int(round(rng.uniform(*pause) * 10)))   # blocks of 100 ms
                if j - i > room:
                    head = (room + 1) // 2
                    keep[i + head: j - (room - head)] = False
                i = j
            blocks = np.flatnonzero(keep)
            a = audio[: nb * block].reshape(nb, block)[blocks].reshape(-1).copy()
            ramp = np.linspace(0.0, 1.0, 80, dtype=np.float32)
            for cut in np.flatnonzero(np.diff(blocks) > 1) + 1:   # soften each join: 5 ms fade out, 5 ms in
                a[cut * block - 80: cut * block] *= ramp[::-1]
                a[cut * block: cut * block + 80] *= ramp
            t = item.target[: nb * fpb].reshape(nb, fpb, -1)[blocks].reshape(-1, item.target.shape[1])
            f = float(rng.uniform(*speed))
            a = soxr.resample(a, SAMPLE_RATE * f, SAMPLE_RATE).astype(np.float32)
            # the cut curves played at f times their 30 fps, put back on the 30 fps grid
            target = BlendshapeCurves(t, 30.0 * f).resample(30.0).values[: len(a) * 30 // SAMPLE_RATE]
            path = folder / f"{clip}_dense{k}_seed{seed}.wav"
            if not _holds(path, a):   # same samples, same file and mtime: cached features kept
                tmp = path.with_name(f".{path.name}.{os.getpid()}")
                sf.write(tmp, a, SAMPLE_RATE, subtype="FLOAT", format="WAV")
                os.replace(tmp, path)
            meta = {**item.meta, "dense": k, "speed": round(f, 3), "kept": round(len(blocks) / nb, 3)}
            out.append(TrainItem(str(path), target, item.mask, item.weight, item.lang, "facegood-dense", meta))
    return out
