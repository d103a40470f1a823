"""Sequential inference over a whole recording with flat memory, offline or streaming.

:class:`StreamingEngine` takes audio in pieces of any size (``push``) and
returns the frames that are final; ``flush`` ends the recording. It keeps
only the audio and feature frames that later frames still need (about
21 s of audio, 8.5 s of features), so memory does not grow with length.
:func:`infer` runs a whole file through it and gives the same numbers as
feeding the same audio in any other pieces.

Latency of the streaming form: a frame is final once the mel window's
lookahead (133 ms) and the eGeMAPS hop after it, plus openSMILE's 1 s
margin, have arrived; eGeMAPS hops are computed in batches of
``emotion_batch_s`` seconds (default 30 s; :func:`infer` uses 60 s) to
amortise openSMILE's 20 s context, so live use should lower it at some
cost in speed.

Speed: openSMILE runs in a worker thread (it releases the GIL) while the
calling thread computes the mel stream of the frames whose eGeMAPS values
are still being computed (at most ``max_pending_s`` seconds of them are
held); each frame is finished (eGeMAPS stream, decoder, smoothing) once
its eGeMAPS values arrive, and openSMILE hands over every hop as soon as
it is computed, so the frames of a batch are finished while the batch
still runs. The numbers do not depend on this schedule (beyond float
rounding where it moves a chunk boundary). The eGeMAPS frames interpolate
hops that fall on every 9th frame, so their window sums go by 9-frame groups
(:meth:`DualStreamModel.emotion_stream_grouped`) except in the last chunk.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from typing import Callable

import numpy as np
import torch

from .arkit import ARKIT_NAMES
from .audio import SAMPLE_RATE, AudioSource, audio_info, iter_audio
from .curves import BlendshapeCurves
from .features.emotion import CS, NUM_FEATURES, EmotionConfig, EmotionExtractor, align_to_frames, hop_times
from .features.mel import MelConfig, frame_center, log_mel, num_frames
from .model import DualStreamModel, load_checkpoint


@contextlib.contextmanager
def torch_threads(n: int | None):
    """Use ``n`` intra-op threads inside the block and restore the caller's setting after."""
    if n is None:
        yield
        return
    old = torch.get_num_threads()
    torch.set_num_threads(max(1, int(n)))
    try:
        yield
    finally:
        torch.set_num_threads(old)


