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


def aligned_folder(folder, cache=None) -> list[tuple]:
    """(wav path, [(ARPAbet label, start, end), ...]) for every ``*.wav`` with a same-stem ``.txt`` in
    ``folder`` that PocketSphinx can align (the others are left out). Alignments are cached as JSON
    in ``cache`` (an empty list marks a clip that failed)."""
    import json
    from pathlib import Path

    from ..audio import load_audio

    out = []
    for wav in sorted(Path(folder).glob("*.wav")):
        txt = wav.with_suffix(".txt")
        if not txt.exists():
            continue
        hit = Path(cache) / f"{wav.stem}.json" if cache else None
        if hit is not None and hit.exists():
            phones = json.loads(hit.read_text())
        else:
            try:
                phones = [(p.label, p.start, p.end) for p in align_english(load_audio(wav), txt.read_text())]
            except A2FError:
                phones = []
            if hit is not None:
                hit.parent.mkdir(parents=True, exist_ok=True)
                hit.write_text(json.dumps(phones))
        if phones:
            out.append((wav, [tuple(p) for p in phones]))
    return out


def arpabet_curves(phones, n_frames: int, audio16k: np.ndarray):
    """Teacher curves for (ARPAbet label, start, end) phones of a 16 kHz recording."""
    from .coarticulation import phones_to_curves

    timed = [Phone(label, arpabet_class(label) or "sil", s, e, "en") for label, s, e in phones]
    return phones_to_curves(timed, n_frames, audio16k, 16000)
