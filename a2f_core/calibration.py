"""Output calibration: a monotone map per mouth blendshape, fitted on real speech the model trains on.

The model learns its lip shapes from the teacher on synthetic speech. On real voices it keeps their
order (open vowels above consonants, p/b/m at the bottom) but squeezes their range: on the training
speakers' real English its lip aperture's median is 0.06 where the teacher's is 0.15. Fine-tuning the
network on pseudo-labelled real speech widened the opening but also taught it to stop sealing the lips;
a map applied to each output value on its own cannot do that, because it keeps every curve's order.

``fit_output_map`` matches quantiles: for each mouth channel the model produces, its values above
``KEEP_BELOW`` on the training speakers' real recordings (``train.pseudo.REAL_TRAIN_SOURCES``, never the
dev speakers) are mapped onto the teacher's values above it on the same recordings (their PocketSphinx
alignments), with the slope capped at ``MAX_SLOPE``. The map is stored in the checkpoint
(``output_map``), applied by the engine after the temporal smoothing and dropped when a checkpoint is
trained further. ``python -m a2f_core calibrate`` writes a calibrated copy of a checkpoint; the shipped
model has no map (docs/EXPERIMENTS.md, "Output map": what it did on the dev clips).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .arkit import ARKIT_NAMES, MOUTH

N_KNOTS = 41            # quantile levels of a fitted channel (ends included)
KEEP_BELOW = 0.10       # values up to this stay as they are: QUALITY.md's level of sealed lips
MAX_SLOPE = 2.0         # no value moves more than twice as fast as before: steps stay at most doubled
DEAD_SHARE = 0.1        # an output is dead when its 99th percentile is under this share of its targets' ...
DEAD_USED = 0.05        # ... while theirs is over this (train --revive, channels)


@dataclass
class OutputMap:
    """Piecewise-linear monotone maps, one per blendshape: output[:, c] = interp(values[:, c], x[c], y[c]).

    ``x``, ``y``: (52, K) knots, ``x[c]`` strictly increasing; an identity channel has x == y.
    Values outside a channel's knots take its end values.
    """

    x: np.ndarray
    y: np.ndarray

    def __post_init__(self):
        self.x = np.asarray(self.x, np.float64)
        self.y = np.asarray(self.y, np.float64)
        if self.x.shape != self.y.shape or self.x.ndim != 2 or self.x.shape[0] != len(ARKIT_NAMES) \
                or self.x.shape[1] < 2:
            raise ValueError(f"output map knots must be two (52, K) arrays, K >= 2; got {self.x.shape}, {self.y.shape}")
        if not (np.all(np.diff(self.x, axis=1) > 0) and np.all(np.diff(self.y, axis=1) >= 0)):
            raise ValueError("output map knots must increase")
        self._active = [c for c in range(len(ARKIT_NAMES)) if not np.allclose(self.x[c], self.y[c])]

    @classmethod
    def identity(cls, knots: int = 2) -> "OutputMap":
        grid = np.tile(np.linspace(0.0, 1.0, knots), (len(ARKIT_NAMES), 1))
        return cls(grid, grid.copy())

    @property
    def channels(self) -> list[str]:
        """The blendshapes the map changes."""
        return [ARKIT_NAMES[c] for c in self._active]

    def __call__(self, values: np.ndarray) -> np.ndarray:
        """Mapped copy of (T, 52) ``values`` (same dtype)."""
        out = np.array(values, copy=True)
        for c in self._active:
            out[:, c] = np.interp(values[:, c], self.x[c], self.y[c])
        return out

    def to_dict(self) -> dict:
        import torch

        return {"x": torch.from_numpy(self.x.astype(np.float32)), "y": torch.from_numpy(self.y.astype(np.float32))}

    @classmethod
    def from_dict(cls, d: dict) -> "OutputMap":
        return cls(np.asarray(d["x"], np.float64), np.asarray(d["y"], np.float64))


def dead_outputs(values: np.ndarray, targets: np.ndarray, on: np.ndarray | None = None,
                 share: float = 0.1, used: float = 0.0) -> list[int]:
    """Channels of (T, 52) ``values`` the model does not produce although ``targets`` use them: the
    99th percentile of the values under ``share`` of the targets' while that is over ``used``.
    ``on``: (T, 52) True where a frame counts (default: all)."""
    dead = []
    for c in range(values.shape[1]):
        v, t = (values[:, c], targets[:, c]) if on is None else (values[on[:, c], c], targets[on[:, c], c])
        if len(t) == 0:
            continue
        top = np.percentile(t, 99)
        if top > used and np.percentile(v, 99) < share * top:
            dead.append(c)
    return dead


def channel_report(values: np.ndarray, targets: np.ndarray, share: float = DEAD_SHARE,
                   used: float = DEAD_USED) -> list[dict]:
    """Per blendshape, how (T, 52) model ``values`` compare with the teacher's ``targets`` on the same frames:
    median and 99th percentile of each, Pearson r (None where either side is constant) and ``dead``
    (:func:`dead_outputs` with ``train --revive``'s thresholds: the model's 99th percentile under ``share``
    of the teacher's while that is over ``used``)."""
    dead = set(dead_outputs(values, targets, share=share, used=used))
    rows = []
    for c, name in enumerate(ARKIT_NAMES):
        v, t = values[:, c].astype(np.float64), targets[:, c].astype(np.float64)
        r = float(np.corrcoef(v, t)[0, 1]) if len(v) > 1 and v.std() > 0 and t.std() > 0 else None
        rows.append({"name": name, "model_median": float(np.median(v)), "model_p99": float(np.percentile(v, 99)),
                     "teacher_median": float(np.median(t)), "teacher_p99": float(np.percentile(t, 99)),
                     "r": r, "dead": c in dead})
    return rows


def quantile_knots(source: np.ndarray, target: np.ndarray, knots: int = N_KNOTS,
                   keep_below: float = KEEP_BELOW, max_slope: float = MAX_SLOPE) -> tuple[np.ndarray, np.ndarray]:
    """Knots of the monotone map that carries ``source``'s values above ``keep_below`` onto ``target``'s.

    Both are 1-D samples in [0, 1]. Values up to ``keep_below`` stay as they are (a sealed lip or a mouth
    at rest keeps what the network learned); above it, the source's values are matched to the target's
    values above it at ``knots`` evenly spaced quantile levels, ending at (1, 1), with the map's slope
    capped at ``max_slope`` (a frame-to-frame step grows at most that much). Where the source has
    tied quantiles (a value it outputs on many frames) the tie keeps the mean of the target quantiles it
    spans. A source or target with too few values above ``keep_below`` gives the identity.
    """
    src, tgt = np.clip(source, 0, 1), np.clip(target, 0, 1)
    src, tgt = src[src > keep_below], tgt[tgt > keep_below]
    if min(len(src), len(tgt)) < 2 * knots:
        grid = np.linspace(0.0, 1.0, knots)
        return grid, grid.copy()
    levels = np.linspace(0.0, 1.0, knots)[:-1]
    qx, qy = np.quantile(src, levels), np.quantile(tgt, levels)
    xs, inverse = np.unique(np.round(qx, 6), return_inverse=True)
    ys = np.bincount(inverse, weights=qy) / np.bincount(inverse)
    keep = (xs > keep_below) & (xs < 1)
    x = np.concatenate([[0.0, keep_below], xs[keep], [1.0]])
    y = np.maximum.accumulate(np.concatenate([[0.0, keep_below], np.clip(ys[keep], keep_below, 1), [1.0]]))
    for i in range(1, len(x)):
        y[i] = min(y[i], y[i - 1] + max_slope * (x[i] - x[i - 1]))
    # resample onto a fixed number of knots (0 and keep_below among them) so every channel's row has the
    # same length and the identity part stays exact
    grid = np.concatenate([[0.0], np.interp(np.linspace(1, len(x) - 1, knots - 1), np.arange(len(x)), x)])
    return grid, np.interp(grid, x, y)


def fit_output_map(model_values: np.ndarray, teacher_values: np.ndarray, channels=MOUTH,
                   knots: int = N_KNOTS, keep_below: float = KEEP_BELOW, max_slope: float = MAX_SLOPE) -> OutputMap:
    """Quantile-matching maps (:func:`quantile_knots`) for those of ``channels`` the model produces, from
    frames of (T, 52) model and teacher curves of the same recordings; the other channels stay as they
    are. A channel whose 99th percentile is under a tenth of the teacher's is one the model does not
    produce (:func:`dead_outputs`, the test ``SequentialTrainer.revive_dead`` uses): stretching it would
    only magnify noise."""
    x = np.tile(np.linspace(0.0, 1.0, knots), (len(ARKIT_NAMES), 1))
    y = x.copy()
    dead = set(dead_outputs(model_values, teacher_values))
    for name in channels:
        c = ARKIT_NAMES.index(name)
        if c in dead:
            continue
        x[c], y[c] = quantile_knots(model_values[:, c], teacher_values[:, c], knots, keep_below, max_slope)
    return OutputMap(x, y)


def raw_outputs(model, audio: np.ndarray, n: int) -> np.ndarray:
    """The model's first ``n`` frames on 16 kHz ``audio``, without any output map of its own (restored after)."""
    from .engine import infer

    saved, model.output_map = model.output_map, None
    try:
        return infer(audio, model, rate=16000).values[:n]
    finally:
        model.output_map = saved


def real_training_pairs(data: str | Path, model, cache: str | Path | None = None,
                        progress: bool = True) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(model frames, teacher frames, clip ids) over the training speakers' real English recordings
    (:func:`a2f_core.train.pseudo.training_speakers`).

    The model runs without any output map of its own, so a map is always fitted on raw outputs.
    """
    from .train.pseudo import REAL_TRAIN_SOURCES, training_speakers

    clips = list(training_speakers(data, cache))
    if not clips:
        from .errors import A2FError

        raise A2FError(f"{data}: no aligned recordings of the training speakers "
                       f"({', '.join(REAL_TRAIN_SOURCES)}) under speech_more/en")
    mine, teach, ids = [], [], []
    it = clips
    if progress:
        from tqdm import tqdm

        it = tqdm(clips, desc="calibrate", unit="clip", leave=False)
    for wav, _, audio, curves in it:
        mine.append(raw_outputs(model, audio, len(curves.values)))
        teach.append(curves.values)
        ids.append(wav.stem)
    return np.concatenate(mine), np.concatenate(teach), ids