def default_threads(jobs: int = 1) -> int:
    """torch threads for each of ``jobs`` runs side by side that leave every run one core for its
    openSMILE worker thread: ``cores // jobs - 1``, at least 1. The CLI, the batch mode and the
    Blender add-on use this when no thread count is given (two threads of torch beside openSMILE on
    two cores are ~1.8x slower than one); :func:`infer` itself keeps the caller's torch setting."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    return max(1, cores // max(1, jobs) - 1)


def _malloc_trim():
    """glibc's ``malloc_trim``: hands the free parts of the C heap back to the system (None elsewhere).

    The engine's per-chunk tensors (a few MB each) come from glibc's heap once its mmap threshold has
    risen; without a trim now and then, a long stream's resident memory creeps up by ~100 MB over its
    first half hour (freed, fragmented heap) although nothing is kept. This changes no setting.
    """
    import ctypes
    import ctypes.util
    import sys

    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        trim = libc.malloc_trim
    except (OSError, AttributeError):   # musl and others have no malloc_trim
        return None
    trim.argtypes = [ctypes.c_size_t]
    return lambda: trim(0)


_TRIM = _malloc_trim()


class _EmotionJob:
    """A batch of hops that openSMILE computes (in the worker thread, or at once): its rows become
    final in order while the run goes on, so the first frames can be finished before it ends."""

    def __init__(self, todo: np.ndarray):
        self.todo = todo
        self.raw = np.full((len(todo), NUM_FEATURES), np.nan, np.float32)
        self.ready = 0                 # rows [0, ready) are final (written by the worker)
        self.taken = 0                 # rows the engine has collected
        self.ended = False             # the run is over (finished or failed)
        self.future = None
        self._cond = threading.Condition()

    def publish(self, offset: int, k: int, values: np.ndarray) -> None:
        """Rows [ready, offset + k) are final: ``values`` holds the batch that starts at ``offset``."""
        with self._cond:
            if offset + k > self.ready:
                self.raw[self.ready:offset + k] = values[self.ready - offset:k]
                self.ready = offset + k
                self._cond.notify_all()

    def finished(self) -> None:
        with self._cond:
            self.ended = True
            self._cond.notify_all()

    def wait_for_rows(self) -> None:
        """Until more rows than collected are final or the run has ended."""
        with self._cond:
            self._cond.wait_for(lambda: self.ready > self.taken or self.ended)


class StreamingEngine:
    """Incremental inference: ``push(samples)`` -> new (n, 52) frames; ``flush()`` at the end.

    Samples are 16 kHz mono float32 (see :mod:`a2f_core.audio`).
    """

    def __init__(self, model: DualStreamModel, chunk_frames: int = 128, emotion_batch_s: float = 30.0,
                 mel_cfg: MelConfig = MelConfig(), emotion_cfg: EmotionConfig = EmotionConfig(),
                 overlap: bool = True, max_pending_s: float | None = None):
        self.model = model.eval()
        self.cfg = model.cfg
        self.mel_cfg = mel_cfg
        self.emo_cfg = emotion_cfg
        self.chunk_frames = int(chunk_frames)
        self.emotion_batch_hops = max(1, int(round(emotion_batch_s / emotion_cfg.hop_s)))
        # mel-stream outputs waiting for their eGeMAPS values: 53 KB a frame (default: two batches)
        pending_s = 2.0 * emotion_batch_s if max_pending_s is None else max_pending_s
        self.max_pending = max(self.chunk_frames, int(pending_s * mel_cfg.fps))
        self._extractor = EmotionExtractor(emotion_cfg)
        self._worker = None
        if overlap:
            from concurrent.futures import ThreadPoolExecutor

            self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="a2f-egemaps")
        self.timings = {"mel": 0.0, "emotion": 0.0, "model": 0.0}
        with torch.inference_mode():
            self._terms = {k: v.detach().clone() for k, v in model.stream_terms().items()}
            self._kernels = model.banded_kernels(self._terms)      # the same for every chunk size
            # hops fall on every G-th frame (9 at 30 fps, 300 ms): eGeMAPS frames are linear in groups
            group = emotion_cfg.hop_cs * mel_cfg.fps / 100
            self._group = int(group) if group == int(group) and group >= 2 else None
            self._group_kernel = model.grouped_kernel(self._terms, self._group) if self._group else None
            self._alpha = model.smoothing_alpha().detach().numpy().astype(np.float32)
        self._map = model.output_map
        self.reset()

    def close(self) -> None:
        """Stop the eGeMAPS worker thread (also done when the engine is garbage-collected)."""
        if self._worker is not None:
            self._worker.shutdown(wait=True)
            self._worker = None

    def __del__(self):
        worker = getattr(self, "_worker", None)
        if worker is not None:
            worker.shutdown(wait=False)

    # ----------------------------------------------------------------- state
    def reset(self) -> None:
        """Start a new recording: clears audio, features and the smoothing state."""
        for job in getattr(self, "_emo_jobs", []):  # batches of the previous recording: let them end unseen
            job.future.cancel()
        self._audio = np.zeros(0, np.float32)
        self._audio_start = 0          # absolute index of self._audio[0]
        self._total = 0                # samples pushed so far
        self._mel = np.zeros((0, self.cfg.n_mels), np.float32)
        self._mel_start = -self.cfg.past  # absolute frame index of self._mel[0]
        self._hops = np.zeros(0, np.int64)
        self._hop_vals = np.zeros((0, NUM_FEATURES), np.float32)
        self._hops_done_upto = 0       # next regular hop (in 10 ms) to compute (or being computed)
        self._emo_jobs: list[_EmotionJob] = []  # batches openSMILE is computing or will compute, in order
        self._trim_heap = False        # a batch arrived: give freed heap back after this push
        self._pending: list[tuple[int, torch.Tensor]] = []  # (first frame, mel-stream output) awaiting eGeMAPS
        self._mel_done = 0             # next output frame whose mel stream is not computed yet
        self._next = 0                 # next output frame
        self._prev: np.ndarray | None = None
        self._finished = False
        self.model.reset_temporal_state()

    @property
    def frames_emitted(self) -> int:
        return self._next

    # ------------------------------------------------------------- features
    def _mel_ready_upto(self, final: bool) -> int:
        """One past the last mel frame computable now."""
        if final:
            return num_frames(self._total) + self.cfg.lookahead
        half = self.mel_cfg.n_fft // 2
        # frame s is ready when centre(s) + half <= total
        s = (self._total - half) * self.mel_cfg.fps // self.mel_cfg.sample_rate + 1
        while s > -10**9 and int(frame_center(s, self.mel_cfg)) + half > self._total:
            s -= 1
        return s + 1

    def _update_mel(self, final: bool) -> None:
        upto = self._mel_ready_upto(final)
        have = self._mel_start + len(self._mel)
        if upto <= have:
            return
        t0 = time.perf_counter()
        new = log_mel(self._audio, self._audio_start, have, upto, self.mel_cfg)
        with torch.inference_mode():
            new = self.model.normalize_mel(torch.from_numpy(new)).numpy()
        self._mel = np.concatenate([self._mel, new]) if len(self._mel) else new
        self.timings["mel"] += time.perf_counter() - t0

    def _emotion_todo(self, final: bool) -> np.ndarray:
        """Hops (10 ms units) that can be computed now and are not computed or being computed."""
        c = self.emo_cfg
        if final:
            all_hops = hop_times(self._total, c)
            todo = all_hops[all_hops >= self._hops_done_upto] if len(all_hops) else all_hops
            if len(self._hops):
                todo = todo[todo > self._hops[-1]]
            return todo
        # regular hops whose openSMILE margin has fully arrived
        last_ok = (self._total // CS - c.margin_cs) // c.hop_cs * c.hop_cs
        first = max(self._hops_done_upto, c.hop_cs)
        return np.arange(first, last_ok + 1, c.hop_cs, dtype=np.int64)

    def _compute_hops(self, job: _EmotionJob, audio: np.ndarray, audio_start: int, total: int) -> None:
        """Raw eGeMAPS values of ``job.todo``, published row by row (runs in the worker thread when
        there is one)."""
        t0 = time.perf_counter()
        todo = job.todo
        per = self.emotion_batch_hops
        if len(todo) <= 4 * per:       # the end of a recording: one openSMILE run, no repeated context
            per = len(todo)
        try:
            for i in range(0, len(todo), per):
                self._extractor.compute(audio, audio_start, todo[i:i + per], total,
                                        on_row=lambda k, v, i=i: job.publish(i, k, v))
        finally:
            self.timings["emotion"] += time.perf_counter() - t0
            job.finished()

    def _collect_emotion(self, wait: bool) -> None:
        """Take the rows that are final (all of the oldest batch with ``wait``)."""
        while self._emo_jobs:
            job = self._emo_jobs[0]
            if wait or job.ended:
                job.future.result()    # the worker's error, if any, surfaces here
            k = job.ready
            if k > job.taken:
                with torch.inference_mode():
                    vals = self.model.normalize_emotion(torch.from_numpy(job.raw[job.taken:k])).numpy()
                todo = job.todo[job.taken:k]
                self._hops = np.concatenate([self._hops, todo])
                self._hop_vals = np.concatenate([self._hop_vals, vals]) if len(self._hop_vals) else vals
                job.taken = k
            if job.taken < len(job.todo) or not job.ended:
                return
            self._emo_jobs.pop(0)
            self._trim_heap = True
            wait = False

    def _update_emotion(self, final: bool) -> None:
        """Collect final rows and start the next batch (in the worker thread, or here)."""
        todo = self._emotion_todo(final)
        # audio arriving faster than openSMILE keeps up: wait, so that memory stays bounded
        self._collect_emotion(wait=not final and len(todo) >= self.emotion_batch_hops)
        if self._emo_jobs and not final:
            return
        if len(todo) == 0 or not final and len(todo) < self.emotion_batch_hops:
            return
        if not final:                  # whole batches only; what is left waits for the next push
            todo = todo[:len(todo) // self.emotion_batch_hops * self.emotion_batch_hops]
        self._hops_done_upto = int(todo[-1]) + self.emo_cfg.hop_cs
        job = _EmotionJob(todo)
        args = (job, self._audio, self._audio_start, self._total)
        if self._worker is None:
            from concurrent.futures import Future

            job.future = Future()
            self._compute_hops(*args)
            job.future.set_result(None)
        else:
            job.future = self._worker.submit(self._compute_hops, *args)
        self._emo_jobs.append(job)   # the end of a recording queues behind a running batch

    def _emotion_ready_upto(self, final: bool) -> int:
        """One past the last frame whose eGeMAPS interpolation is final."""
        if final:
            return 10**12
        if len(self._hops) == 0:
            return -10**12
        # frames up to the last computed hop time are final (interpolation needs the hop after them)
        return int(self._hops[-1]) * self.mel_cfg.fps // 100 + 1

    # --------------------------------------------------------------- output
    def _mel_stage(self, stop: int) -> None:
        """Mel-stream outputs of frames [mel_done, stop), at most ``max_pending`` ahead of ``next``."""
        c = self.cfg
        stop = min(stop, self._next + self.max_pending)
        while self._mel_done < stop:
            t = self._mel_done
            n = min(self.chunk_frames, stop - t)
            s0 = t - c.past
            mel = self._mel[s0 - self._mel_start:s0 - self._mel_start + n + c.context - 1]
            with torch.inference_mode():
                out = self.model.mel_stream_inference(torch.from_numpy(np.ascontiguousarray(mel)), self._terms,
                                                      self._kernels[0])
            self._pending.append((t, out))
            self._mel_done = t + n

    def _finish_stage(self, stop: int) -> list[np.ndarray]:
        """Frames of pending chunks that end before ``stop`` (their eGeMAPS values are final)."""
        c = self.cfg
        out = []
        while self._pending and self._pending[0][0] + len(self._pending[0][1]) <= stop:
            t, mel_out = self._pending.pop(0)
            n = len(mel_out)
            s0, s1 = t - c.past, t + n + c.lookahead
            emo = align_to_frames(self._hops, self._hop_vals, np.arange(s0, s1), self.mel_cfg.fps)
            with torch.inference_mode():
                emo_t = torch.from_numpy(emo)
                emo_out = None
                if self._group:        # not at the end of a recording, where the last hop breaks a group
                    emo_out = self.model.emotion_stream_grouped(emo_t, self._terms, self._group_kernel,
                                                                s0 % self._group)
                if emo_out is None:
                    emo_out = self.model.emotion_stream_inference(emo_t, self._terms, self._kernels[1])
                if emo_out is not None:
                    raw = self.model.decode_streams(mel_out, emo_out).numpy()
                else:                  # eGeMAPS sums below float32 range: the whole chunk in float64
                    mel = self._mel[s0 - self._mel_start:s1 - self._mel_start]
                    raw = self.model.forward_sequence(torch.from_numpy(np.ascontiguousarray(mel)).double(),
                                                      torch.from_numpy(emo).double(), self._terms).float().numpy()
            y = self._smooth(raw)
            out.append(self._map(y) if self._map is not None else y)
            self._next = t + n
        return out

    def _emit(self, final: bool) -> np.ndarray:
        c = self.cfg
        t0 = time.perf_counter()
        mel_end = self._mel_start + len(self._mel)           # mel frames available: [.., mel_end)
        stop_mel = mel_end - c.lookahead                     # outputs < this have their mel window
        if final:
            stop_mel = min(stop_mel, num_frames(self._total))
        out = []
        while True:
            self._mel_stage(stop_mel)
            stop_emo = self._emotion_ready_upto(final and not self._emo_jobs) - c.lookahead
            out += self._finish_stage(stop_emo)
            if not final or self._mel_done >= stop_mel and not self._pending:
                break
            if self._emo_jobs:               # the end: wait for more eGeMAPS rows, finish what they allow
                self.timings["model"] += time.perf_counter() - t0
                self._emo_jobs[0].wait_for_rows()
                self._collect_emotion(wait=False)
                t0 = time.perf_counter()
        self.timings["model"] += time.perf_counter() - t0
        self._trim()
        if self._trim_heap and _TRIM is not None:   # once per eGeMAPS batch (tens of seconds), ~10 ms
            _TRIM()
        self._trim_heap = False
        if not out:
            return np.zeros((0, c.n_blendshapes), np.float32)
        return np.concatenate(out).astype(np.float32)

    def _smooth(self, raw: np.ndarray) -> np.ndarray:
        a = self._alpha
        y = np.empty_like(raw)
        prev = self._prev
        for i in range(len(raw)):
            prev = raw[i] if prev is None else a * raw[i] + (1 - a) * prev
            y[i] = prev
        self._prev = prev
        return y

    def _trim(self) -> None:
        """Drop audio, mel frames and hops that no later frame needs."""
        c = self.cfg
        keep_frame = self._next - c.past
        drop = keep_frame - self._mel_start
        if drop > 0:
            self._mel = self._mel[drop:]
            self._mel_start = keep_frame
        # audio: the next mel frame's window and the next eGeMAPS segment
        mel_need = int(frame_center(self._mel_start + len(self._mel), self.mel_cfg)) - self.mel_cfg.n_fft // 2
        e = self.emo_cfg
        emo_need = (max(0, self._hops_done_upto - e.window_cs - e.margin_cs)) * CS
        need = max(0, min(mel_need, emo_need))
        if need > self._audio_start:
            cut = min(need - self._audio_start, len(self._audio))
            self._audio = self._audio[cut:]
            self._audio_start += cut
        # hops: keep one before the first frame still needed
        if len(self._hops) > 2:
            t_min = keep_frame * 100 / self.mel_cfg.fps
            k = int(np.searchsorted(self._hops, t_min)) - 1
            if k > 0:
                self._hops = self._hops[k:]
                self._hop_vals = self._hop_vals[k:]

    # ------------------------------------------------------------------ API
    def _append(self, samples: np.ndarray) -> None:
        if self._finished:
            raise RuntimeError("flush() ended this recording; call reset() to start another")
        samples = np.asarray(samples, dtype=np.float32).reshape(-1)
        if samples.size:
            self._audio = np.concatenate([self._audio, samples]) if len(self._audio) else samples.copy()
            self._total += samples.size

    def push(self, samples: np.ndarray) -> np.ndarray:
        """Add 16 kHz mono samples; return the (n, 52) frames that became final."""
        self._append(samples)
        self._update_mel(False)
        self._update_emotion(False)
        return self._emit(False)

    def flush(self, samples: np.ndarray | None = None) -> np.ndarray:
        """End of recording: return every remaining frame (total = ceil(duration * fps)).

        ``samples``: the recording's last piece, if not pushed yet (``flush(x)`` equals ``push(x)``
        then ``flush()``, but starts openSMILE on the end before computing the mel stream).
        """
        if self._finished:
            return np.zeros((0, self.cfg.n_blendshapes), np.float32)
        if samples is not None:
            self._append(samples)
        if self._total == 0:
            raise ValueError("no audio was pushed")
        self._update_mel(True)
        self._update_emotion(True)
        out = self._emit(True)
        self._finished = True
        return out


def infer(audio: AudioSource, model: DualStreamModel | str | None = None, rate: int | None = None,
          fps: float = 30, threads: int | None = None, block_seconds: float = 60.0,
          progress: Callable[[float], None] | bool | None = None,
          cancel: Callable[[], bool] | None = None, timings: dict | None = None,
          expression=None) -> BlendshapeCurves:
    """Run the model over a whole recording and return its 52 ARKit curves.

    ``audio``: a path (anything libsndfile reads) or an array with ``rate``.
    ``model``: a loaded model, a checkpoint path, or None for the shipped model.
    ``progress``: True for a tqdm bar, or a callable taking the fraction done.
    ``cancel``: a callable polled between blocks; when it returns True the
    run stops with :class:`InterruptedError`.
    ``timings``: a dict that receives seconds spent in mel, emotion and model.
    ``expression``: an :class:`a2f_core.expression.ExpressionConfig` to add blinks, gaze, brows and
    emotion (the whole clip is then kept in memory for its prosody); None returns the model's curves.
    """
    if not isinstance(model, DualStreamModel):
        model = load_checkpoint(model)
    duration = None
    if not isinstance(audio, np.ndarray):
        duration = audio_info(audio)[0]
    elif rate:
        duration = len(audio) / rate
    bar = None
    report = progress if callable(progress) else None
    if progress is True:
        from tqdm import tqdm

        bar = tqdm(total=round(duration or 0, 1), unit="s", desc="infer", leave=False)
    frames = []
    kept = [] if expression is not None else None  # the decoded clip, for the expression layer's prosody
    done = 0
    with torch_threads(threads):
        # eGeMAPS batches a little shorter than the blocks: each block starts openSMILE on one batch
        # before the mel stream of the block is computed, so the two overlap
        engine = StreamingEngine(model, emotion_batch_s=max(3.0, 0.75 * block_seconds),
                                 max_pending_s=max(30.0, block_seconds))
        blocks = iter_audio(audio, rate, block_seconds=block_seconds)
        block = next(blocks, None)
        try:
            while block is not None:
                if cancel is not None and cancel():
                    raise InterruptedError("cancelled")
                following = next(blocks, None)
                # the last block goes in with flush: openSMILE starts on the end at once
                frames.append(engine.push(block) if following is not None else engine.flush(block))
                if kept is not None:
                    kept.append(block)
                done += len(block)
                if bar is not None:
                    bar.n = round(done / SAMPLE_RATE, 1)
                    bar.refresh()
                if report is not None and duration:
                    report(min(1.0, done / SAMPLE_RATE / duration))
                block = following
            frames.append(engine.flush())
        finally:
            engine.close()
    if timings is not None:
        timings.update(engine.timings)
    if bar is not None:
        bar.close()
    curves = BlendshapeCurves(np.concatenate(frames), fps=30.0, names=ARKIT_NAMES)
    if kept is not None:
        from .expression import apply_expression

        curves = apply_expression(curves, np.concatenate(kept), expression)
    return curves if fps == 30 else curves.resample(fps)


def infer_naive(audio: np.ndarray, model: DualStreamModel, batch: int = 16) -> np.ndarray:
    """Reference: the model's textbook forward on every frame's explicit window (slow).

    ``audio`` is 16 kHz mono; returns (T, 52). Used by tests and ``bench --naive``.
    """
    from .features.emotion import emotion_features

    c = model.cfg
    T = num_frames(len(audio))
    mel = log_mel(audio, 0, -c.past, T + c.lookahead)
    hops, vals = emotion_features(audio)
    out = np.empty((T, c.n_blendshapes), np.float32)
    model.reset_temporal_state()
    with torch.inference_mode():
        mel_n = model.normalize_mel(torch.from_numpy(mel))
        # z-scores are taken per hop, then interpolated onto frames (as the engine does)
        vals_n = model.normalize_emotion(torch.from_numpy(vals)).numpy()
        emo_n = torch.from_numpy(align_to_frames(hops, vals_n, np.arange(-c.past, T + c.lookahead)))
        for t0 in range(0, T, batch):
            idx = torch.arange(t0, min(T, t0 + batch))
            win = idx[:, None] + torch.arange(c.context)[None]
            raw = model.forward_reference(mel_n[win], emo_n[win])
            for i in range(len(idx)):
                out[t0 + i] = model.apply_temporal_smoothing(raw[i:i + 1])[0].numpy()
    model.reset_temporal_state()
    return model.output_map(out) if model.output_map is not None else out
