"""Speed and memory benchmark of the whole pipeline (features included)."""

from __future__ import annotations

import platform
import resource
import time

import numpy as np
import torch

from .audio import SAMPLE_RATE


def synthetic_speech(seconds: float, seed: int = 0, rate: int = SAMPLE_RATE) -> np.ndarray:
    """Deterministic speech-like audio: a pitched pulse train through moving formants, with
    syllable rhythm, fricative noise and pauses. For timing, not for quality."""
    from scipy.signal import lfilter

    rng = np.random.default_rng(seed)
    n = int(seconds * rate)
    out = np.zeros(n, np.float32)
    vowels = [(730, 1090), (270, 2290), (300, 870), (530, 1840), (570, 840), (660, 1720)]
    pos = 0
    phase = 0.0
    while pos < n:
        if rng.random() < 0.15:                       # pause
            pos += int(rng.uniform(0.2, 0.6) * rate)
            continue
        dur = int(rng.uniform(0.12, 0.3) * rate)
        seg_n = min(dur, n - pos)
        f0 = rng.uniform(90, 220) * np.linspace(1.05, 0.95, seg_n)
        ph = phase + np.cumsum(2 * np.pi * f0 / rate)
        phase = float(ph[-1]) % (2 * np.pi)
        src = (np.sin(ph) > 0.95).astype(np.float64) + 0.02 * rng.standard_normal(seg_n)
        sig = np.zeros(seg_n)
        for f in vowels[rng.integers(len(vowels))]:
            r = np.exp(-np.pi * 80 / rate)
            a = [1, -2 * r * np.cos(2 * np.pi * f / rate), r * r]
            sig += lfilter([1 - r], a, src)
        if rng.random() < 0.4:                        # fricative onset
            k = min(seg_n, int(0.06 * rate))
            sig[:k] += 0.3 * rng.standard_normal(k)
        env = np.sin(np.linspace(0, np.pi, seg_n)) ** 0.5
        out[pos:pos + seg_n] = (0.3 * sig * env / (np.abs(sig).max() + 1e-9)).astype(np.float32)
        pos += seg_n
    return out


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def current_rss_mb() -> float:
    """Resident memory now (Linux /proc; falls back to the peak elsewhere)."""
    try:
        with open("/proc/self/statm") as f:
            import os

            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        return peak_rss_mb()


def bench_model(checkpoint: str | None):
    """(model, label): the checkpoint or shipped model, else random weights (the speed is the same)."""
    from .errors import NoModelError
    from .model import DualStreamModel, load_checkpoint

    try:
        model = load_checkpoint(checkpoint)
        return model, getattr(model, "checkpoint_path", "checkpoint")
    except NoModelError:
        torch.manual_seed(0)
        return DualStreamModel().eval(), "random-init (no trained model installed; speed is the same)"


def run_hours(hours: float = 1.0, checkpoint: str | None = None, threads: int | None = None) -> dict:
    """Stream ``hours`` of synthetic speech through the engine in 60 s blocks; RSS at 10, 50, 100 %."""
    from .engine import StreamingEngine, torch_threads

    model, _ = bench_model(checkpoint)
    total = max(1, int(hours * 3600 / 60))
    marks: dict[int, list[str]] = {}
    for f in (0.1, 0.5, 1.0):
        marks.setdefault(max(1, round(total * f)), []).append(f"rss_mb_at_{int(f * 100)}pct")
    out: dict = {"audio_hours": hours}
    frames = 0
    t0 = time.perf_counter()
    with torch_threads(threads):
        engine = StreamingEngine(model)
        for i in range(1, total + 1):
            frames += len(engine.push(synthetic_speech(60.0, seed=i)))
            for key in marks.get(i, []):
                out[key] = round(current_rss_mb(), 1)
        frames += len(engine.flush())
    wall = time.perf_counter() - t0
    out.update({"frames": frames, "wall_s": round(wall, 1), "rtf": round(wall / (hours * 3600), 5),
                "rss_growth_10_to_100_mb": round(out["rss_mb_at_100pct"] - out["rss_mb_at_10pct"], 1),
                "peak_rss_mb": round(peak_rss_mb(), 1)})
    return out


def run_bench(seconds: float = 60.0, checkpoint: str | None = None, threads: int | None = None,
              naive: bool = False) -> dict:
    from .engine import infer, infer_naive, torch_threads

    model, which = bench_model(checkpoint)
    audio = synthetic_speech(seconds)
    with torch_threads(threads):
        infer(synthetic_speech(2.0, seed=1), model, rate=SAMPLE_RATE)  # warm-up: imports, openSMILE start
        # the floor of the whole pipeline: the same clip's eGeMAPS run alone, with nothing beside it
        from .features.emotion import emotion_features

        t0 = time.perf_counter()
        emotion_features(audio)
        alone = time.perf_counter() - t0
        timings: dict = {}
        t0 = time.perf_counter()
        curves = infer(audio, model, rate=SAMPLE_RATE, timings=timings)
        wall = time.perf_counter() - t0
        result = {
            "audio_seconds": seconds,
            "frames": len(curves),
            "wall_s": round(wall, 4),
            "rtf": round(wall / seconds, 5),
            "rtf_features": round((timings["mel"] + timings["emotion"]) / seconds, 5),
            "rtf_mel": round(timings["mel"] / seconds, 5),
            "rtf_emotion": round(timings["emotion"] / seconds, 5),
            "rtf_model": round(timings["model"] / seconds, 5),
            "rtf_emotion_alone": round(alone / seconds, 5),
            "frames_per_s": round(len(curves) / wall, 1),
            "peak_rss_mb": round(peak_rss_mb(), 1),
            "threads": torch.get_num_threads(),
            "parameters": model.num_parameters(),
            "model": which,
            "cpu": platform.processor() or platform.machine(),
        }
        if naive:
            t0 = time.perf_counter()
            ref = infer_naive(audio, model)
            nwall = time.perf_counter() - t0
            result["naive_wall_s"] = round(nwall, 3)
            result["naive_rtf"] = round(nwall / seconds, 4)
            result["speedup_vs_naive"] = round(nwall / wall, 2)
            result["max_abs_diff_vs_naive"] = float(np.abs(ref - curves.values).max())
            result["peak_rss_mb"] = round(peak_rss_mb(), 1)
    return result
