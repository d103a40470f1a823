"""Writing baked values as F-curves on shape keys: one action per bake, keyed with foreach_set."""

from __future__ import annotations

import numpy as np

from a2f_core.arkit import BROWS, EYES, INDEX, MOUTH

BAKE_TAG = "a2f_bake"          # custom property marking actions this add-on made
GROUPS = {**{n: "A2F Mouth" for n in MOUTH}, **{n: "A2F Eyes" for n in EYES}, **{n: "A2F Brows" for n in BROWS}}
LINEAR = 1  # FCurve keyframe interpolation enum value of 'LINEAR'


def _fcurves_for(action, key):
    """The collection to create F-curves in: a slot's channelbag (4.4+/5.x) or the legacy action.fcurves."""
    try:
        from bpy_extras import anim_utils

        ensure = anim_utils.action_ensure_channelbag_for_slot
    except (ImportError, AttributeError):
        ensure = None
    if ensure is not None and hasattr(action, "slots"):
        slot = action.slots.new(id_type="KEY", name=key.name)
        return ensure(action, slot).fcurves, slot, True
    return action.fcurves, None, False


def existing_action(key):
    ad = key.animation_data
    return ad.action if ad is not None else None


def is_own_bake(action) -> bool:
    return action is not None and bool(action.get(BAKE_TAG, False))


def write_action(key, action_name: str, frames: np.ndarray, values: np.ndarray, mapping: dict[str, list[str]],
                 assign: bool = True, strip_name: str = ""):
    """Create an action keying ``values`` (N, 52) at ``frames`` on the mapped shape keys of ``key``.

    Every mapped shape key gets one F-curve with one linear key per frame.
    Returns the action. Nothing else on the Key datablock is changed unless ``assign``.
    """
    import bpy

    action = bpy.data.actions.new(action_name)
    action[BAKE_TAG] = True
    action["a2f_strip"] = strip_name
    fcurves, slot, layered = _fcurves_for(action, key)
    n = len(frames)
    co = np.empty(2 * n, np.float32)
    co[0::2] = frames
    interp = np.full(n, LINEAR, np.int32)
    for arkit, targets in mapping.items():
        col = values[:, INDEX[arkit]]
        co[1::2] = col
        group = GROUPS.get(arkit, "A2F Other")
        for kb_name in targets:
            path = f'key_blocks["{bpy.utils.escape_identifier(kb_name)}"].value'
            fc = fcurves.new(path, index=0, group_name=group) if layered else \
                fcurves.new(path, index=0, action_group=group)
            fc.keyframe_points.add(n)
            fc.keyframe_points.foreach_set("co", co)
            fc.keyframe_points.foreach_set("interpolation", interp)
            fc.update()
    if assign:
        ad = key.animation_data or key.animation_data_create()
        ad.action = action
        if layered and slot is not None:
            ad.action_slot = slot
    return action
