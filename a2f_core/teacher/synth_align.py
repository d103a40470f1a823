"""Real speech + transcript -> timed phones in any language espeak-ng speaks, by synthesis and warping.

PocketSphinx ships an acoustic model for US English only. For Japanese, Mandarin and the other
languages of ``speech_more/`` the transcript is spoken by espeak-ng, which reports where each of its
phones is, and the synthetic utterance is warped onto the recording by dynamic time warping of
their cepstra (speaker-normalised MFCCs with deltas and a loudness term). Each synthetic phone
start is carried along the warping path into the recording. Only the speech of each is warped
(``speech_bounds``); the recording's silence before and after it is a pause.

Readings: Japanese kanji are read with MeCab's UniDic (``fugashi`` + ``unidic-lite``, both bundle
their dictionary); Mandarin characters become tone-numbered pinyin with ``pypinyin`` (the Debian
espeak-ng reads only pinyin for Mandarin); other languages are given to espeak-ng as written.

The alignment is coarser than a trained aligner's (on real English 94 % of PocketSphinx's bilabials
have one of its bilabials within 50 ms; see ``check_against_reference`` and ``teach check-align``),
which is enough for the phone-class measures of QUALITY.md but not for timing studies.
"""

from __future__ import annotations

import re
from functools import lru_cache

import numpy as np

from ..errors import A2FError
from .inventory import Phone

HOP = 160           # 10 ms analysis frames
N_FFT = 512
N_MELS = 40
N_CEPS = 13

# espeak-ng voice per language code of ``speech_more/`` file names
VOICE = {"en": "en-us", "ja": "ja", "zh": "cmn-latn-pinyin", "es": "es", "fr": "fr", "de": "de", "it": "it",
         "pt": "pt", "ko": "ko", "sv": "sv"}


def reading(text: str, lang: str) -> str:
    """The transcript as espeak-ng should read it (kana for Japanese, pinyin for Mandarin)."""
    text = text.strip()
    if lang == "ja":
        try:
            import fugashi
        except ImportError:
            raise A2FError("Japanese readings need fugashi and unidic-lite (pip install fugashi unidic-lite)") from None
        words = []
        for w in _tagger(fugashi)(text):
            kana = getattr(w.feature, "kana", None)
            words.append(kana if kana and kana != "*" else w.surface)
        return " ".join(words)
    if lang == "zh":
        try:
            from pypinyin import Style, lazy_pinyin
        except ImportError:
            raise A2FError("Mandarin readings need pypinyin (pip install pypinyin)") from None
        syl = lazy_pinyin(text, style=Style.TONE3, neutral_tone_with_five=True, errors="ignore")
        return " ".join(s for s in syl if re.fullmatch(r"[a-zü]+[1-5]", s))
    return text


@lru_cache(maxsize=1)
def _tagger(fugashi):
    return fugashi.Tagger()


def cepstra(audio16k: np.ndarray) -> np.ndarray:
    """(frames, 27) per-utterance normalised MFCC 1-13, their deltas and log energy, 10 ms hop."""
    from scipy.fft import dct
    from scipy.signal import stft

    from ..features.mel import MelConfig, mel_filterbank

    x = np.asarray(audio16k, np.float64)
    x = np.append(x[0] if len(x) else 0.0, x[1:] - 0.97 * x[:-1])  # pre-emphasis
    _, _, spec = stft(x, nperseg=400, noverlap=400 - HOP, nfft=N_FFT, window="hamming", boundary="even",
                      padded=True)
    power = np.abs(spec.T) ** 2
    fb = mel_filterbank(MelConfig(n_fft=N_FFT, n_mels=N_MELS, fmin=60.0, fmax=7600.0)).astype(np.float64)
    logmel = np.log(power @ fb.T + 1e-8)
    ceps = dct(logmel, type=2, norm="ortho", axis=1)[:, 1:N_CEPS + 1]
    energy = np.log(power.sum(1) + 1e-8)[:, None]
    feats = np.hstack([ceps, np.gradient(ceps, axis=0) * 2.0, energy])
    return (feats - feats.mean(0)) / (feats.std(0) + 1e-6)


