"""Add-on preferences: which model runs, threads, and where per-user data lives."""

from __future__ import annotations

import bpy
from bpy.props import IntProperty, StringProperty


def user_data_dir() -> str:
    try:
        return bpy.utils.extension_path_user(__package__, path="", create=True)
    except (ValueError, AttributeError, RuntimeError):
        return "(available when installed as an extension)"


class A2F_Preferences(bpy.types.AddonPreferences):
    bl_idname = __package__

    checkpoint: StringProperty(name="Model Checkpoint", subtype="FILE_PATH", default="",
                               description="A trained a2f_core checkpoint (.pt); empty: the model shipped inside")
    threads: IntProperty(name="Threads", default=0, min=0, max=64,
                         description="CPU threads for the bake (0: all cores but one, which computes "
                                     "the eGeMAPS features alongside)")

    def draw(self, context):
        layout = self.layout
        layout.prop(self, "checkpoint")
        layout.prop(self, "threads")
        try:
            from a2f_core.model import default_checkpoint_path

            shipped = default_checkpoint_path()
            model = self.checkpoint or (str(shipped) if shipped else "none installed")
        except Exception as exc:  # show why the engine did not load, do not break the preferences
            model = f"engine not available ({type(exc).__name__})"
        layout.label(text=f"Model in use: {model}")
        layout.label(text=f"Per-user data: {user_data_dir()}")


classes = (A2F_Preferences,)
