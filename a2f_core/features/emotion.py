"""Emotion stream: openSMILE eGeMAPSv02 functionals (88 values) over the trailing 20 s.

A new vector is computed every 300 ms ("hop"). Hop ``k`` (k >= 1) ends at
``0.3 k`` s and covers ``[max(0, 0.3 k - 20), 0.3 k]``: during the first
20 s the window grows from 0.3 s to 20 s, it never reaches before the start
of the recording. A last hop ends at the end of the recording when that is
more than 50 ms after the last regular hop. Output frames get the hop values
by linear interpolation in time, held constant before the first hop and
after the last. Recordings shorter than 0.1 s give NaN vectors (openSMILE
cannot measure them); the model reads NaN as "average" (z-score 0).

All hops of a stretch of audio come from one openSMILE run over it:
``frameMode = list`` makes the eGeMAPS functionals evaluate exactly the
requested windows of the 10 ms low-level descriptors, instead of one 20 s
extraction per hop (300x less work). Stretches are processed with a 1 s
margin on both sides, which makes the values independent of how a long
recording is cut into stretches (tests check this).
"""

from __future__ import annotations

import os
import tempfile
import threading
from dataclasses import asdict, dataclass

import numpy as np

NUM_FEATURES = 88
CS = 160  # samples per 10 ms descriptor frame at 16 kHz


@dataclass(frozen=True)
class EmotionConfig:
    window_s: float = 20.0
    hop_s: float = 0.3
    margin_s: float = 1.0
    min_duration_s: float = 0.1

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def hop_cs(self) -> int:
        return int(round(self.hop_s * 100))

    @property
    def window_cs(self) -> int:
        return int(round(self.window_s * 100))

    @property
    def margin_cs(self) -> int:
        return int(round(self.margin_s * 100))


def hop_times(num_samples: int, cfg: EmotionConfig = EmotionConfig()) -> np.ndarray:
    """End times of all hops of a recording, in 10 ms units (int64)."""
    dur_cs = num_samples // CS
    hops = list(range(cfg.hop_cs, dur_cs + 1, cfg.hop_cs))
    if not hops or dur_cs - hops[-1] > 5:
        hops.append(max(dur_cs, 1))
    return np.asarray(hops, dtype=np.int64)


def align_to_frames(hops_cs: np.ndarray, values: np.ndarray, frames: np.ndarray, fps: int = 30) -> np.ndarray:
    """Linear interpolation of hop values (H, F) at output frames (times frame/fps), clamped at the ends."""
    t = np.asarray(frames, dtype=np.float64) / fps
    ht = np.asarray(hops_cs, dtype=np.float64) / 100.0
    out = np.empty((len(t), values.shape[1]), dtype=np.float32)
    for j in range(values.shape[1]):
        out[:, j] = np.interp(t, ht, values[:, j])
    return out


