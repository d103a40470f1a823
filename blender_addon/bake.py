"""The bake in three steps: prepare (reads Blender data), compute (no bpy: may run in a worker
thread, reports progress, can be cancelled), apply (writes one action). Cancelling or failing
before apply leaves the scene exactly as it was."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from a2f_core.arkit import ARKIT_NAMES

from .keying import existing_action, is_own_bake, write_action
from .mapping import build_mapping
from .strips import BakeInputError, StripAudio, find_strip, read_strip_audio


@dataclass
class BakeOptions:
    strip: str | None = None
    obj: str | None = None
    preset: str = "auto"
    mouth: float = 1.0
    brows: float = 1.0
    eyes: float = 1.0
    replace_user_action: bool = False
    checkpoint: str | None = None
    threads: int | None = None
    procedural: bool = True
    emotion: str = "neutral"
    emotion_strength: float = 0.6
    cheeks: float = 1.0
    seed: int = 0


@dataclass
class BakeJob:
    strip_name: str
    obj_name: str
    key_name: str
    audio: StripAudio
    mapping: dict[str, list[str]]
    missing: list[str]
    options: BakeOptions
    values: np.ndarray | None = None
    seconds: float = 0.0
    summary: dict = field(default_factory=dict)


def user_mapping(obj) -> dict[str, list[str]]:
    table: dict[str, list[str]] = {}
    for row in getattr(obj, "a2f_mapping", []):
        if row.arkit and row.shape_key:
            table.setdefault(row.arkit, []).append(row.shape_key)
    return table


def face_mapping(obj, preset: str) -> tuple[dict[str, list[str]], list[str]]:
    """The mesh's ARKit mapping: its own table first, then the preset and loose matching."""
    names = [kb.name for kb in obj.data.shape_keys.key_blocks]
    return build_mapping(names, preset, user_mapping(obj))


def resolve_object(context, name: str | None):
    import bpy

    obj = bpy.data.objects.get(name) if name else context.active_object
    if obj is None:
        raise BakeInputError(f"no object named '{name}'" if name else "no active object: select the face mesh")
    if obj.type != "MESH":
        raise BakeInputError(f"'{obj.name}' is a {obj.type.lower()}, not a mesh: select the face mesh")
    if obj.data.shape_keys is None or len(obj.data.shape_keys.key_blocks) < 2:
        raise BakeInputError(f"mesh '{obj.name}' has no shape keys: it needs ARKit-named shape keys "
                             "(or try Add Demo Face)")
    key = obj.data.shape_keys
    if key.library is not None or obj.data.library is not None:
        raise BakeInputError(f"mesh '{obj.name}' is linked from a library: make it local or "
                             "use a library override to bake onto it")
    return obj


def prepare(context, opts: BakeOptions) -> BakeJob:
    """Validate the selection and read the audio (main thread)."""
    scene = context.scene
    obj = resolve_object(context, opts.obj)
    strip = find_strip(scene, opts.strip)
    mapping, missing = face_mapping(obj, opts.preset)
    if not mapping:
        raise BakeInputError(f"mesh '{obj.name}' has none of the 52 ARKit shape keys "
                             "(check the mapping preset or fill the mapping table)")
    key = obj.data.shape_keys
    current = existing_action(key)
    if current is not None and not is_own_bake(current) and not opts.replace_user_action:
        raise BakeInputError(f"the shape keys of '{obj.name}' already use action '{current.name}', not made by "
                             "this add-on; choose Replace to assign the bake (that action is kept)")
    audio = read_strip_audio(scene, strip)
    if len(audio.frames) == 0:
        raise BakeInputError(f"strip '{strip.name}' is empty after its trims")
    return BakeJob(strip.name, obj.name, key.name, audio, mapping, missing, opts)


def compute(job: BakeJob, progress: Callable[[float], None] | None = None,
            cancel: Callable[[], bool] | None = None, model=None) -> BakeJob:
    """Run the model and sample its curves at the strip's frames (no bpy)."""
    from a2f_core import infer, load_model
    from a2f_core.engine import default_threads

    t0 = time.perf_counter()
    model = model if model is not None else load_model(job.options.checkpoint)
    a = job.audio
    end = int(min(len(a.audio), (max(a.times.max(), 0.0) + 1.0) * 16000))
    from a2f_core.expression import ExpressionConfig, apply_expression

    clip = a.audio[: max(end, 1)]
    curves = infer(clip, model, rate=16000, threads=job.options.threads or default_threads(),
                   progress=progress, cancel=cancel, block_seconds=10.0)
    o = job.options
    curves = apply_expression(curves, clip, ExpressionConfig(
        enabled=o.procedural, seed=o.seed, emotion=o.emotion, emotion_strength=o.emotion_strength,
        intensity={"mouth": o.mouth, "brows": o.brows, "eyes": o.eyes, "cheeks": o.cheeks}))
    t = curves.times
    values = np.empty((len(a.frames), len(ARKIT_NAMES)), np.float32)
    for i in range(len(ARKIT_NAMES)):
        values[:, i] = np.interp(a.times, t, curves.values[:, i])
    job.values = np.clip(values, 0.0, 1.0)
    job.seconds = time.perf_counter() - t0
    return job


def apply(job: BakeJob):
    """Write the action and assign it; replaces only this add-on's previous bake (main thread)."""
    import bpy

    obj = bpy.data.objects[job.obj_name]
    key = obj.data.shape_keys
    previous = existing_action(key)
    action = write_action(key, f"A2F {job.strip_name}", job.audio.frames, job.values, job.mapping,
                          assign=True, strip_name=job.strip_name)
    if previous is not None and previous != action:
        if previous.get("a2f_bake", False) and previous.users == 0:
            bpy.data.actions.remove(previous)
        else:
            previous.use_fake_user = True  # a user's action is never lost
    job.summary = {"frames": int(len(job.audio.frames)), "seconds": round(job.seconds, 2),
                   "mapped": len(job.mapping), "missing": list(job.missing), "action": action.name,
                   "first_frame": int(job.audio.frames[0]), "fps": job.audio.fps}
    return action
