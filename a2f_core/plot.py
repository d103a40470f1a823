"""Plots of baked curves: a few telling channels over time, with phone labels underneath."""

from __future__ import annotations

import os
from typing import Sequence

from .arkit import lip_aperture
from .curves import BlendshapeCurves

DEFAULT_CHANNELS = ("jawOpen", "mouthClose", "mouthFunnel", "eyeBlinkLeft")


def plot_curves(curves: BlendshapeCurves, path: str | os.PathLike, channels: Sequence[str] = DEFAULT_CHANNELS,
                phones: Sequence[tuple[str, float, float]] | None = None, title: str | None = None) -> None:
    """Save a PNG of ``channels`` over time; ``phones`` = (label, start s, end s) drawn under the curves."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(12, 4.5), dpi=100)
    t = curves.times
    for name in channels:
        ax.plot(t, curves.channel(name), label=name, lw=1.4)
    if "jawOpen" in curves.names and "mouthClose" in curves.names:
        ax.plot(t, lip_aperture(curves.values), "k--", lw=1.0, label="aperture (jawOpen - mouthClose)")
    ax.set_ylim(-0.25 if phones else 0, 1.02)
    ax.set_xlim(0, max(curves.duration, 1e-3))
    ax.set_xlabel("time (s)")
    ax.set_ylabel("value")
    if phones:
        for label, start, end in phones:
            if label in ("SIL", "sil", "sp", ""):
                continue
            ax.axvspan(start, end, ymin=0, ymax=0.2 / 1.27, color="0.9", lw=0)
            ax.text((start + end) / 2, -0.13, label, ha="center", va="center", fontsize=7)
    ax.legend(loc="upper right", fontsize=8, ncol=3)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
