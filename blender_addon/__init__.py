"""Face From Audio: bake speech from a sound strip onto a face's 52 ARKit shape keys."""

from __future__ import annotations

import bpy

from . import operators, panel, preferences, props

classes = (*props.classes, *preferences.classes, *operators.classes, *panel.classes)
_cli_handle = None


def _cli(argv):
    from .cli import run

    return run(argv)


def register():
    global _cli_handle
    for cls in classes:
        bpy.utils.register_class(cls)
    props.register_props()
    if hasattr(bpy.utils, "register_cli_command"):
        _cli_handle = bpy.utils.register_cli_command("a2f_bake", _cli)


def unregister():
    global _cli_handle
    if _cli_handle is not None:
        bpy.utils.unregister_cli_command(_cli_handle)
        _cli_handle = None
    props.unregister_props()
    for cls in reversed(classes):
        bpy.utils.unregister_class(cls)
