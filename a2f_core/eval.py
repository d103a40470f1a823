"""``python -m a2f_core eval``: the measures of QUALITY.md on held-apart dev clips, for the model
and two baselines (loudness -> jawOpen, and the phoneme teacher where phone timings exist).

Dev data (never trained on): the FACEGOOD clips in ``DEV_CLIPS`` (real Mandarin mouth capture:
jaw correlation) and the English clips of ``speech_en/`` with PocketSphinx phone alignments
(closure, opening, rounding, rest in silence).
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .arkit import INDEX, MOUTH, lip_aperture
from .audio import load_audio
from .curves import BlendshapeCurves
from .features.mel import frame_center, frame_windows, num_frames

BILABIAL = {"P", "B", "M"}
OPEN_VOWELS = {"AA", "AE", "AH", "AO", "AW", "AY"}
ROUNDED = {"UW", "OW", "UH", "AO"}
SPREAD = {"IY", "IH", "EY"}
PAUSES = {"SIL", "SP", "<SIL>", "+NSN+", "+SPN+"}
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


def _frames(seg, n, pad=1):
    lo = max(0, int(np.floor(seg[1] * 30)) - pad)
    hi = min(n, int(np.ceil(seg[2] * 30)) + pad)
    return np.arange(lo, max(lo + 1, hi)) if lo < n else np.arange(0)


def phone_measures(values: np.ndarray, phones: list[tuple[str, float, float]]) -> dict:
    """Closure rate, open/bilabial ratio, rounding ratio, rest in silence, biggest frame step."""
    n = len(values)
    ap = lip_aperture(values)
    rnd = values[:, INDEX["mouthFunnel"]] + values[:, INDEX["mouthPucker"]]
    # (phone without stress digit, its frames, its frames +-1 frame, duration), frames computed once
    segs = [(p[0].upper().rstrip("012"), _frames(p, n, 0), _frames(p, n), p[2] - p[1]) for p in phones]

    def means(curve, group):
        return [curve[f].mean() for b, f, _, _ in segs if b in group and len(f)]

    closed = [ap[fp].min() <= 0.10 for b, _, fp, _ in segs if b in BILABIAL and len(fp)]
    open_ap, bil_ap = means(ap, OPEN_VOWELS), means(ap, BILABIAL)
    r_round, r_spread = means(rnd, ROUNDED), means(rnd, SPREAD)
    rest = np.concatenate([ap[f] for b, f, _, dur in segs if b in PAUSES and dur >= 0.3] or [np.zeros(0)])
    mouth = [INDEX[m] for m in MOUTH]
    return {
        "bilabials": len(closed),
        "closure_rate": float(np.mean(closed)) if closed else None,
        "open_vowel_aperture": float(np.mean(open_ap)) if open_ap else None,
        "open_to_bilabial": float(np.mean(open_ap) / max(np.mean(bil_ap), 1e-3)) if open_ap and bil_ap else None,
        "rounding_ratio": float(np.mean(r_round) / max(np.mean(r_spread), 1e-3)) if r_round and r_spread else None,
        "rest_in_silence": float((rest <= 0.08).mean()) if len(rest) else None,
        "max_mouth_step": float(np.abs(np.diff(values[:, mouth], axis=0)).max()) if n > 1 else 0.0,
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
    wav: Path
    lang: str
    phones: list | None = None
    real_jaw: np.ndarray | None = None


def aligned_more(data: Path, cache: Path | None) -> list[Clip]:
    """English clips of ``speech_more/en`` force-aligned with PocketSphinx (clips it cannot align are
    left out); alignments are cached as JSON in ``cache``."""
    from .errors import A2FError
    from .teacher.align import align_english

    clips = []
    for wav in sorted((data / "speech_more" / "en").glob("*.wav")):
        txt = wav.with_suffix(".txt")
        if not txt.exists():
            continue
        hit = cache / f"{wav.stem}.json" if cache else None
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
            clips.append(Clip(f"more_{wav.stem}", wav, "en", phones=[tuple(p) for p in phones]))
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
    return clips


def teacher_curves(clip: Clip, audio: np.ndarray, n: int) -> BlendshapeCurves | None:
    if not clip.phones:
        return None
    from .teacher.coarticulation import phones_to_curves
    from .teacher.inventory import Phone, arpabet_class

    phones = []
    for label, s, e in clip.phones:
        cls = arpabet_class(label) or "sil"
        phones.append(Phone(label, cls, s, e, "en"))
    return phones_to_curves(phones, n, audio, 16000)


def evaluate(data: str | Path, model=None, out: str | Path | None = None, plots: bool = True,
             more: bool = True, cache: str | Path | None = None) -> dict:
    from .engine import infer
    from .model import load_checkpoint
    from .plot import plot_curves

    model = model if model is not None else load_checkpoint(None)
    data = Path(data)
    out = Path(out) if out else None
    if out:
        out.mkdir(parents=True, exist_ok=True)
    results = {}
    for clip in dev_clips(data, more, Path(cache) if cache else (out / "align_cache" if out else None)):
        audio = load_audio(clip.wav)
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
        results[clip.name] = {"lang": clip.lang, "seconds": round(len(audio) / 16000, 2), **row}
        if out and plots and not clip.name.startswith("more_"):
            plot_curves(systems["model"], out / f"{clip.name}.png", phones=clip.phones,
                        title=f"{clip.name} (model)")
    summary = summarise(results)
    summary["_clips"] = {"english_aligned": sum(1 for c in results.values() if c["lang"] == "en"),
                         "facegood": sum(1 for k in results if k.startswith("facegood_"))}
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
    lines = ["| system | " + " | ".join(MEASURES) + " |", "|---" * (len(MEASURES) + 1) + "|"]
    for s, m in summary.items():
        if s.startswith("_"):
            continue
        lines.append(f"| {s} | " + " | ".join("-" if m.get(k) is None else f"{m[k]:.3f}" for k in MEASURES) + " |")
    return "\n".join(lines)
