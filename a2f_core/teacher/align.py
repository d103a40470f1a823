"""Real speech + transcript -> timed phones, by PocketSphinx forced alignment (US English model
shipped inside the ``pocketsphinx`` wheel; nothing is downloaded)."""

from __future__ import annotations

import re

import numpy as np

from ..errors import A2FError
from .inventory import Phone, arpabet_class


def align_english(audio16k: np.ndarray, transcript: str) -> list[Phone]:
    """Phones (ARPAbet labels, classes, seconds) of ``transcript`` in ``audio16k``.

    Raises :class:`A2FError` when PocketSphinx is missing or cannot align the text.
    """
    try:
        from pocketsphinx import Decoder
    except ImportError:
        raise A2FError("pocketsphinx is not installed (pip install pocketsphinx)") from None
    text = re.sub(r"[^a-z' ]+", " ", transcript.lower().replace("-", " "))
    text = re.sub(r"\s+", " ", text).strip()
    if not text:
        raise A2FError("empty transcript")
    pcm = (np.clip(audio16k, -1, 1) * 32767).astype(np.int16).tobytes()
    decoder = Decoder(samprate=16000, bestpath=False, loglevel="FATAL")
    try:
        decoder.set_align_text(text)
    except RuntimeError as exc:  # a word missing from the dictionary
        raise A2FError(f"cannot align transcript: {exc}") from None
    try:
        decoder.start_utt()
        decoder.process_raw(pcm, full_utt=True)
        decoder.end_utt()
        decoder.set_alignment()  # second pass: phone-level alignment within the words found
        decoder.start_utt()
        decoder.process_raw(pcm, full_utt=True)
        decoder.end_utt()
        alignment = decoder.get_alignment()
    except RuntimeError:
        alignment = None
    phones = []
    if alignment is None:
        raise A2FError("PocketSphinx found no alignment for this transcript")
    for word in alignment:
        for ph in word:
            cls = arpabet_class(ph.name) or "sil"
            phones.append(Phone(ph.name, cls, ph.start / 100.0, (ph.start + ph.duration) / 100.0, "en"))
    return phones
