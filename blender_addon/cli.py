"""Headless baking: ``blender --background scene.blend --command a2f_bake --strip NAME --object NAME``."""

from __future__ import annotations

import argparse
import os
import sys

USAGE = "blender --background [scene.blend] --command a2f_bake [options]"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="a2f_bake", usage=USAGE,
                                description="Bake a sound strip (or a folder of audio files) onto a face's "
                                            "ARKit shape keys and save the .blend.")
    p.add_argument("--blend", help="open this .blend first (default: the file Blender opened)")
    p.add_argument("--strip", help="sound strip name (default: the active or only sound strip)")
    p.add_argument("--object", help="face mesh name (default: the active object)")
    p.add_argument("--batch", help="folder of audio files: one action per file on the same face")
    p.add_argument("--out", help="save to this .blend (default: save the opened file in place)")
    p.add_argument("--replace", action="store_true", help="assign the bake even over a user's action (kept)")
    p.add_argument("--preset", default="auto")
    p.add_argument("--checkpoint", help="model checkpoint (default: the shipped model)")
    p.add_argument("--no-procedural", action="store_true", help="no blinks, gaze or brow emphasis")
    p.add_argument("--emotion", default="neutral", choices=["neutral", "happy", "sad", "angry", "surprised"])
    p.add_argument("--emotion-strength", type=float, default=0.6)
    p.add_argument("--seed", type=int, default=0, help="seed of blinks and gaze")
    return p


def run(argv: list[str]) -> int:
    """Entry point of the ``a2f_bake`` command; returns an exit code, prints one line on error."""
    import bpy

    from a2f_core.errors import A2FError

    from .bake import BakeOptions, apply, compute, prepare
    from .strips import BakeInputError

    try:
        args = parser().parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    try:
        if args.blend:
            if not os.path.isfile(args.blend):
                raise BakeInputError(f"{args.blend}: no such .blend file")
            bpy.ops.wm.open_mainfile(filepath=args.blend)
        out = args.out or bpy.data.filepath
        if not out:
            raise BakeInputError("no .blend to save into: give --out PATH or open a .blend")
        context = bpy.context
        opts = BakeOptions(strip=args.strip, obj=args.object, preset=args.preset,
                           replace_user_action=args.replace, checkpoint=args.checkpoint,
                           procedural=not args.no_procedural, emotion=args.emotion,
                           emotion_strength=args.emotion_strength, seed=args.seed)
        from a2f_core import load_model

        model = load_model(args.checkpoint)
        if args.batch:
            from .batch import bake_folder

            names = bake_folder(context, args.batch, opts, model)
            print(f"a2f_bake: {len(names)} actions: {', '.join(names)}")
        else:
            job = compute(prepare(context, opts), model=model)
            apply(job)
            s = job.summary
            print(f"a2f_bake: {s['frames']} frames onto {s['mapped']}/52 ARKit shapes of '{job.obj_name}' "
                  f"as action '{s['action']}' in {s['seconds']:.1f} s"
                  + (f"; missing: {', '.join(s['missing'])}" if s["missing"] else ""))
        bpy.ops.wm.save_as_mainfile(filepath=os.path.abspath(out))
        print(f"a2f_bake: saved {os.path.abspath(out)}")
        return 0
    except (BakeInputError, A2FError) as exc:
        print(f"a2f_bake: error: {exc}", file=sys.stderr)
        return 2