class EmotionExtractor:
    """Computes eGeMAPSv02 functionals for a batch of hops in one openSMILE run."""

    def __init__(self, cfg: EmotionConfig = EmotionConfig()):
        import opensmile

        self.cfg = cfg
        self._dir = tempfile.TemporaryDirectory(prefix="a2f_egemaps_")
        self._conf = os.path.join(self._dir.name, "frame_list.conf.inc")
        self._write_conf(["0-1"])
        self._smile = opensmile.Smile(
            feature_set=opensmile.FeatureSet.eGeMAPSv02,
            feature_level=opensmile.FeatureLevel.Functionals,
            options={"frameModeFunctionalsConf": self._conf},
        )
        self._lock = threading.Lock()

    def _write_conf(self, frames: list[str]) -> None:
        with open(self._conf, "w") as f:
            f.write("frameMode = list\n")
            f.write("frameList = " + ",".join(frames) + "\n")
            f.write("frameCenterSpecial = left\n")
            f.write("noPostEOIprocessing = 0\n")

    def segment_for(self, hops_cs: np.ndarray, num_samples: int) -> tuple[int, int]:
        """Sample range [start, end) that an openSMILE run for these hops reads."""
        c = self.cfg
        start_cs = max(0, int(hops_cs.min()) - c.window_cs - c.margin_cs)
        end = min(num_samples, (int(hops_cs.max()) + c.margin_cs) * CS)
        return start_cs * CS, end

    def compute(self, buffer: np.ndarray, buffer_start: int, hops_cs: np.ndarray, num_samples: int,
                on_row=None) -> np.ndarray:
        """(len(hops), 88) raw functionals for hops ending at ``hops_cs`` (ascending).

        ``buffer`` holds samples from ``buffer_start`` and must cover
        :meth:`segment_for` of these hops; ``num_samples`` is the length of
        the recording so far (the end of the audio known to exist).
        ``on_row(k, values)``, if given, is called (from this thread) each time rows ``[0, k)`` of
        ``values`` (the array being filled, returned at the end) are final: openSMILE emits each
        hop's functionals as soon as its window is read, so a caller in another thread can use the
        first hops while the later ones are computed.
        """
        c = self.cfg
        hops_cs = np.asarray(hops_cs, dtype=np.int64)
        out = np.full((len(hops_cs), NUM_FEATURES), np.nan, dtype=np.float32)
        min_cs = int(round(c.min_duration_s * 100))
        ok = hops_cs >= min_cs
        first = int(np.argmax(ok)) if ok.any() else len(hops_cs)   # hops ascend: too short ones lead
        if on_row is not None and first:
            on_row(first, out)
        if not ok.any():
            return out
        seg_start, seg_end = self.segment_for(hops_cs[ok], num_samples)
        if seg_start < buffer_start or seg_end > buffer_start + len(buffer):
            raise ValueError("audio buffer does not cover the eGeMAPS segment")
        seg = buffer[seg_start - buffer_start:seg_end - buffer_start]
        # openSMILE reads 16-bit samples (x 32768, as opensmile.Smile does); keep full scale from wrapping
        pcm = (np.clip(seg, -1.0, 32767.0 / 32768.0).astype(np.float32) * 32768).astype(np.int16)
        seg0 = seg_start // CS
        frames = []
        for h in hops_cs[ok]:
            start = max(0, int(h) - c.window_cs)
            frames.append(f"{start - seg0}-{int(h) - 5 - seg0}")
        n = [first]
        failed: list[BaseException] = []

        def row(data, meta):           # exceptions here would be lost in ctypes: keep the first
            k = n[0]
            n[0] = k + 1
            if k < len(out) and not failed:
                out[k] = data
                try:
                    if on_row is not None:
                        on_row(k + 1, out)
                except BaseException as e:
                    failed.append(e)

        with self._lock:
            self._write_conf(frames)
            self._run(pcm, row)
        if failed:
            raise failed[0]
        if n[0] != len(out):
            raise RuntimeError(f"openSMILE returned {n[0] - first} windows for {int(ok.sum())} requested")
        return out

    def _run(self, pcm: np.ndarray, row) -> None:
        """One openSMILE run over 16 kHz int16 samples; ``row(values, meta)`` gets each output frame.

        The same steps as ``opensmile.Smile.process_signal`` (package pinned in pyproject.toml),
        through its SMILEapi wrapper with a callback sink, so rows arrive while the run goes on.
        """
        from opensmile.core.config import config

        options = self._smile._options()
        options["source"] = os.path.join(self._smile.default_config_root, config.EXTERNAL_INPUT_CONFIG)
        options["sampleRate"] = 16000
        options["nBits"] = 16
        smile = self._smile._smile(options=options)
        try:
            smile.external_sink_set_callback_ex(config.EXTERNAL_OUTPUT_COMPONENT, row)
            smile.external_audio_source_write_data(config.EXTERNAL_SOURCE_COMPONENT, pcm.tobytes())
            smile.external_audio_source_set_eoi(config.EXTERNAL_SOURCE_COMPONENT)
            smile.run()
        finally:
            smile.free()

    @property
    def feature_names(self) -> list[str]:
        return list(self._smile.feature_names)


def emotion_features(audio: np.ndarray, cfg: EmotionConfig = EmotionConfig(), chunk_s: float = 120.0,
                     extractor: EmotionExtractor | None = None) -> tuple[np.ndarray, np.ndarray]:
    """All hops of a whole recording: (hop end times in 10 ms units, (H, 88) raw functionals)."""
    ex = extractor or EmotionExtractor(cfg)
    hops = hop_times(len(audio), cfg)
    per = max(1, int(chunk_s / cfg.hop_s))
    vals = [ex.compute(audio, 0, hops[i:i + per], len(audio)) for i in range(0, len(hops), per)]
    return hops, np.concatenate(vals)
