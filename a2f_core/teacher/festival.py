"""festival with the CMU ARCTIC "slt" HTS voice (Debian ``festival festvox-us-slt-hts``): more natural
English than espeak-ng, with the segment timings of its own utterance structure.

Each call runs ``festival -b`` on a small Scheme script that synthesizes the text, saves the wave and
the segment list (``utt.save.segs``: the end time of every phone); the phones are festival's US
"radio" phone set, which is ARPAbet in lower case (``pau`` = pause, ``ax`` = schwa).
Optional: the engine never needs it (``python build.py setup`` installs it where apt is).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from ..errors import A2FError
from .inventory import Phone, arpabet_class

VOICE = "cmu_us_slt_arctic_hts"
# radio phones whose ARPAbet name differs
_RADIO = {"pau": "SIL", "h#": "SIL", "brth": "SIL", "ax": "AH", "axr": "ER"}


def festival_available() -> bool:
    if shutil.which("festival") is None:
        return False
    return any(Path(d, VOICE).is_dir() for d in ("/usr/share/festival/voices/us",
                                                 "/usr/share/festival/voices/english"))


def parse_segs(text: str, duration: float, lang: str = "en") -> list[Phone]:
    """festival's ``utt.save.segs`` output (``end 100 phone`` lines) -> contiguous timed phones."""
    phones: list[Phone] = []
    start = 0.0
    for line in text.splitlines():
        parts = line.split()
        if len(parts) != 3 or parts[0] == "#":
            continue
        end, name = min(float(parts[0]), duration), parts[2]
        if end <= start:
            continue
        label = _RADIO.get(name, name.upper())
        cls = arpabet_class(label) or "sil"
        if phones and cls == "sil" and phones[-1].cls == "sil":
            phones[-1].end = end
        else:
            phones.append(Phone(label, cls, start, end, lang))
        start = end
    if phones and phones[-1].end < duration:
        if phones[-1].cls == "sil":
            phones[-1].end = duration
        else:
            phones.append(Phone("SIL", "sil", phones[-1].end, duration, lang))
    return phones


def _scheme_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


class FestivalSynth:
    """Synthesize English with festival's ``slt`` HTS voice: (audio, rate, timed phones)."""

    voices = (VOICE,)

    def __init__(self):
        if not festival_available():
            raise A2FError("festival with the slt HTS voice is not installed "
                           "(Debian/Ubuntu: apt-get install festival festvox-us-slt-hts)")

    def synth(self, text: str, stretch: float = 1.0) -> tuple[np.ndarray, int, list[Phone]]:
        """``stretch`` > 1 speaks slower (festival's Duration_Stretch)."""
        import soundfile as sf

        with tempfile.TemporaryDirectory(prefix="a2f_festival_") as tmp:
            wav, segs, script = (os.path.join(tmp, n) for n in ("say.wav", "say.segs", "say.scm"))
            with open(script, "w", encoding="utf-8") as f:
                f.write(f"(voice_{VOICE})\n(Parameter.set 'Duration_Stretch {float(stretch):.3f})\n"
                        f"(set! utt (SynthText {_scheme_string(text)}))\n"
                        f"(utt.save.wave utt {_scheme_string(wav)} 'riff)\n"
                        f"(utt.save.segs utt {_scheme_string(segs)})\n")
            r = subprocess.run(["festival", "-b", script], capture_output=True, text=True, timeout=120)
            if r.returncode != 0 or not os.path.exists(wav) or not os.path.exists(segs):
                raise A2FError(f"festival failed: {(r.stderr or r.stdout).strip().splitlines()[-1:] or r.returncode}")
            audio, rate = sf.read(wav, dtype="float32", always_2d=True)
            audio = audio.mean(axis=1)
            with open(segs, encoding="utf-8", errors="replace") as f:
                phones = parse_segs(f.read(), len(audio) / rate)
        return audio, int(rate), phones
