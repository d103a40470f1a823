"""``python -m a2f_core.demo --out DIR``: bake the bundled speech clip to curves and a plot."""

from __future__ import annotations

import argparse
import json
import sys
import time
from importlib import resources
from pathlib import Path


def example_path(name: str = "speech_en.wav") -> Path:
    return Path(str(resources.files("a2f_core.examples").joinpath(name)))


def load_phones(path: Path) -> list[tuple[str, float, float]]:
    if not path.is_file():
        return []
    def leaves(node):
        if isinstance(node, list):
            for n in node:
                yield from leaves(n)
        elif node.get("w"):
            yield from leaves(node["w"])
        else:
            yield node

    # PocketSphinx alignment: utterance -> words -> phones, each with start "b" and duration "d"
    return [(r["t"], float(r["b"]), float(r["b"]) + float(r["d"])) for r in leaves(json.loads(path.read_text()))]


def main(argv: list[str] | None = None) -> int:
    import torch

    from . import infer
    from .audio import audio_info
    from .errors import A2FError, NoModelError
    from .model import DualStreamModel, load_checkpoint, save_checkpoint
    from .plot import plot_curves

    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", default="out/demo", help="output folder")
    ap.add_argument("--checkpoint", help="model checkpoint (default: the shipped model)")
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    wav = example_path()
    try:
        try:
            model = load_checkpoint(args.checkpoint)
            label = Path(getattr(model, "checkpoint_path", "model")).name
        except NoModelError:
            print("note: no trained model is installed in this checkout; the demo runs an UNTRAINED model "
                  "(random weights), so its curves show the pipeline working, not lip-sync", file=sys.stderr)
            torch.manual_seed(0)
            model = DualStreamModel().eval()
            save_checkpoint(model, out / "untrained.pt", meta={"trained": False})
            label = "UNTRAINED random weights"
        from .expression import ExpressionConfig

        t0 = time.perf_counter()
        curves = infer(wav, model, expression=ExpressionConfig())
        wall = time.perf_counter() - t0
        csv_path = curves.save(out / "speech_en.csv")
        png = out / "speech_en.png"
        plot_curves(curves, png, phones=load_phones(wav.with_suffix(".phones.json")),
                    title=f"{wav.name} ({label}): {wav.with_suffix('.txt').read_text().strip()[:80]}")
    except A2FError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    dur = audio_info(wav)[0]
    print(f"{csv_path}: {len(curves)} frames x {len(curves.names)} curves at {curves.fps:g} fps "
          f"from {dur:.2f} s of audio in {wall:.2f} s")
    print(f"{png}: jawOpen, mouthClose, mouthFunnel, eyeBlinkLeft and aperture over time, with phones")
    return 0


if __name__ == "__main__":
    sys.exit(main())
