"""BlendshapeCurves: a (T, 52) result with its frame rate and names, and its file formats.

Formats: CSV (``frame,time,<52 names>``), JSON, NPZ, and Live Link Face CSV
(``Timecode,BlendShapeCount,EyeBlinkLeft,...``, PascalCase names). Writes
are atomic: a temporary file in the same folder, renamed into place.
"""

from __future__ import annotations

import csv
import io
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from .arkit import ARKIT_NAMES, canonical_name
from .errors import A2FError, OutputError

FORMATS = ("csv", "json", "npz", "livelink")
_LLF_EXTRA = ("HeadYaw", "HeadPitch", "HeadRoll", "LeftEyeYaw", "LeftEyePitch", "LeftEyeRoll",
              "RightEyeYaw", "RightEyePitch", "RightEyeRoll")


def _pascal(name: str) -> str:
    return name[0].upper() + name[1:]


@dataclass
class BlendshapeCurves:
    """Blendshape values per frame. ``values[t, i]`` is ``names[i]`` at time ``t / fps``."""

    values: np.ndarray
    fps: float = 30.0
    names: Sequence[str] = ARKIT_NAMES

    def __post_init__(self) -> None:
        self.values = np.asarray(self.values, dtype=np.float32)
        self.names = tuple(self.names)
        if self.values.ndim != 2 or self.values.shape[1] != len(self.names):
            raise ValueError(f"values must be (T, {len(self.names)}), got {self.values.shape}")
        if not self.fps > 0:
            raise ValueError("fps must be positive")

    def __len__(self) -> int:
        return len(self.values)

    @property
    def duration(self) -> float:
        return len(self.values) / self.fps

    @property
    def times(self) -> np.ndarray:
        return np.arange(len(self.values)) / self.fps

    def channel(self, name: str) -> np.ndarray:
        return self.values[:, self.names.index(name)]

    def resample(self, fps: float) -> "BlendshapeCurves":
        """Linear interpolation onto another frame rate; duration is kept (ceil(duration * fps) frames)."""
        fps = float(fps)
        if fps <= 0:
            raise ValueError("fps must be positive")
        n = max(1, int(np.ceil(round(len(self.values) / self.fps * fps, 6))))
        src = self.times
        dst = np.arange(n) / fps
        out = np.empty((n, self.values.shape[1]), np.float32)
        for j in range(self.values.shape[1]):
            out[:, j] = np.interp(dst, src, self.values[:, j])
        return BlendshapeCurves(out, fps, self.names)

    # ----------------------------------------------------------------- write
    def save(self, path: str | os.PathLike, format: str | None = None) -> Path:
        """Write to ``path``; format from ``format`` or the extension (.csv .json .npz)."""
        path = Path(path)
        if path.is_dir():
            raise OutputError(f"{path}: is a directory; give a file name")
        fmt = format or {".csv": "csv", ".json": "json", ".npz": "npz"}.get(path.suffix.lower())
        if fmt not in FORMATS:
            raise OutputError(f"{path}: unknown output format; use .csv, .json, .npz or --format livelink")
        if not path.parent.exists():
            raise OutputError(f"{path.parent}: output folder does not exist")
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            if fmt == "npz":
                with open(tmp, "wb") as f:
                    np.savez_compressed(f, values=self.values, fps=np.float64(self.fps), names=np.array(self.names))
            else:
                text = {"csv": self._csv, "json": self._json, "livelink": self._livelink}[fmt]()
                with open(tmp, "w", newline="", encoding="utf-8") as f:
                    f.write(text)
            os.replace(tmp, path)
        except PermissionError:
            raise OutputError(f"{path}: no permission to write here") from None
        except OSError as exc:
            raise OutputError(f"{path}: cannot write ({exc.strerror or exc})") from None
        finally:
            if tmp.exists():
                tmp.unlink()
        return path

    def _csv(self) -> str:
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["frame", "time", *self.names])
        for t, row in enumerate(self.values):
            w.writerow([t, f"{t / self.fps:.6f}", *(f"{v:.6f}" for v in row)])
        return buf.getvalue()

    def _json(self) -> str:
        return json.dumps({"fps": self.fps, "names": list(self.names),
                           "frames": [[round(float(v), 6) for v in row] for row in self.values]})

    def _livelink(self) -> str:
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["Timecode", "BlendShapeCount", *(_pascal(n) for n in self.names), *_LLF_EXTRA])
        count = len(self.names) + len(_LLF_EXTRA)
        ifps = int(round(self.fps))
        for t, row in enumerate(self.values):
            sec, ff = divmod(t, ifps)
            h, rem = divmod(sec, 3600)
            m, s = divmod(rem, 60)
            w.writerow([f"{h:02d}:{m:02d}:{s:02d}:{ff:02d}.000", count, *(f"{v:.6f}" for v in row),
                        *(["0.0"] * len(_LLF_EXTRA))])
        return buf.getvalue()

    # ------------------------------------------------------------------ read
    @classmethod
    def load(cls, path: str | os.PathLike, fps: float | None = None) -> "BlendshapeCurves":
        """Read any format :meth:`save` writes, or a Live Link Face take (``fps`` default 60 for those)."""
        path = Path(path)
        if not path.is_file():
            raise A2FError(f"{path}: no such file")
        suffix = path.suffix.lower()
        if suffix == ".npz":
            with np.load(path, allow_pickle=False) as z:
                return cls(z["values"], float(z["fps"]), [str(n) for n in z["names"]])
        if suffix == ".json":
            d = json.loads(path.read_text(encoding="utf-8"))
            return cls(np.asarray(d["frames"], np.float32).reshape(-1, len(d["names"])), d["fps"], d["names"])
        with open(path, newline="", encoding="utf-8-sig") as f:
            rows = list(csv.reader(f))
        if not rows:
            raise A2FError(f"{path}: empty CSV")
        header = rows[0]
        body = [r for r in rows[1:] if r]
        if header[:2] == ["frame", "time"]:
            vals = np.asarray([[float(v) for v in r[2:]] for r in body], np.float32).reshape(-1, len(header) - 2)
            times = [float(r[1]) for r in body]
            rate = fps or (round((len(times) - 1) / (times[-1] - times[0]), 3) if len(times) > 1 else 30.0)
            return cls(vals, rate, header[2:])
        if header and header[0].lower() == "timecode":
            cols = {}
            for j, name in enumerate(header):
                canon = canonical_name(name)
                if canon is not None:
                    cols[canon] = j
            vals = np.zeros((len(body), len(ARKIT_NAMES)), np.float32)
            for i, n in enumerate(ARKIT_NAMES):
                if n in cols:
                    vals[:, i] = [float(r[cols[n]]) for r in body]
            return cls(np.clip(vals, 0.0, 1.0), fps or 60.0, ARKIT_NAMES)
        raise A2FError(f"{path}: unrecognised CSV header (expected frame,time,... or Timecode,BlendShapeCount,...)")
