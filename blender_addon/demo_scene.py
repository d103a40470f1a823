"""``python -m blender_addon.demo_scene --out DIR``: the whole product on the bundled clip, in Blender.

Builds a scene with the demo head and the bundled speech as a sound strip, bakes it with the
headless ``a2f_bake`` command, saves ``DIR/demo.blend``, renders frames at bilabials and open
vowels (Workbench) to ``DIR/frames/`` and puts them on one contact sheet ``DIR/contact_sheet.png``.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", default="out/demo")
    ap.add_argument("--checkpoint", help="model checkpoint (default: the shipped model)")
    args = ap.parse_args(argv)
    out = Path(args.out).resolve()
    (out / "frames").mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("BLENDER_USER_RESOURCES", tempfile.mkdtemp(prefix="a2f_blender_"))
    import bpy
    import numpy as np

    from a2f_core.demo import example_path, load_phones
    from a2f_core.model import default_checkpoint_path

    import blender_addon
    from blender_addon.cli import run as a2f_bake

    checkpoint = args.checkpoint
    if checkpoint is None and default_checkpoint_path() is None:
        checkpoint = str(out / "untrained.pt")
        if not os.path.exists(checkpoint):
            print("error: no trained model is installed and no --checkpoint given", file=sys.stderr)
            return 2
        print("note: no trained model is installed: baking with UNTRAINED weights, the mouth will not follow "
              "the speech", file=sys.stderr)
    bpy.ops.wm.read_factory_settings(use_empty=True)
    blender_addon.register()
    scene = bpy.context.scene
    scene.render.fps, scene.render.fps_base = 30, 1.0
    bpy.ops.a2f.add_demo_face()
    face = bpy.context.active_object
    wav = example_path()
    se = scene.sequence_editor_create()
    strip = se.strips.new_sound("speech_en", str(wav), 1, 1)
    scene.frame_start, scene.frame_end = 1, int(strip.frame_final_end) - 1
    # camera in front of the face (the head looks toward -Y), Workbench lighting
    co = np.array([v.co[:] for v in face.data.vertices[:9409]])
    lo, hi = co.min(0), co.max(0)
    cam_data = bpy.data.cameras.new("Camera")
    cam_data.lens = 85
    cam = bpy.data.objects.new("Camera", cam_data)
    scene.collection.objects.link(cam)
    cam.location = ((lo[0] + hi[0]) / 2, lo[1] - 0.55, lo[2] + 0.55 * (hi[2] - lo[2]))
    cam.rotation_euler = (np.pi / 2, 0.0, 0.0)
    scene.camera = cam
    scene.render.engine = "BLENDER_WORKBENCH"
    scene.display.shading.light = "STUDIO"
    scene.display.shading.color_type = "MATERIAL"
    scene.render.resolution_x = scene.render.resolution_y = 384
    scene.render.image_settings.file_format = "PNG"
    blend = out / "demo.blend"
    face_name = face.name
    bpy.ops.wm.save_as_mainfile(filepath=str(blend))
    argv = ["--blend", str(blend), "--strip", "speech_en", "--object", face_name, "--out", str(blend)]
    if checkpoint:
        argv += ["--checkpoint", checkpoint]
    rc = a2f_bake(argv)
    if rc:
        return rc
    bpy.ops.wm.open_mainfile(filepath=str(blend))
    scene = bpy.context.scene
    face = bpy.data.objects[face_name]
    phones = load_phones(wav.with_suffix(".phones.json"))
    picks = [p for p in phones if p[0] in ("M", "B", "P")][:4] + \
        [p for p in phones if p[0] in ("AA", "AE", "AH", "AO", "AY", "AW")][:4]
    # and the first blink of the baked curves
    from bpy_extras import anim_utils

    ad = face.data.shape_keys.animation_data
    for fc in anim_utils.action_get_channelbag_for_slot(ad.action, ad.action_slot).fcurves:
        if fc.data_path == 'key_blocks["eyeBlink_L"].value':
            co = np.zeros(2 * len(fc.keyframe_points), np.float32)
            fc.keyframe_points.foreach_get("co", co)
            closed = np.nonzero(co[1::2] >= 0.8)[0]
            if len(closed):
                f = float(co[0::2][closed[0]]) - 1
                picks.append(("blink", f / 30, f / 30))
    picks.sort(key=lambda p: p[1])
    shots = []
    key = face.data.shape_keys.key_blocks
    for label, start, end in picks:
        frame = 1 + int(round((start + end) / 2 * 30))
        scene.frame_set(frame)
        aperture = max(0.0, key["jawOpen"].value - key["mouthClose"].value)
        if label == "blink":
            frame = 1 + int(round(start * 30))
        path = out / "frames" / f"frame_{frame:04d}_{label}.png"
        scene.render.filepath = str(path)
        bpy.ops.render.render(write_still=True)
        shots.append((path, frame, label, aperture))
    sheet = contact_sheet(shots, out / "contact_sheet.png")
    print(f"{blend}: demo head baked from {wav.name}")
    print(f"{sheet}: {len(shots)} rendered frames (bilabials and open vowels) with lip aperture")
    return 0


def contact_sheet(shots, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.image as mpimg
    import matplotlib.pyplot as plt

    cols = 3 if len(shots) == 9 else 4
    rows = (len(shots) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(3 * cols, 3.3 * rows), dpi=100)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, (p, frame, label, ap) in zip(axes.ravel(), shots):
        ax.imshow(mpimg.imread(p))
        ax.set_title(f"frame {frame}  /{label}/  aperture {ap:.2f}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


if __name__ == "__main__":
    sys.exit(main())
