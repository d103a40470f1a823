"""Training data: (audio, curves) pairs from manifests, real rigs and Live Link Face takes.

Features are deterministic, so each file's log-mel frames and eGeMAPS hops
are computed once and cached on disk (``cache_dir``); epochs only read them.
Targets may cover only some channels (a ``mask``): real rigs such as
FACEGOOD carry the mouth alone; and only some frames (a ``frame_weight``):
pseudo-labels may leave out the frames their alignment cannot time well.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..arkit import ARKIT_NAMES
from ..audio import load_audio
from ..curves import BlendshapeCurves
from ..features.emotion import emotion_features
from ..features.mel import log_mel, num_frames
from ..model.dual_stream import ModelConfig


@dataclass
class TrainItem:
    audio: str
    target: np.ndarray                 # (T, 52) at 30 fps
    mask: np.ndarray                   # (52,) 1 where the target is meaningful
    weight: float = 1.0
    lang: str = ""
    source: str = ""
    meta: dict = field(default_factory=dict)
    frame_weight: np.ndarray | None = None  # (T,) per-frame weight (0: frame not supervised); None: all 1
    seal: np.ndarray | None = None          # (T,) bool: the frames of each p/b/m (the trainer's seal term); None: no phones


@dataclass
class CachedFeatures:
    mel: np.ndarray      # (past + T + lookahead, 80) raw log-mel
    hops: np.ndarray     # (H,) hop end times in 10 ms
    hop_vals: np.ndarray  # (H, 88) raw eGeMAPS


def _cache_key(path: str, cfg: ModelConfig) -> str:
    st = os.stat(path)
    h = hashlib.sha1(f"{os.path.abspath(path)}|{st.st_size}|{st.st_mtime_ns}|{cfg.past}|{cfg.lookahead}|v1".encode())
    return h.hexdigest()[:20]


def features_for(path: str, cfg: ModelConfig, cache_dir: str | os.PathLike | None) -> CachedFeatures:
    cache = Path(cache_dir) / f"{_cache_key(path, cfg)}.npz" if cache_dir else None
    if cache is not None and cache.exists():
        with np.load(cache) as z:
            return CachedFeatures(z["mel"], z["hops"], z["hop_vals"])
    audio = load_audio(path)
    T = num_frames(len(audio))
    mel = log_mel(audio, 0, -cfg.past, T + cfg.lookahead)
    hops, vals = emotion_features(audio)
    feats = CachedFeatures(mel, hops, vals)
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_name(cache.stem + f".{os.getpid()}.tmp.npz")
        np.savez(tmp, mel=mel, hops=hops, hop_vals=vals)
        os.replace(tmp, cache)
    return feats


def _features_job(args) -> None:
    features_for(*args)


def fill_cache(paths: list[str], cfg: ModelConfig, cache_dir: str | os.PathLike | None, jobs: int = 1,
               progress: bool = True) -> list[CachedFeatures]:
    """Features of every file, computing the missing ones in ``jobs`` worker processes first."""
    todo = [p for p in paths if cache_dir is None or not (Path(cache_dir) / f"{_cache_key(p, cfg)}.npz").exists()]
    if jobs > 1 and cache_dir is not None and len(todo) > 1:
        import multiprocessing as mp

        with mp.get_context("spawn").Pool(jobs) as pool:
            it = pool.imap_unordered(_features_job, [(p, cfg, cache_dir) for p in todo], chunksize=4)
            if progress:
                from tqdm import tqdm

                it = tqdm(it, total=len(todo), desc="features", unit="file")
            for _ in it:
                pass
    it = paths
    if progress and (jobs <= 1 or cache_dir is None):
        from tqdm import tqdm

        it = tqdm(paths, desc="features", unit="file")
    return [features_for(p, cfg, cache_dir) for p in it]


def load_manifest(path: str | os.PathLike, weight: float = 1.0,
                  skip_bilabials_of: tuple[str, ...] | list[str] = (),
                  leave_out: tuple[str, ...] | list[str] = (),
                  bilabial_weight: dict[str, float] | None = None) -> list[TrainItem]:
    """Teacher-built pairs (``teach build``'s manifest.jsonl): all 52 channels supervised.

    ``skip_bilabials_of``: voices (the records' ``source``: ``espeak-ng``, ``piper``, ``festival``, ``kokoro``) whose
    frames around p/b/m are left unsupervised, so the other voices alone teach the closures.
    ``leave_out``: voices whose clips are not read at all.
    ``bilabial_weight``: voice -> weight of its frames around p/b/m (the frames ``skip_bilabials_of``
    would leave out), so that voice's closures count that many times.
    """
    from ..eval import CLASS_AS_ARPABET
    from .pseudo import bilabial_frames, bilabial_frames_off

    skip, bilabial_weight = set(skip_bilabials_of), bilabial_weight or {}
    root = Path(path).parent
    items = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if not line.strip():
                continue
            rec = json.loads(line)
            source = rec.get("source", "teacher")
            if source in leave_out:
                continue
            with np.load(root / rec["curves"]) as z:
                values = z["values"]
            fw = None
            phones = [(CLASS_AS_ARPABET.get(ph["cls"], ph["cls"]), ph["start"], ph["end"])
                      for ph in rec.get("phones", [])]
            if source in skip or source in bilabial_weight:
                fw = bilabial_frames_off(phones, len(values))
                if source not in skip:
                    fw = 1.0 + (bilabial_weight[source] - 1.0) * (1.0 - fw)
            items.append(TrainItem(str(root / rec["audio"]), values, np.ones(len(ARKIT_NAMES), np.float32),
                                   weight, rec.get("lang", ""), source, {"id": rec["id"]}, frame_weight=fw,
                                   seal=bilabial_frames(phones, len(values)) if phones else None))
    return items


def load_pair(audio: str | os.PathLike, curves: str | os.PathLike, weight: float = 1.0,
              fps: float | None = None) -> TrainItem:
    """A user's own capture: audio + curves (CSV/JSON/NPZ or Live Link Face CSV, any fps -> 30)."""
    c = BlendshapeCurves.load(curves, fps=fps)
    if c.fps != 30:
        c = c.resample(30)
    mask = np.array([1.0 if n in c.names else 0.0 for n in ARKIT_NAMES], np.float32)
    values = np.zeros((len(c), len(ARKIT_NAMES)), np.float32)
    for i, n in enumerate(ARKIT_NAMES):
        if n in c.names:
            values[:, i] = c.channel(n)
    return TrainItem(str(audio), values, mask, weight, source="capture")
