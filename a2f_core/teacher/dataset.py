"""``teach build``: (audio, curves) training pairs with a JSONL manifest, deterministic per seed."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from ..audio import SAMPLE_RATE
from ..features.mel import num_frames
from .augment import augment
from .coarticulation import phones_to_curves
from .espeak import VOICES, EspeakSynth
from .inventory import Phone
from .texts import sentence


def _espeak_settings(lang: str, rng: np.random.Generator, voice: str | None) -> dict:
    voice = voice or str(rng.choice(VOICES[lang]))
    return {"voice": voice, "rate": int(rng.integers(120, 240)), "pitch": int(rng.integers(25, 75)),
            "range": int(rng.integers(20, 90))}


def _piper_settings(rng: np.random.Generator) -> dict:
    # length_scale > 1 is slower speech; noise scales vary the prosody and timing from take to take
    return {"voice": "piper-joe", "length_scale": round(float(rng.uniform(0.75, 1.35)), 3),
            "noise_scale": round(float(rng.uniform(0.4, 0.9)), 3),
            "noise_w_scale": round(float(rng.uniform(0.5, 1.0)), 3)}


def _festival_settings(rng: np.random.Generator) -> dict:
    return {"voice": "festival-slt", "stretch": round(float(rng.uniform(0.8, 1.3)), 3)}


def _kokoro_settings(rng: np.random.Generator, voice: str | None = None) -> dict:
    from .kokoro import VOICES as KOKORO_VOICES

    # speed > 1 is faster speech (Kokoro's own range is 0.5-2; beyond 0.8-1.25 its Japanese slurs or drags)
    voice = voice or str(rng.choice(KOKORO_VOICES))
    return {"voice": voice, "speed": round(float(rng.uniform(0.8, 1.25)), 3)}


# the languages each engine speaks; espeak-ng speaks all of ours
ENGINE_LANGS = {"piper": ("en",), "festival": ("en",), "kokoro": ("ja",)}


def engine_of(synth) -> str:
    """'espeak-ng', 'piper', 'festival' or 'kokoro' for a synthesizer object."""
    if isinstance(synth, EspeakSynth):
        return "espeak-ng"
    from .festival import FestivalSynth
    from .kokoro import KokoroSynth

    if isinstance(synth, FestivalSynth):
        return "festival"
    return "kokoro" if isinstance(synth, KokoroSynth) else "piper"


def synth_utterance(synth, lang: str, rng: np.random.Generator, voice: str | None = None,
                    text: str | None = None) -> tuple[np.ndarray, list[Phone], dict]:
    """1-3 sentences joined by pauses, as 16 kHz audio with timed phones.

    ``synth``: an :class:`EspeakSynth` (any language), a :class:`~a2f_core.teacher.piper.PiperSynth`
    or a :class:`~a2f_core.teacher.festival.FestivalSynth` (both English) or a
    :class:`~a2f_core.teacher.kokoro.KokoroSynth` (Japanese). ``voice``: espeak-ng's or Kokoro's voice
    (default: a random one of the language's voices).
    """
    import soxr

    engine = engine_of(synth)
    if engine != "espeak-ng" and lang not in ENGINE_LANGS[engine]:
        raise ValueError(f"the {engine} voice speaks {', '.join(ENGINE_LANGS[engine])} only")
    if engine == "espeak-ng":
        settings = _espeak_settings(lang, rng, voice)
    elif engine == "kokoro":
        settings = _kokoro_settings(rng, voice)
    else:
        settings = {"piper": _piper_settings, "festival": _festival_settings}[engine](rng)
    texts = [text] if text else [sentence(lang, rng) for _ in range(int(rng.integers(1, 4)))]
    parts, phones, t = [], [], 0.0
    lead = float(rng.uniform(0.1, 0.6))
    parts.append(np.zeros(int(lead * SAMPLE_RATE), np.float32))
    phones.append(Phone("_", "sil", 0.0, lead, lang))
    t = lead
    for k, tx in enumerate(texts):
        if engine == "piper":
            audio, sr, ph = synth.synth(tx, settings["length_scale"], settings["noise_scale"],
                                        settings["noise_w_scale"])
        elif engine == "festival":
            audio, sr, ph = synth.synth(tx, settings["stretch"])
        elif engine == "kokoro":
            audio, sr, ph = synth.synth(tx, settings["voice"], settings["speed"])
        else:
            audio, sr, ph = synth.synth(tx, settings["voice"], lang, rate=settings["rate"],
                                        pitch=settings["pitch"], pitch_range=settings["range"])
        audio16 = soxr.resample(audio, sr, SAMPLE_RATE).astype(np.float32)
        dur = len(audio16) / SAMPLE_RATE
        for p in ph:
            q = Phone(p.label, p.cls, p.start + t, min(p.end, dur) + t, lang, p.stress)
            if q.end > q.start:
                if phones and phones[-1].cls == "sil" and q.cls == "sil":
                    phones[-1].end = q.end
                else:
                    phones.append(q)
        parts.append(audio16)
        t += dur
        gap = float(rng.uniform(0.3, 1.2)) if k < len(texts) - 1 else float(rng.uniform(0.1, 0.6))
        parts.append(np.zeros(int(gap * SAMPLE_RATE), np.float32))
        if phones[-1].cls == "sil":
            phones[-1].end = t + gap
        else:
            phones.append(Phone("_", "sil", t, t + gap, lang))
        t += gap
    audio = np.concatenate(parts)
    phones[-1].end = len(audio) / SAMPLE_RATE
    meta = {**settings, "text": " | ".join(texts)}
    return audio, phones, meta


def _engine_for(i: int, lang: str, seed: int, shares: dict) -> str:
    """Which synthesizer speaks utterance ``i``: English goes to Piper / festival and Japanese to Kokoro
    with their shares of that language (an own random stream, so the espeak-ng items of a seed are the
    same whatever the shares)."""
    mine = [e for e in ("piper", "festival", "kokoro") if lang in ENGINE_LANGS[e] and shares.get(e, 0.0) > 0]
    if not mine:
        return "espeak-ng"
    u = np.random.default_rng([seed, i, 7]).random()
    edge = 0.0
    for engine in mine:
        edge += shares[engine]
        if u < edge:
            return engine
    return "espeak-ng"


def _make_item(out: Path, synths: dict, i: int, lang: str, seed: int, augment_prob: float,
               shares: dict | None = None) -> dict:
    """Utterance ``i``: its audio, teacher curves and manifest record (a function of seed and i)."""
    import soundfile as sf

    rng = np.random.default_rng([seed, i])
    engine = _engine_for(i, lang, seed, shares or {})
    if engine not in synths:
        if engine == "piper":
            from .piper import PiperSynth

            synths[engine] = PiperSynth()
        elif engine == "kokoro":
            from .kokoro import KokoroSynth

            synths[engine] = KokoroSynth()
        else:
            from .festival import FestivalSynth

            synths[engine] = FestivalSynth()
    audio, phones, meta = synth_utterance(synths[engine], lang, rng)
    curves = phones_to_curves(phones, num_frames(len(audio)), audio, SAMPLE_RATE)
    audio_aug, aug = augment(audio, rng, augment_prob)
    uid = f"{lang}_{seed}_{i:06d}"
    sf.write(out / "wav" / f"{uid}.wav", audio_aug, SAMPLE_RATE, subtype="PCM_16")
    np.savez_compressed(out / "curves" / f"{uid}.npz", values=curves.values, fps=np.float64(curves.fps))
    dur = len(audio) / SAMPLE_RATE
    return {"id": uid, "audio": f"wav/{uid}.wav", "curves": f"curves/{uid}.npz", "lang": lang,
            "source": engine, "duration": round(dur, 3), "augment": aug, **meta,
            "phones": [p.to_dict() for p in phones]}


def _build_part(args) -> list[tuple[int, dict]]:
    """Worker ``part`` of ``parts``: utterances part, part+parts, ... until it holds target/parts seconds."""
    out, target, langs, seed, augment_prob, shares, part, parts, queue = args
    synths = {"espeak-ng": EspeakSynth()}
    recs, total, i = [], 0.0, part
    while total < target / parts:
        rec = _make_item(out, synths, i, langs[i % len(langs)], seed, augment_prob, shares)
        recs.append((i, rec))
        total += rec["duration"]
        if queue is not None:
            queue.put(rec["duration"])
        i += parts
    return recs


def build_dataset(outdir: str | os.PathLike, hours: float, langs: tuple[str, ...] = ("en", "ja", "zh"),
                  seed: int = 0, augment_prob: float = 0.7, progress: bool = True, jobs: int = 1,
                  piper_share: float = 0.0, festival_share: float = 0.0, kokoro_share: float = 0.0) -> dict:
    """Write ``hours`` of pairs into ``outdir`` (wav/, curves/, manifest.jsonl); returns a summary.

    ``piper_share`` / ``festival_share``: the shares of English utterances spoken by Piper's natural
    voice and by festival's HTS voice instead of espeak-ng; ``kokoro_share``: the share of Japanese
    utterances spoken by Kokoro's natural voices (each needs its optional install).

    Deterministic for a given (seed, jobs): utterance i always comes from the same random stream, but
    espeak-ng keeps a little state between the utterances one process speaks, so the split over worker
    processes shows in the audio (not in the text, voice or prosody settings).
    """
    if piper_share + festival_share > 1:
        raise ValueError("the Piper and festival shares add up to more than 1")
    if not 0 <= kokoro_share <= 1:
        raise ValueError("the Kokoro share must lie between 0 and 1")
    shares = {"piper": float(piper_share), "festival": float(festival_share), "kokoro": float(kokoro_share)}
    out = Path(outdir)
    (out / "wav").mkdir(parents=True, exist_ok=True)
    (out / "curves").mkdir(parents=True, exist_ok=True)
    target = hours * 3600.0
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=round(target), unit="s", desc="teach build")
    if jobs <= 1:
        class _Bar:                # _build_part reports each utterance's seconds through .put
            @staticmethod
            def put(d):
                bar.update(round(d))

        recs = _build_part((out, target, langs, seed, augment_prob, shares, 0, 1,
                             _Bar if bar is not None else None))
    else:
        import multiprocessing as mp
        import threading

        ctx = mp.get_context("spawn")
        with ctx.Manager() as manager, ctx.Pool(jobs) as pool:
            q = manager.Queue()
            res = pool.map_async(_build_part, [(out, target, langs, seed, augment_prob, shares, w, jobs, q)
                                               for w in range(jobs)])

            def drain():
                while True:
                    d = q.get()
                    if d is None:
                        return
                    if bar is not None:
                        bar.update(round(d))

            th = threading.Thread(target=drain, daemon=True)
            th.start()
            parts = res.get()
            q.put(None)
            th.join()
        recs = [r for part in parts for r in part]
    recs.sort(key=lambda r: r[0])
    manifest = out / "manifest.jsonl"
    tmp = manifest.with_suffix(".jsonl.tmp")
    per_lang = {lang: 0.0 for lang in langs}
    with open(tmp, "w", encoding="utf-8") as mf:
        for _, rec in recs:
            mf.write(json.dumps(rec, ensure_ascii=False) + "\n")
            per_lang[rec["lang"]] += rec["duration"]
    os.replace(tmp, manifest)
    if bar is not None:
        bar.close()
    total = sum(per_lang.values())
    per_source: dict[str, float] = {}
    for _, rec in recs:
        per_source[rec["source"]] = per_source.get(rec["source"], 0.0) + rec["duration"]
    return {"items": len(recs), "seconds": round(total, 1),
            "per_source_s": {k: round(v, 1) for k, v in sorted(per_source.items())},
            "per_language_s": {k: round(v, 1) for k, v in per_lang.items()}, "manifest": str(manifest)}
