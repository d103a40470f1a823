"""espeak-ng through its C library: speech plus the exact sample position of every phoneme.

The library (Debian/Ubuntu package ``libespeak-ng1``, installed by
``build.py setup``) reports a phoneme event for each phone while it
synthesizes, so timings are exact by construction.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import threading

import numpy as np

from ..errors import A2FError
from .inventory import Phone, espeak_class

_EVENT_PHONEME = 7
_EVENT_LIST_TERMINATED = 0
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INIT_PHONEME_EVENTS = 1
_CHARS_UTF8 = 1
_RATE, _PITCH, _RANGE = 1, 3, 4

VOICES = {
    "en": ["en-us", "en-us+f3", "en-us+m3", "en", "en-us+f2", "en-gb-x-rp+m2", "en-029", "en-gb-scotland+f3"],
    "ja": ["ja", "ja+f3", "ja+m3", "ja+f2"],
    "zh": ["cmn-latn-pinyin", "cmn-latn-pinyin+f3", "cmn-latn-pinyin+m3", "cmn-latn-pinyin+f2"],
}


class _Event(ctypes.Structure):
    _fields_ = [("type", ctypes.c_int), ("unique_identifier", ctypes.c_uint), ("text_position", ctypes.c_int),
                ("length", ctypes.c_int), ("audio_position", ctypes.c_int), ("sample", ctypes.c_int),
                ("user_data", ctypes.c_void_p), ("id", ctypes.c_char * 8)]


_Callback = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event))


def espeak_available() -> bool:
    try:
        _library()
        return True
    except A2FError:
        return False


_LIB = None
_LOCK = threading.Lock()


def _library():
    global _LIB
    if _LIB is None:
        name = ctypes.util.find_library("espeak-ng") or "libespeak-ng.so.1"
        try:
            _LIB = ctypes.CDLL(name)
        except OSError:
            raise A2FError("espeak-ng is not installed (Debian/Ubuntu: apt-get install espeak-ng; "
                           "or run python build.py setup)") from None
    return _LIB


class EspeakSynth:
    """Synthesize text and return (16-bit audio as float32, sample rate, timed phones)."""

    def __init__(self):
        self.lib = _library()
        self.rate = self.lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, None, _INIT_PHONEME_EVENTS)
        if self.rate <= 0:
            raise A2FError("espeak-ng failed to initialise (is espeak-ng-data installed?)")
        self._chunks: list[np.ndarray] = []
        self._events: list[tuple[str, int]] = []
        self._cb = _Callback(self._on_audio)  # keep a reference: the library calls it later
        self.lib.espeak_SetSynthCallback(self._cb)

    def _on_audio(self, wav, n, events) -> int:
        if n > 0:
            self._chunks.append(np.ctypeslib.as_array(wav, shape=(n,)).astype(np.float32) / 32768.0)
        i = 0
        while events[i].type != _EVENT_LIST_TERMINATED:
            e = events[i]
            if e.type == _EVENT_PHONEME:
                self._events.append((e.id.decode("utf-8", "replace"), int(e.sample)))
            i += 1
        return 0

    def synth(self, text: str, voice: str, lang: str, rate: int = 175, pitch: int = 50, pitch_range: int = 50
              ) -> tuple[np.ndarray, int, list[Phone]]:
        with _LOCK:
            self._chunks, self._events = [], []
            if self.lib.espeak_SetVoiceByName(voice.encode()) != 0:
                raise A2FError(f"espeak-ng has no voice {voice!r}")
            self.lib.espeak_SetParameter(_RATE, int(rate), 0)
            self.lib.espeak_SetParameter(_PITCH, int(pitch), 0)
            self.lib.espeak_SetParameter(_RANGE, int(pitch_range), 0)
            data = text.encode("utf-8")
            self.lib.espeak_Synth(data, len(data) + 1, 0, 0, 0, _CHARS_UTF8, None, None)
            audio = np.concatenate(self._chunks) if self._chunks else np.zeros(0, np.float32)
            events = list(self._events)
        phones = events_to_phones(events, len(audio), self.rate, lang)
        return audio, self.rate, phones


def events_to_phones(events: list[tuple[str, int]], n_samples: int, rate: int, lang: str) -> list[Phone]:
    """Phoneme events (name, start sample) -> contiguous timed phones with a leading/trailing pause."""
    marks = []
    for name, sample in events:
        cls = espeak_class(name, lang)
        if cls is None:
            continue
        marks.append((name, cls, sample))
    phones: list[Phone] = []
    for k, (name, cls, sample) in enumerate(marks):
        end = marks[k + 1][2] if k + 1 < len(marks) else n_samples
        if end <= sample:
            continue
        if phones and phones[-1].cls == "sil" and cls == "sil":
            phones[-1].end = end / rate
            continue
        phones.append(Phone(name, cls, sample / rate, end / rate, lang))
    if phones and phones[0].start > 0:
        phones.insert(0, Phone("_", "sil", 0.0, phones[0].start, lang))
    return phones
