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


def load_pseudo(data: str | Path, cache: str | Path | None = None, weight: float = 1.0) -> list[TrainItem]:
    from ..teacher.align import aligned_folder, arpabet_curves

    items = []
    for wav, phones in aligned_folder(Path(data) / "speech_more" / "en", cache):
        if source_of(wav) not in REAL_TRAIN_SOURCES:
            continue
        audio = load_audio(wav)
        curves = arpabet_curves(phones, num_frames(len(audio)), audio)
        items.append(TrainItem(str(wav), curves.values.astype(np.float32), np.ones(52, np.float32), weight,
                               "en", "pseudo", {"id": wav.stem}))
    return items
