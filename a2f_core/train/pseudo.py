"""Real English speech, pseudo-labelled: PocketSphinx alignments of ``speech_more/en`` turned into
teacher curves, so the model hears real voices (not only espeak-ng) with the lip shapes they call for.

The split is by speaker, so the dev measures are on voices never heard in training: the clips of
the sources in ``REAL_TRAIN_SOURCES`` (two single-speaker corpora) are trained on; every other
speaker of ``speech_more/en`` and all of ``speech_en/`` stay dev (``a2f_core.eval``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..audio import load_audio
from ..features.mel import num_frames
from .data import TrainItem

REAL_TRAIN_SOURCES = ("cathy", "ljspeech")


def source_of(wav: str | Path) -> str:
    """The corpus a ``speech_more/en`` clip comes from: its file-name prefix."""
    return Path(wav).stem.split("_")[0]


def _phone_frames(phones: list[tuple[str, float, float]], n: int, bases, pad: int) -> np.ndarray:
    """(n,) bool: the frames of every phone in ``bases`` (stress and case aside), ``pad`` frames either side."""
    from ..eval import phone_base, phone_frames

    hit = np.zeros(n, bool)
    for seg in phones:
        if phone_base(seg[0]) in bases:
            hit[phone_frames(seg, n, pad)] = True
    return hit


def bilabial_frames(phones: list[tuple[str, float, float]], n: int, pad: int = 0) -> np.ndarray:
    """(n,) bool: the frames of every p/b/m segment, ``pad`` frames either side."""
    from ..eval import BILABIAL

    return _phone_frames(phones, n, BILABIAL, pad)


def bilabial_frames_off(phones: list[tuple[str, float, float]], n: int, pad: int = 2) -> np.ndarray:
    """Per-frame weights (n,) that are 0 on every p/b/m segment and ``pad`` frames either side, 1 elsewhere.

    A forced alignment puts a closure a frame or two early or late; a target sealed on the wrong frames
    teaches the model to half-close across the whole neighbourhood, which is what fails the closure rate.
    Without those frames the pseudo-labels still teach how wide real voices open and round.
    """
    return (~bilabial_frames(phones, n, pad)).astype(np.float32)


def open_vowel_frames(phones: list[tuple[str, float, float]], n: int) -> np.ndarray:
    """(n,) bool: the frames of every open vowel (``eval.OPEN_VOWELS``)."""
    from ..eval import OPEN_VOWELS

    return _phone_frames(phones, n, OPEN_VOWELS, 0)


def open_vowel_frames_only(phones: list[tuple[str, float, float]], n: int) -> np.ndarray:
    """Per-frame weights (n,) that are 1 inside open vowels (``eval.OPEN_VOWELS``) and 0 elsewhere.

    The pseudo-labels then teach only how wide real voices open, where the teacher opens widest and a
    frame early or late matters least; closures, rounding and rest stay the synthetic data's to teach.
    """
    return open_vowel_frames(phones, n).astype(np.float32)


def training_speakers(data: str | Path, cache: str | Path | None = None):
    """(wav, phones, 16 kHz audio, teacher curves) for each aligned clip of the training speakers of
    ``speech_more/en`` (``REAL_TRAIN_SOURCES``; the other speakers are dev), in file order."""
    from ..teacher.align import aligned_folder, arpabet_curves

    for wav, phones in aligned_folder(Path(data) / "speech_more" / "en", cache):
        if source_of(wav) not in REAL_TRAIN_SOURCES:
            continue
        audio = load_audio(wav)
        yield wav, phones, audio, arpabet_curves(phones, num_frames(len(audio)), audio)


def load_pseudo(data: str | Path, cache: str | Path | None = None, weight: float = 1.0,
                skip_bilabials: bool = False, open_vowels_only: bool = False, anchor=None) -> list[TrainItem]:
    """Pseudo-labelled training speakers; ``skip_bilabials``: leave the frames around p/b/m unsupervised
    (:func:`bilabial_frames_off`), so the synthetic data alone teaches the closures; ``open_vowels_only``:
    supervise nothing but the open vowels (:func:`open_vowel_frames_only`); ``anchor`` (a model): keep the
    teacher's curves on the open vowels only and take the anchor's own output on every other frame
    (:func:`anchored_targets`). At most one of the three."""
    if sum(map(bool, (skip_bilabials, open_vowels_only, anchor is not None))) > 1:
        raise ValueError("skip_bilabials, open_vowels_only and anchor exclude each other")
    items = []
    for wav, phones, audio, curves in training_speakers(data, cache):
        values = curves.values.astype(np.float32)
        n = len(values)
        fw = None
        if skip_bilabials:
            fw = bilabial_frames_off(phones, n)
        elif open_vowels_only:
            fw = open_vowel_frames_only(phones, n)
        elif anchor is not None:
            values = anchored_targets(values, phones, audio, anchor)
        items.append(TrainItem(str(wav), values, np.ones(52, np.float32), weight,
                               "en", "pseudo", {"id": wav.stem}, frame_weight=fw, seal=bilabial_frames(phones, n)))
    return items


def anchored_targets(teacher: np.ndarray, phones: list[tuple[str, float, float]], audio: np.ndarray,
                     anchor) -> np.ndarray:
    """Targets (n, 52) that are the teacher's on open vowels and ``anchor``'s own output (16 kHz ``audio``,
    without its output map) everywhere else.

    Pseudo-labels on all frames teach real voices to close less (their p/b/m timing is the alignment's
    weakest); on open vowels alone (:func:`open_vowel_frames_only`) they teach real voices to open more
    everywhere, p/b/m included. Anchored, the frames the teacher does not teach hold the anchor model
    (e.g. the ``--init`` model, which closes real p/b/m) to what it already does.
    """
    from ..calibration import raw_outputs

    n = len(teacher)
    mine = raw_outputs(anchor, audio, n).astype(np.float32)
    if len(mine) < n:
        raise ValueError(f"anchor gave {len(mine)} frames for {n}")
    return np.where(open_vowel_frames(phones, n)[:, None], teacher, mine)
