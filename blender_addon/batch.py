"""A folder of audio files -> one action per file on the same face (each kept with a fake user)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .bake import BakeJob, compute, face_mapping, resolve_object
from .keying import write_action
from .strips import BakeInputError, StripAudio, scene_fps

AUDIO_SUFFIXES = {".wav", ".flac", ".ogg", ".mp3", ".aif", ".aiff"}


def bake_folder(context, folder: str, opts, model) -> list[str]:
    from a2f_core.audio import load_audio

    files = sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in AUDIO_SUFFIXES) \
        if Path(folder).is_dir() else []
    if not files:
        raise BakeInputError(f"{folder}: no audio files (wav, flac, ogg, mp3) in this folder")
    obj = resolve_object(context, opts.obj)
    key = obj.data.shape_keys
    mapping, missing = face_mapping(obj, opts.preset)
    fps = scene_fps(context.scene)
    start = context.scene.frame_start
    names = []
    for f in files:
        audio = load_audio(f)
        n = int(np.ceil(len(audio) / 16000 * fps))
        frames = np.arange(start, start + n)
        job = BakeJob(f.stem, obj.name, key.name, StripAudio(audio, frames, (frames - start) / fps, fps, str(f)),
                      mapping, missing, opts)
        compute(job, model=model)
        action = write_action(key, f"A2F {f.stem}", frames, job.values, mapping, assign=False, strip_name=f.name)
        action.use_fake_user = True
        names.append(action.name)
    return names
