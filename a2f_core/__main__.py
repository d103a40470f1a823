"""Command line: ``python -m a2f_core infer|bench``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def _cmd_infer(args: argparse.Namespace) -> int:
    from .audio import audio_info
    from .engine import infer
    from .errors import OutputError
    from .model import load_checkpoint

    out = Path(args.output)
    fmt = args.format
    if fmt is None:
        fmt = {".csv": "csv", ".json": "json", ".npz": "npz"}.get(out.suffix.lower())
        if fmt is None:
            raise OutputError(f"{out}: unknown output format; use .csv, .json, .npz or --format livelink")
    if out.exists() and not args.overwrite:
        raise OutputError(f"{out}: already exists; pass --overwrite to replace it")
    if out.is_dir():
        raise OutputError(f"{out}: is a directory; give a file name")
    if not out.parent.exists():
        raise OutputError(f"{out.parent}: output folder does not exist")
    duration = audio_info(args.input)[0]
    model = load_checkpoint(args.checkpoint)
    show = not args.quiet and duration > 5.0 and sys.stderr.isatty()
    curves = infer(args.input, model, fps=args.fps, threads=args.threads, progress=show or None)
    curves.save(out, fmt)
    if not args.quiet:
        print(f"{out}: {len(curves)} frames at {curves.fps:g} fps ({duration:.2f} s of audio)", file=sys.stderr)
    return 0


def _cmd_bench(args: argparse.Namespace) -> int:
    from .bench import run_bench

    result = run_bench(seconds=args.seconds, checkpoint=args.checkpoint, threads=args.threads, naive=args.naive)
    print(json.dumps(result, indent=2))
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m a2f_core",
                                description="Speech audio -> 52 ARKit blendshape curves, on the CPU.")
    sub = p.add_subparsers(dest="command", required=True)

    pi = sub.add_parser("infer", help="audio file -> curves file",
                        description="Run the model over an audio file and write its 52 ARKit curves.")
    pi.add_argument("input", help="audio file (wav, flac, ogg, mp3 where libsndfile reads it)")
    pi.add_argument("-o", "--output", required=True, help="output file: .csv, .json or .npz")
    pi.add_argument("--fps", type=float, default=30.0, help="frame rate of the output (default 30)")
    pi.add_argument("--format", choices=["csv", "json", "npz", "livelink"],
                    help="output format (default: from the extension); livelink = Live Link Face CSV")
    pi.add_argument("--checkpoint", help="model checkpoint (default: the trained model shipped with a2f_core)")
    pi.add_argument("--overwrite", action="store_true", help="replace the output file if it exists")
    pi.add_argument("--threads", type=int, help="torch threads for this run (default: torch's own setting)")
    pi.add_argument("-q", "--quiet", action="store_true", help="no progress or summary")
    pi.set_defaults(func=_cmd_infer)

    pb = sub.add_parser("bench", help="measure speed and memory (JSON)",
                        description="Time the whole pipeline, features included, on synthetic speech; print JSON.")
    pb.add_argument("--seconds", type=float, default=60.0, help="length of the synthetic clip (default 60)")
    pb.add_argument("--checkpoint", help="model checkpoint (default: shipped model, else random weights)")
    pb.add_argument("--threads", type=int, help="torch threads (default: torch's own setting)")
    pb.add_argument("--naive", action="store_true", help="also run the per-frame textbook forward and compare")
    pb.set_defaults(func=_cmd_bench)
    return p


def main(argv: list[str] | None = None) -> int:
    from .errors import A2FError

    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except A2FError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: cancelled", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