def dtw_path(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Warping path (indices into a, indices into b) between feature sequences, both ends anchored,
    steps (1,1), (1,0), (0,1); computed by anti-diagonals so that each step is one vector operation."""
    from scipy.spatial.distance import cdist

    n, m = len(a), len(b)
    cost = cdist(a, b)
    acc = np.full((n + 1, m + 1), np.inf)
    acc[0, 0] = 0.0
    for d in range(2, n + m + 1):                      # i + j == d in the 1-based table
        i = np.arange(max(1, d - m), min(n, d - 1) + 1)
        j = d - i
        best = np.minimum(np.minimum(acc[i - 1, j - 1], acc[i - 1, j]), acc[i, j - 1])
        acc[i, j] = cost[i - 1, j - 1] + best
    i, j, path = n, m, []
    while i > 0 and j > 0:
        path.append((i - 1, j - 1))
        steps = (acc[i - 1, j - 1], acc[i - 1, j], acc[i, j - 1])
        k = int(np.argmin(steps))
        i, j = (i - 1, j - 1) if k == 0 else (i - 1, j) if k == 1 else (i, j - 1)
    path.reverse()
    p = np.asarray(path)
    return p[:, 0], p[:, 1]


def _speech_span(audio16k: np.ndarray) -> float:
    """Seconds of the clip louder than 30 dB below its loudest 10 ms."""
    n = len(audio16k) // HOP
    if n == 0:
        return 0.0
    e = 10 * np.log10((audio16k[: n * HOP].reshape(n, HOP) ** 2).mean(1) + 1e-10)
    return float((e > e.max() - 30).sum() * HOP / 16000)


def speech_bounds(audio16k: np.ndarray, margin: float = 0.05) -> tuple[int, int]:
    """Samples ``(start, end)`` from the first to the last 10 ms frame that stands out of the clip's
    background, widened by ``margin`` seconds each side; the whole clip when nothing does.

    A frame stands out when its loudness (smoothed over 30 ms) is above both 35 dB below the clip's
    loud end (99th percentile) and 30 % of the way from its quiet end (10th percentile) to the loud
    end, so that a noisy recording's background, which may lie within 20 dB of its speech, is not
    taken for speech."""
    n = len(audio16k) // HOP
    if n < 3:
        return 0, len(audio16k)
    x = np.asarray(audio16k[: n * HOP], np.float64).reshape(n, HOP)
    e = 10 * np.log10(np.convolve((x ** 2).mean(1), np.ones(3) / 3, mode="same") + 1e-10)
    lo, hi = np.percentile(e, [10, 99])
    loud = np.flatnonzero(e > max(hi - 35.0, lo + 0.3 * (hi - lo)))
    if hi - lo < 6.0 or len(loud) == 0:
        return 0, len(audio16k)
    pad = int(margin * 16000)
    return max(0, int(loud[0]) * HOP - pad), min(len(audio16k), (int(loud[-1]) + 1) * HOP + pad)


def align_by_synthesis(audio16k: np.ndarray, transcript: str, lang: str, synth=None) -> list[Phone]:
    """Timed phones (espeak-ng labels and classes) of ``transcript`` spoken in ``audio16k`` (16 kHz)."""
    import soxr

    from .espeak import EspeakSynth

    if lang not in VOICE:
        raise A2FError(f"no espeak-ng voice for language {lang!r}")
    text = reading(transcript, lang)
    if not text.strip():
        raise A2FError("empty transcript")
    synth = synth or EspeakSynth()
    real_span = _speech_span(audio16k)
    rate = 175
    for _ in range(2):   # second pass: espeak-ng's rate set so that both speak for about as long
        audio, sr, phones = synth.synth(text, VOICE[lang], lang, rate=rate)
        syn = soxr.resample(audio, sr, 16000).astype(np.float32)
        span = _speech_span(syn)
        if real_span <= 0 or span <= 0:
            break
        rate = int(np.clip(rate * span / real_span, 80, 450))
    if not phones:
        raise A2FError("espeak-ng produced no phones for this transcript")
    # Only the speech of each is warped: silence before and after it, which the recording may have
    # far more of (and noisier) than the synthetic utterance, would otherwise be matched to phones.
    r0, r1 = speech_bounds(audio16k)
    s0, s1 = speech_bounds(syn)
    a, b = cepstra(syn[s0:s1]), cepstra(audio16k[r0:r1])
    ia, ib = dtw_path(a, b)
    first = ib[np.unique(ia, return_index=True)[1]]   # earliest recording frame matched to each synthetic one
    dur = len(audio16k) / 16000

    def start_of(p) -> float:
        t = p.start * 16000
        if t < s0:
            return r0 / 16000
        if t >= s1:
            return r1 / 16000
        return (r0 + float(first[min(int(round((t - s0) / HOP)), len(a) - 1)]) * HOP) / 16000

    # the recording's silence before and after its speech is a pause, whether or not espeak-ng
    # began or ended its utterance with one
    phones = list(phones)
    if phones[0].cls != "sil":
        phones.insert(0, Phone("_", "sil", 0.0, 0.0, lang))
    if phones[-1].cls != "sil":
        phones.append(Phone("_", "sil", len(syn) / 16000, len(syn) / 16000, lang))
    starts = [0.0 if k == 0 else start_of(p) for k, p in enumerate(phones)]
    starts = np.minimum(np.maximum.accumulate(starts), dur)
    out = []
    for k, p in enumerate(phones):
        end = starts[k + 1] if k + 1 < len(phones) else dur
        if end > starts[k]:
            out.append(Phone(p.label, p.cls, float(starts[k]), float(end), lang))
    return out


def agreement(dtw: list[tuple[str, float, float]], reference: list[tuple[str, float, float]],
              tolerance: float = 0.05) -> dict:
    """How well two phone-group sequences (``(group, start, end)``) agree on bilabials and open vowels:
    the share of reference segments whose centre is covered by a same-group segment of the other,
    within ``tolerance`` seconds."""
    from ..eval import BILABIAL, OPEN_VOWELS, phone_base

    out = {}
    for group, labels in (("bilabial", BILABIAL), ("open_vowel", OPEN_VOWELS)):
        ref = [(s + e) / 2 for g, s, e in reference if phone_base(g) in labels]
        hyp = [(s - tolerance, e + tolerance) for g, s, e in dtw if phone_base(g) in labels]
        hits = [any(lo <= c <= hi for lo, hi in hyp) for c in ref]
        out[group] = {"reference": len(ref), "covered": int(sum(hits))}
    return out


def check_against_reference(pairs, tolerance: float = 0.05, synth=None) -> dict:
    """The aligner against another one on real English: ``pairs`` of (wav, reference phones as
    ``(ARPAbet label, start, end)``), each clip aligned from its ``.txt`` transcript. Returns the
    :func:`agreement` counts summed over the clips and the mean error (seconds) of where speech
    starts (first phone that is not a pause) and ends (end of the last one)."""
    from ..audio import load_audio
    from ..eval import CLASS_AS_ARPABET, PAUSES, phone_base
    from .espeak import EspeakSynth

    synth = synth or EspeakSynth()
    total = {"bilabial": {"reference": 0, "covered": 0}, "open_vowel": {"reference": 0, "covered": 0}}
    start_err, end_err = [], []
    for wav, ref in pairs:
        phones = align_by_synthesis(load_audio(wav), wav.with_suffix(".txt").read_text(encoding="utf-8"), "en",
                                    synth)
        hyp = [(CLASS_AS_ARPABET.get(p.cls, p.cls), p.start, p.end) for p in phones]
        for group, counts in agreement(hyp, ref, tolerance).items():
            for k in counts:
                total[group][k] += counts[k]
        r = [(s, e) for g, s, e in ref if phone_base(g) not in PAUSES]
        h = [(s, e) for g, s, e in hyp if g not in PAUSES]
        if r and h:
            start_err.append(abs(r[0][0] - h[0][0]))
            end_err.append(abs(r[-1][1] - h[-1][1]))
    return {"clips": len(pairs), **total,
            "speech_start_error_s": round(float(np.mean(start_err)), 3) if start_err else None,
            "speech_end_error_s": round(float(np.mean(end_err)), 3) if end_err else None}


def transcribed_clips(data) -> list[tuple]:
    """(wav, language) of the real non-English clips of a data folder that have a same-stem transcript:
    ``speech_ja/``, ``speech_more/ja``, ``speech_more/zh`` and ``speech_more/other`` (language from
    :func:`language_of`: the folder's name, else the file-name prefix)."""
    from pathlib import Path

    data = Path(data)
    out = []
    for folder in (data / "speech_ja", data / "speech_more" / "ja", data / "speech_more" / "zh",
                   data / "speech_more" / "other"):
        for w in sorted(folder.glob("*.wav")):
            lang = language_of(w)
            if lang is not None and w.with_suffix(".txt").exists():
                out.append((w, lang))
    return out


def language_of(wav, default: str | None = None) -> str | None:
    """``default``, else the folder's name (``ja/``, ``zh/``, ``speech_ja/``...), else a file-name
    prefix such as ``es_``; None when none of them names a language espeak-ng speaks here."""
    from pathlib import Path

    wav = Path(wav)
    for guess in (default, wav.parent.name.removeprefix("speech_"), wav.stem.split("_")[0]):
        if guess in VOICE:
            return guess
    return None


def align_clip(audio16k: np.ndarray, transcript: str, lang: str, synth=None) -> tuple[list[Phone], str]:
    """Phones of a real clip and the aligner that found them: PocketSphinx for English when it can
    (it is the more precise), else espeak-ng synthesis + time warping."""
    if lang == "en":
        from .align import align_english

        try:
            return align_english(audio16k, transcript), "pocketsphinx"
        except A2FError:
            pass
    return align_by_synthesis(audio16k, transcript, lang, synth), "espeak-ng+dtw"
