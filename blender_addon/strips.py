"""Sound strips -> audio for the bake, honouring start, trims, sound offset, mute and packed sounds."""

from __future__ import annotations

import io
import os
from dataclasses import dataclass

import numpy as np


class BakeInputError(Exception):
    """A problem with what the user picked; the message is shown as one line."""


@dataclass
class StripAudio:
    audio: np.ndarray          # 16 kHz mono float32, from the start of the sound file
    frames: np.ndarray         # scene frames to key (the strip's visible range)
    times: np.ndarray          # audio time (s) heard at each of those frames
    fps: float                 # scene frame rate (fps / fps_base)
    source: str                # file path, or "packed:<name>"


def sound_strips(scene) -> list:
    se = scene.sequence_editor
    if se is None:
        return []
    strips = getattr(se, "strips_all", None) or getattr(se, "sequences_all", [])  # 5.x / 4.2-4.4
    return [s for s in strips if s.type == "SOUND"]


def find_strip(scene, name: str | None):
    """The strip named ``name``, else the active strip if it is a sound strip, else the only sound strip."""
    strips = sound_strips(scene)
    if name:
        for s in strips:
            if s.name == name:
                return s
        raise BakeInputError(f"no sound strip named '{name}' in scene '{scene.name}'")
    se = scene.sequence_editor
    active = getattr(se, "active_strip", None) if se else None
    if active is not None and active.type == "SOUND":
        return active
    if len(strips) == 1:
        return strips[0]
    if not strips:
        raise BakeInputError("no sound strip in the scene: add the voice recording in the Video Sequencer")
    raise BakeInputError("several sound strips: pick one in the panel or make it the active strip")


def scene_fps(scene) -> float:
    return scene.render.fps / scene.render.fps_base


def read_strip_audio(scene, strip) -> StripAudio:
    """Decode the strip's sound and work out which audio time every visible frame shows."""
    import bpy
    import soundfile as sf

    from a2f_core.audio import load_audio
    from a2f_core.errors import AudioError

    if strip is None:
        raise BakeInputError("no sound strip selected")
    if strip.type != "SOUND":
        raise BakeInputError(f"strip '{strip.name}' is not a sound strip")
    if strip.mute:
        raise BakeInputError(f"strip '{strip.name}' is muted: unmute it to bake from it")
    if strip.volume <= 0.0:
        raise BakeInputError(f"strip '{strip.name}' has volume 0: raise it to bake from it")
    sound = strip.sound
    if sound is None:
        raise BakeInputError(f"strip '{strip.name}' has no sound data")
    try:
        if sound.packed_file is not None:
            data, rate = sf.read(io.BytesIO(bytes(sound.packed_file.data)), dtype="float32", always_2d=True)
            audio = load_audio(data, rate=rate)
            source = f"packed:{sound.name}"
        else:
            path = bpy.path.abspath(sound.filepath, library=sound.library)
            path = os.path.normpath(path)
            if not os.path.isfile(path):
                raise BakeInputError(f"sound file of strip '{strip.name}' not found at {path}: relink it "
                                     "(File > External Data > Find Missing Files) or pack it")
            audio = load_audio(path)
            source = path
    except AudioError as exc:
        raise BakeInputError(str(exc)) from None
    except (RuntimeError, sf.LibsndfileError) as exc:
        raise BakeInputError(f"packed sound of strip '{strip.name}' cannot be decoded ({exc})") from None
    fps = scene_fps(scene)
    start, end = int(strip.frame_final_start), int(strip.frame_final_end)
    frames = np.arange(start, end, dtype=np.int64)
    # audio time shown at scene frame F (strip volume is a mixing setting: the face follows the recording)
    times = (frames - float(strip.frame_start)) / fps + float(getattr(strip, "sound_offset", 0.0))
    return StripAudio(audio, frames, times, fps, source)
