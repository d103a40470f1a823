"""`python build.py build` makes an extension zip that installs into Blender 5.0 and bakes."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import pytest

pytest.importorskip("bpy")
ROOT = Path(__file__).resolve().parents[1]

INSTALL_AND_BAKE = r"""
import os, sys
import bpy
zip_path, checkpoint, wav = sys.argv[1:4]
bpy.ops.wm.read_factory_settings(use_empty=True)
assert bpy.ops.extensions.package_install_files(filepath=zip_path, repo="user_default",
                                                 enable_on_install=True) == {"FINISHED"}
name = "bl_ext.user_default.face_from_audio"
assert name in bpy.context.preferences.addons, list(bpy.context.preferences.addons.keys())
import a2f_core
assert "extensions" in a2f_core.__file__, a2f_core.__file__   # the bundled wheel, not the dev tree
bpy.context.preferences.addons[name].preferences.checkpoint = checkpoint
scene = bpy.context.scene
scene.render.fps = 30
bpy.ops.a2f.add_demo_face()
scene.sequence_editor_create().strips.new_sound("voice", wav, 1, 1)
assert bpy.ops.a2f.bake_face() == {"FINISHED"}
ad = bpy.context.active_object.data.shape_keys.animation_data
print("BAKED", ad.action.name, scene.a2f.last_frames)
"""


def test_built_zip_installs_and_bakes(checkpoint, tmp_path):
    r = subprocess.run([sys.executable, str(ROOT / "build.py"), "build", "--platform", "linux-x64"],
                       cwd=ROOT, capture_output=True, text=True, timeout=1200)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    zips = sorted((ROOT / "dist").glob("face_from_audio-*-linux_x64.zip"))
    assert zips, "no zip built"
    with zipfile.ZipFile(zips[-1]) as z:
        names = z.namelist()
    assert "blender_manifest.toml" in names and "__init__.py" in names
    assert any(n.startswith("wheels/a2f_core-") for n in names)
    assert not any(n.startswith("wheels/numpy-") for n in names)  # Blender brings its own numpy
    assert "data/ict_face_arkit.npz" in names
    script = tmp_path / "install.py"
    script.write_text(INSTALL_AND_BAKE)
    env = dict(os.environ, BLENDER_USER_RESOURCES=tempfile.mkdtemp(prefix="a2f_ext_"), PYTHONPATH="")
    from a2f_core.demo import example_path

    r = subprocess.run([sys.executable, str(script), str(zips[-1]), str(checkpoint), str(example_path())],
                       cwd=tmp_path, capture_output=True, text=True, env=env, timeout=900)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "BAKED A2F voice 213" in r.stdout
