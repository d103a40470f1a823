"""Sidebar panels: View3D > Sidebar > Face From Audio, and the same in the Sequencer."""

from __future__ import annotations

import bpy


def draw_settings(layout, context):
    s = context.scene.a2f
    se = context.scene.sequence_editor
    col = layout.column(align=True)
    if se is not None:
        col.prop_search(s, "strip", se, "strips_all" if hasattr(se, "strips_all") else "sequences_all",
                        text="Strip", icon="SOUND")
    else:
        col.label(text="No sequencer strips yet", icon="SOUND")
    col.prop(s, "target", text="Face")
    col.prop(s, "preset")
    box = layout.box()
    box.label(text="Intensity")
    row = box.row(align=True)
    row.prop(s, "mouth")
    row.prop(s, "brows")
    row = box.row(align=True)
    row.prop(s, "eyes")
    row.prop(s, "cheeks")
    box = layout.box()
    box.prop(s, "procedural")
    row = box.row(align=True)
    row.prop(s, "emotion", text="")
    row.prop(s, "emotion_strength")
    box.prop(s, "seed")
    layout.prop(s, "replace_user_action")
    layout.operator("a2f.bake_face", icon="SHAPEKEY_DATA")
    row = layout.row(align=True)
    row.operator("a2f.add_demo_face", icon="MONKEY")
    row.operator("a2f.fill_mapping", icon="PRESET")
    if s.last_frames:
        box = layout.box()
        box.label(text=f"Last bake: {s.last_frames} frames, {s.last_seconds:.1f} s", icon="CHECKMARK")
        box.label(text=f"Action: {s.last_action}; {s.last_mapped}/52 ARKit shapes")
        if s.last_missing:
            box.label(text=f"Missing: {s.last_missing}"[:120], icon="ERROR")
    obj = s.target or context.active_object
    if obj is not None and obj.type == "MESH" and len(getattr(obj, "a2f_mapping", [])):
        box = layout.box()
        box.label(text=f"Mapping of {obj.name} (saved in the .blend)")
        box.template_list("UI_UL_list", "a2f_mapping", obj, "a2f_mapping", obj, "a2f_mapping_index", rows=4)
        if 0 <= obj.a2f_mapping_index < len(obj.a2f_mapping):
            row_data = obj.a2f_mapping[obj.a2f_mapping_index]
            box.prop(row_data, "arkit")
            if obj.data.shape_keys:
                box.prop_search(row_data, "shape_key", obj.data.shape_keys, "key_blocks")


class _FaceFromAudioPanel:
    bl_label = "Face From Audio"
    bl_region_type = "UI"
    bl_category = "Face From Audio"

    def draw(self, context):
        draw_settings(self.layout, context)


class VIEW3D_PT_a2f(_FaceFromAudioPanel, bpy.types.Panel):
    bl_space_type = "VIEW_3D"


class SEQUENCER_PT_a2f(_FaceFromAudioPanel, bpy.types.Panel):
    bl_space_type = "SEQUENCE_EDITOR"


classes = (VIEW3D_PT_a2f, SEQUENCER_PT_a2f)
