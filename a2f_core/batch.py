"""Many files at once: ``python -m a2f_core infer FOLDER_OR_GLOB -o OUTDIR --jobs N``.

Worker processes (spawned: a fresh interpreter each, safe beside torch's threads) each load the
model once and take files one by one; a file that fails is reported in one line and the others go
on. Each worker uses ``cores // jobs - 1`` torch threads (at least 1; the core left over runs its
openSMILE thread) unless told otherwise.
"""

from __future__ import annotations

import sys
from pathlib import Path

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".oga", ".mp3", ".aif", ".aiff", ".au", ".caf", ".w64")


_WORKER: dict = {}


def _worker_init(checkpoint: str | None, threads: int) -> None:
    import torch

    from .model import load_checkpoint

    torch.set_num_threads(threads)      # this worker process's own setting
    _WORKER["model"] = load_checkpoint(checkpoint)


def _worker_infer(job: tuple) -> tuple[str, str | None, float]:
    """(input, error or None, seconds of audio) for one file; errors are returned, never raised."""
    from .engine import infer
    from .errors import A2FError

    src, out, fmt, fps, expression = job
    try:
        curves = infer(src, _WORKER["model"], fps=fps, expression=expression)
        curves.save(out, fmt)
        return src, None, len(curves) / curves.fps
    except A2FError as exc:
        return src, str(exc), 0.0
    except Exception as exc:  # one broken file must not stop the others
        return src, f"{src}: {type(exc).__name__}: {exc}", 0.0


def infer_files(inputs: list[Path], outdir: Path, spec: str = "", fmt: str | None = None, fps: float = 30.0,
                expression=None, checkpoint: str | None = None, jobs: int = 1, threads: int | None = None,
                overwrite: bool = False, quiet: bool = False) -> int:
    """Every file of ``inputs`` -> ``outdir/<stem>.<ext>`` in ``jobs`` worker processes; returns the exit
    code (2 if any file failed: each failure is one line on stderr, the other files go on)."""
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor, as_completed
    from concurrent.futures.process import BrokenProcessPool

    from .engine import default_threads
    from .errors import A2FError, OutputError
    from .model import load_checkpoint

    if not inputs:
        raise A2FError(f"{spec}: no audio files found ({', '.join(AUDIO_SUFFIXES)})")
    if outdir.exists() and not outdir.is_dir() or not outdir.exists() and outdir.suffix.lower() in (
            ".csv", ".json", ".npz"):
        raise OutputError(f"{outdir}: {spec} names several inputs; give an output folder, not a file")
    if not outdir.parent.exists():
        raise OutputError(f"{outdir.parent}: output folder does not exist")
    fmt = fmt or "csv"
    ext = {"csv": ".csv", "json": ".json", "npz": ".npz", "livelink": ".csv"}[fmt]
    outs = [outdir / f"{src.stem}{ext}" for src in inputs]
    if len(set(outs)) < len(outs):
        raise OutputError(f"{spec}: two inputs share a file name stem; their outputs would collide")
    if not overwrite:
        clash = [o for o in outs if o.exists()]
        if clash:
            raise OutputError(f"{clash[0]}: already exists ({len(clash)} of {len(outs)} outputs do); "
                              "pass --overwrite to replace them")
    load_checkpoint(checkpoint)     # a bad checkpoint fails once, here, not in every worker
    outdir.mkdir(exist_ok=True)
    jobs = max(1, min(jobs, len(inputs)))
    threads = threads or default_threads(jobs)
    work = [(str(src), str(out), fmt, fps, expression) for src, out in zip(inputs, outs)]
    bar = None
    if not quiet:
        from tqdm import tqdm

        bar = tqdm(total=len(work), unit="file", desc="infer")
    failed, seconds = [], 0.0
    ctx = mp.get_context("spawn")       # a fresh interpreter per worker: safe beside torch's threads
    with ProcessPoolExecutor(jobs, mp_context=ctx, initializer=_worker_init,
                             initargs=(checkpoint, threads)) as pool:
        futures = {pool.submit(_worker_infer, job): job[0] for job in work}
        for fut in as_completed(futures):
            try:
                src, err, secs = fut.result()
            except BrokenProcessPool:    # a worker died (out of memory, a crash in a library)
                src, err, secs = futures[fut], f"{futures[fut]}: the worker process stopped abruptly", 0.0
            seconds += secs
            if err is not None:
                failed.append(err)
                if bar is not None:
                    bar.write(f"error: {err}", file=sys.stderr)
                else:
                    print(f"error: {err}", file=sys.stderr)
            if bar is not None:
                bar.update(1)
    if bar is not None:
        bar.close()
    if not quiet:
        print(f"{outdir}: {len(work) - len(failed)} of {len(work)} files ({seconds:.1f} s of audio)"
              + (f", {len(failed)} failed" if failed else ""), file=sys.stderr)
    return 2 if failed else 0
