"""Settings saved in the .blend: bake options per scene, the shape-key mapping table per object."""

from __future__ import annotations

import bpy
from bpy.props import (BoolProperty, CollectionProperty, EnumProperty, FloatProperty, IntProperty,
                       PointerProperty, StringProperty)

from .mapping import PRESET_ITEMS


def _is_mesh(self, obj):
    return obj.type == "MESH"


class A2F_MappingRow(bpy.types.PropertyGroup):
    arkit: StringProperty(name="ARKit", description="ARKit blendshape name")
    shape_key: StringProperty(name="Shape Key", description="Shape key of this mesh driven by the ARKit value")


class A2F_Settings(bpy.types.PropertyGroup):
    strip: StringProperty(name="Sound Strip", description="Sound strip to bake from (empty: the active strip)")
    target: PointerProperty(name="Face", type=bpy.types.Object, poll=_is_mesh,
                            description="Mesh with ARKit shape keys (empty: the active object)")
    preset: EnumProperty(name="Rig", items=PRESET_ITEMS, default="auto",
                         description="Naming convention of the face's shape keys")
    mouth: FloatProperty(name="Mouth", default=1.0, min=0.0, max=2.0, description="Intensity of mouth and jaw")
    brows: FloatProperty(name="Brows", default=1.0, min=0.0, max=2.0, description="Intensity of the brows")
    eyes: FloatProperty(name="Eyes", default=1.0, min=0.0, max=2.0, description="Intensity of the eyes")
    cheeks: FloatProperty(name="Cheeks", default=1.0, min=0.0, max=2.0, description="Intensity of cheeks and nose")
    procedural: BoolProperty(name="Blinks and Expression", default=True,
                             description="Add blinks, eye darts and brows that follow the voice; off: the "
                                         "model's curves as they are")
    emotion: EnumProperty(name="Emotion", default="neutral",
                          items=[("neutral", "Neutral", ""), ("happy", "Happy", ""), ("sad", "Sad", ""),
                                 ("angry", "Angry", ""), ("surprised", "Surprised", "")],
                          description="Emotion blended on top of the speech")
    emotion_strength: FloatProperty(name="Strength", default=0.6, min=0.0, max=1.0)
    seed: IntProperty(name="Seed", default=0, min=0, description="Seed of blinks and gaze")
    replace_user_action: BoolProperty(
        name="Replace Existing Action", default=False,
        description="Assign the bake even if the shape keys use an action not made by this add-on "
                    "(that action is kept with a fake user)")
    last_frames: IntProperty(name="Frames", default=0)
    last_seconds: FloatProperty(name="Seconds", default=0.0)
    last_action: StringProperty(name="Action")
    last_missing: StringProperty(name="Missing")
    last_mapped: IntProperty(name="Mapped", default=0)


classes = (A2F_MappingRow, A2F_Settings)


def register_props():
    bpy.types.Scene.a2f = PointerProperty(type=A2F_Settings)
    bpy.types.Object.a2f_mapping = CollectionProperty(type=A2F_MappingRow)
    bpy.types.Object.a2f_mapping_index = IntProperty(default=0)


def unregister_props():
    del bpy.types.Object.a2f_mapping_index
    del bpy.types.Object.a2f_mapping
    del bpy.types.Scene.a2f
