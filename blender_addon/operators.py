"""Operators: Bake Face From Audio (modal with a worker thread in the UI, synchronous in the
background), Add Demo Face, and filling the mapping table."""

from __future__ import annotations

import threading

import bpy
from bpy.props import BoolProperty, StringProperty

from .bake import BakeOptions, apply, compute, prepare
from .strips import BakeInputError


def options_from_scene(context, op=None) -> BakeOptions:
    s = context.scene.a2f
    prefs = addon_prefs(context)
    return BakeOptions(
        strip=(op.strip if op is not None and op.strip else s.strip) or None,
        obj=(op.object if op is not None and op.object else (s.target.name if s.target else None)),
        preset=s.preset, mouth=s.mouth, brows=s.brows, eyes=s.eyes, cheeks=s.cheeks,
        procedural=s.procedural, emotion=s.emotion, emotion_strength=s.emotion_strength, seed=s.seed,
        replace_user_action=s.replace_user_action or (op is not None and op.replace),
        checkpoint=(prefs.checkpoint or None) if prefs else None,
        threads=(prefs.threads or None) if prefs else None)


def addon_prefs(context):
    addon = context.preferences.addons.get(__package__)
    return addon.preferences if addon is not None else None


def store_summary(context, summary: dict) -> None:
    s = context.scene.a2f
    s.last_frames = summary["frames"]
    s.last_seconds = summary["seconds"]
    s.last_action = summary["action"]
    s.last_mapped = summary["mapped"]
    s.last_missing = ", ".join(summary["missing"])


class A2F_OT_bake_face(bpy.types.Operator):
    """Bake the sound strip's speech onto the face's ARKit shape keys"""

    bl_idname = "a2f.bake_face"
    bl_label = "Bake Face From Audio"
    bl_options = {"REGISTER", "UNDO"}

    strip: StringProperty(name="Strip", default="", options={"SKIP_SAVE"})
    object: StringProperty(name="Object", default="", options={"SKIP_SAVE"})
    replace: BoolProperty(name="Replace Existing Action", default=False, options={"SKIP_SAVE"})

    _thread = None
    _timer = None

    def _finish(self, context, job) -> set[str]:
        apply(job)
        store_summary(context, job.summary)
        miss = job.summary["missing"]
        self.report({"INFO"}, f"Baked {job.summary['frames']} frames onto {job.summary['mapped']} ARKit shapes in "
                              f"{job.summary['seconds']:.1f} s" + (f"; missing: {', '.join(miss)}" if miss else ""))
        return {"FINISHED"}

    def execute(self, context):
        from a2f_core.errors import A2FError

        try:
            job = prepare(context, options_from_scene(context, self))
            compute(job)
            return self._finish(context, job)
        except (BakeInputError, A2FError) as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}

    def invoke(self, context, event):
        from a2f_core.errors import A2FError

        if bpy.app.background:  # no timers or events in the background: do it all now
            return self.execute(context)
        asked = self._ask_before_replacing(context, event)
        if asked is not None:
            return asked
        try:
            self._job = prepare(context, options_from_scene(context, self))
        except (BakeInputError, A2FError) as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        self._progress = 0.0
        self._cancel = False
        self._error = None
        self._done = False

        def work():
            try:
                compute(self._job, progress=self._set_progress, cancel=lambda: self._cancel)
            except InterruptedError:
                pass
            except Exception as exc:  # reported on the main thread
                self._error = exc
            finally:
                self._done = True

        wm = context.window_manager
        wm.progress_begin(0, 100)
        self._timer = wm.event_timer_add(0.1, window=context.window)
        self._thread = threading.Thread(target=work, daemon=True)
        self._thread.start()
        wm.modal_handler_add(self)
        return {"RUNNING_MODAL"}

    def _ask_before_replacing(self, context, event):
        """The shape keys use an action the add-on did not make: ask, and bake only on a yes."""
        from .bake import resolve_object
        from .keying import existing_action, is_own_bake

        opts = options_from_scene(context, self)
        if opts.replace_user_action:
            return None
        try:
            key = resolve_object(context, opts.obj).data.shape_keys
        except BakeInputError:
            return None  # prepare() reports it
        current = existing_action(key)
        if current is None or is_own_bake(current):
            return None
        self.replace = True  # what a confirmed dialog runs with
        return context.window_manager.invoke_confirm(
            self, event, title="Replace Existing Action?",
            message=f"The shape keys use '{current.name}', which this add-on did not make. "
                    "Assign the bake instead? That action is kept.", confirm_text="Replace")

    def _set_progress(self, fraction: float) -> None:
        self._progress = fraction

    def modal(self, context, event):
        wm = context.window_manager
        if event.type == "ESC":
            self._cancel = True
        if event.type != "TIMER":
            return {"RUNNING_MODAL"} if not self._cancel else {"RUNNING_MODAL", "PASS_THROUGH"}
        wm.progress_update(int(self._progress * 100))
        if not self._done:
            return {"RUNNING_MODAL"}
        wm.event_timer_remove(self._timer)
        wm.progress_end()
        if self._cancel:
            self.report({"WARNING"}, "Bake cancelled: nothing was changed")
            return {"CANCELLED"}
        if self._error is not None:
            self.report({"ERROR"}, str(self._error).splitlines()[0] if str(self._error) else type(self._error).__name__)
            return {"CANCELLED"}
        return self._finish(context, self._job)


class A2F_OT_add_demo_face(bpy.types.Operator):
    """Add a realistic head with ARKit expression shape keys (ICT-FaceKit, MIT)"""

    bl_idname = "a2f.add_demo_face"
    bl_label = "Add Demo Face"
    bl_options = {"REGISTER", "UNDO"}

    def execute(self, context):
        from .demo_face import add_demo_face

        obj = add_demo_face(context)
        for o in context.view_layer.objects:
            o.select_set(False)
        obj.select_set(True)
        context.view_layer.objects.active = obj
        if context.scene.a2f.target is None:
            context.scene.a2f.target = obj
        return {"FINISHED"}


class A2F_OT_fill_mapping(bpy.types.Operator):
    """Fill the face's mapping table with the shape keys found for each ARKit name (edit it afterwards)"""

    bl_idname = "a2f.fill_mapping"
    bl_label = "Fill Mapping Table"
    bl_options = {"REGISTER", "UNDO"}

    def execute(self, context):
        from .bake import resolve_object
        from .mapping import build_mapping

        s = context.scene.a2f
        try:
            obj = resolve_object(context, s.target.name if s.target else None)
        except BakeInputError as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        mapping, missing = build_mapping([kb.name for kb in obj.data.shape_keys.key_blocks], s.preset)
        obj.a2f_mapping.clear()
        from a2f_core.arkit import ARKIT_NAMES

        for arkit in ARKIT_NAMES:
            for key in mapping.get(arkit, [""]):
                row = obj.a2f_mapping.add()
                row.arkit, row.shape_key = arkit, key
        self.report({"INFO"}, f"{len(mapping)} of 52 ARKit names found" + (f"; missing: {', '.join(missing)}"
                                                                            if missing else ""))
        return {"FINISHED"}


classes = (A2F_OT_bake_face, A2F_OT_add_demo_face, A2F_OT_fill_mapping)
