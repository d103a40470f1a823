"""One phone inventory for every source: each phone has a class from ``poses.toml``.

Sources use their own notations (espeak-ng mnemonics, ARPAbet from
PocketSphinx, IPA from Piper); :func:`phone_class` maps any of them to a class.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# ARPAbet (CMU / PocketSphinx) phones
ARPABET = {
    "P": "bilabial", "B": "bilabial", "M": "bilabial",
    "F": "labiodental", "V": "labiodental",
    "TH": "dental", "DH": "dental",
    "T": "alveolar", "D": "alveolar", "N": "alveolar", "L": "alveolar",
    "S": "sibilant", "Z": "sibilant",
    "SH": "postalveolar", "ZH": "postalveolar", "CH": "postalveolar", "JH": "postalveolar",
    "R": "rhotic", "ER": "rhotic",
    "K": "velar", "G": "velar", "NG": "velar", "HH": "velar",
    "W": "glide_w", "Y": "glide_j",
    "AA": "vowel_open", "AE": "vowel_open", "AH": "vowel_open", "AW": "vowel_open", "AY": "vowel_open",
    "AO": "vowel_mid_back", "OW": "vowel_mid_back", "OY": "vowel_mid_back",
    "EH": "vowel_mid_front", "EY": "vowel_mid_front",
    "IY": "vowel_close_front", "IH": "vowel_close_front",
    "UW": "vowel_close_back", "UH": "vowel_close_back",
    "SIL": "sil", "SP": "sil", "+SPN+": "sil", "+NSN+": "sil",
}

# espeak-ng phoneme mnemonics (en, ja, cmn-latn-pinyin), after stripping stress/length/tone marks
ESPEAK = {
    "p": "bilabial", "b": "bilabial", "m": "bilabial", "p#": "bilabial", "ph": "bilabial", "mm": "bilabial",
    "f": "labiodental", "v": "labiodental", "F": "labiodental",
    "T": "dental", "D": "dental",
    "t": "alveolar", "d": "alveolar", "n": "alveolar", "l": "alveolar", "t#": "alveolar", "d#": "alveolar",
    "th": "alveolar", "n-": "alveolar", "l/": "alveolar", "L": "alveolar", "r/": "rhotic",
    "s": "sibilant", "z": "sibilant", "ts": "sibilant", "dz": "sibilant", "tsh": "sibilant", "ts#": "sibilant",
    "S": "postalveolar", "Z": "postalveolar", "tS": "postalveolar", "dZ": "postalveolar", "s.": "postalveolar",
    "ts.": "postalveolar", "ts.h": "postalveolar", "z.": "postalveolar", "s;": "postalveolar", "ts;": "postalveolar",
    "ts;h": "postalveolar", "c": "postalveolar", "dZ;": "postalveolar", "tS;": "postalveolar", "S;": "postalveolar",
    "C": "velar", "x": "velar", "X": "velar", "h": "velar", "k": "velar", "g": "velar", "N": "velar", "kh": "velar",
    "r": "rhotic", "r-": "rhotic", "R": "rhotic", "3": "rhotic", "3:": "rhotic", "@r": "rhotic", "r.": "rhotic",
    "w": "glide_w", "j": "glide_j", "y": "vowel_close_back", "Y": "vowel_close_back",
    "a": "vowel_open", "A": "vowel_open", "a#": "vowel_open", "aI": "vowel_open", "aU": "vowel_open",
    "V": "vowel_open", "ai": "vowel_open", "au": "vowel_open", "Au": "vowel_open", "aI@": "vowel_open",
    "aU@": "vowel_open", "A@": "vowel_open", "an": "vowel_open", "aN": "vowel_open", "ia": "vowel_open",
    "ua": "vowel_open", "ya": "vowel_open",
    "0": "vowel_mid_back", "O": "vowel_mid_back", "o": "vowel_mid_back", "oU": "vowel_mid_back", "OI": "vowel_mid_back",
    "o@": "vowel_mid_back", "O@": "vowel_mid_back", "ou": "vowel_mid_back", "uo": "vowel_mid_back",
    "e": "vowel_mid_front", "E": "vowel_mid_front", "eI": "vowel_mid_front", "e@": "vowel_mid_front",
    "ei": "vowel_mid_front", "ie": "vowel_mid_front", "E2": "vowel_mid_front", "E#": "vowel_mid_front",
    "i": "vowel_close_front", "I": "vowel_close_front", "i@": "vowel_close_front", "I#": "vowel_close_front",
    "i.": "vowel_close_front", "I2": "vowel_close_front", "i[": "vowel_close_front",
    "u": "vowel_close_back", "U": "vowel_close_back", "u@": "vowel_close_back", "U@": "vowel_close_back",
    "@": "vowel_central", "@2": "vowel_central", "@5": "vowel_central", "@L": "vowel_central", "a2": "vowel_central",
    "@-": "vowel_central", "e#": "vowel_central", "@n": "vowel_central", "@N": "vowel_central", "i#": "vowel_central",
    "_": "sil", "_:": "sil", "_!": "sil", "_^_": "sil",
}

# Japanese espeak-ng (ja): the u is unrounded/compressed; N is the moraic nasal
ESPEAK_JA = {"u": "vowel_close_back_unrounded", "u:": "vowel_close_back_unrounded", "N": "nasal_moraic",
             "n^": "alveolar", "h": "velar", "F": "labiodental", "w": "glide_w", "r": "alveolar"}

# IPA (Piper / espeak-ng IPA output), first matching prefix wins
IPA = [
    ("p", "bilabial"), ("b", "bilabial"), ("m", "bilabial"), ("ɸ", "labiodental"), ("f", "labiodental"),
    ("v", "labiodental"), ("θ", "dental"), ("ð", "dental"), ("ʃ", "postalveolar"), ("ʒ", "postalveolar"),
    ("tʃ", "postalveolar"), ("dʒ", "postalveolar"), ("ɕ", "postalveolar"), ("ʑ", "postalveolar"), ("ʂ", "postalveolar"),
    ("ts", "sibilant"), ("dz", "sibilant"), ("s", "sibilant"), ("z", "sibilant"), ("t", "alveolar"), ("d", "alveolar"),
    ("n", "alveolar"), ("l", "alveolar"), ("ɾ", "alveolar"), ("ɹ", "rhotic"), ("r", "rhotic"), ("ɚ", "rhotic"),
    ("ɝ", "rhotic"), ("k", "velar"), ("ɡ", "velar"), ("g", "velar"), ("ŋ", "velar"), ("h", "velar"), ("x", "velar"),
    ("ç", "velar"), ("ɴ", "nasal_moraic"), ("w", "glide_w"), ("j", "glide_j"), ("aɪ", "vowel_open"),
    ("aʊ", "vowel_open"), ("a", "vowel_open"), ("ɑ", "vowel_open"), ("æ", "vowel_open"), ("ʌ", "vowel_open"),
    ("ɔ", "vowel_mid_back"), ("o", "vowel_mid_back"), ("ɒ", "vowel_mid_back"), ("e", "vowel_mid_front"),
    ("ɛ", "vowel_mid_front"), ("i", "vowel_close_front"), ("ɪ", "vowel_close_front"), ("u", "vowel_close_back"),
    ("ʊ", "vowel_close_back"), ("y", "vowel_close_back"), ("ɯ", "vowel_close_back_unrounded"),
    ("ə", "vowel_central"), ("ɐ", "vowel_central"), ("ɜ", "rhotic"), ("ɨ", "vowel_central"),
]

CLASSES = ("sil", "bilabial", "labiodental", "dental", "alveolar", "sibilant", "postalveolar", "rhotic", "velar",
           "glide_w", "glide_j", "vowel_open", "vowel_mid_front", "vowel_close_front", "vowel_central",
           "vowel_mid_back", "vowel_close_back", "vowel_close_back_unrounded", "nasal_moraic")
VOWELS = tuple(c for c in CLASSES if c.startswith("vowel"))


@dataclass
class Phone:
    """A timed phone: label in its source notation, class, start/end in seconds, language."""

    label: str
    cls: str
    start: float
    end: float
    lang: str = "en"
    stress: int = 0

    @property
    def dur(self) -> float:
        return self.end - self.start

    def to_dict(self) -> dict:
        return {"label": self.label, "cls": self.cls, "start": round(self.start, 4), "end": round(self.end, 4),
                "lang": self.lang, "stress": self.stress}


def espeak_class(name: str, lang: str) -> str | None:
    """Class of an espeak-ng phoneme mnemonic; None for markers that are not phones."""
    if name.startswith("("):  # language switch markers like (en)
        return None
    if name in ("_|", "||", "|"):
        return None
    base = name.strip("'\",%=")
    base = re.sub(r"[0-9]+$", "", base) or base  # Mandarin tones
    if lang == "ja":
        for key in (base, base.rstrip(":")):
            if key in ESPEAK_JA:
                return ESPEAK_JA[key]
    for key in (base, base.rstrip(":"), base.rstrip(":;"), base[:2], base[:1]):
        if key in ESPEAK:
            return ESPEAK[key]
    return None


def arpabet_class(name: str) -> str | None:
    return ARPABET.get(re.sub(r"[0-9]", "", name.upper()))


def ipa_class(name: str) -> str | None:
    for prefix, cls in IPA:
        if name.startswith(prefix):
            return cls
    return None
