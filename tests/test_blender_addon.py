"""The add-on in real Blender 5.0 (bpy from PyPI): register, bake, trims, rates, refusals, CLI."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

bpy = pytest.importorskip("bpy")

import addon_utils  # noqa: E402  (Blender's own module, importable once bpy is)

from a2f_core.arkit import ARKIT_NAMES  # noqa: E402
from a2f_core.demo import example_path  # noqa: E402
from blender_addon.bake import BakeOptions, compute, prepare  # noqa: E402
from blender_addon.strips import BakeInputError  # noqa: E402
from tests.troubleshooting import rows  # noqa: E402

ADDON = "blender_addon"


@pytest.fixture(autouse=True)
def fresh_blender(checkpoint):
    bpy.ops.wm.read_factory_settings(use_empty=True)
    addon_utils.enable(ADDON, default_set=True)
    bpy.context.preferences.addons[ADDON].preferences.checkpoint = str(checkpoint)
    bpy.context.scene.render.fps = 30
    yield
    addon_utils.disable(ADDON, default_set=True)


def Opts(**kw) -> BakeOptions:
    """Bake options as the panel would give them, with the test model."""
    return BakeOptions(checkpoint=bpy.context.preferences.addons[ADDON].preferences.checkpoint, **kw)


def add_strip(path=None, name="voice", frame=1):
    se = bpy.context.scene.sequence_editor_create()
    return se.strips.new_sound(name, str(path or example_path()), 1, frame)


def rig(names, name="rig"):
    me = bpy.data.meshes.new(name)
    me.from_pydata([(0, 0, 0), (1, 0, 0), (0, 1, 0)], [], [(0, 1, 2)])
    ob = bpy.data.objects.new(name, me)
    bpy.context.scene.collection.objects.link(ob)
    if names:
        ob.shape_key_add(name="Basis")
        for n in names:
            ob.shape_key_add(name=n).value = 0.0
    bpy.context.view_layer.objects.active = ob
    return ob


def fcurves(obj):
    from bpy_extras import anim_utils

    ad = obj.data.shape_keys.animation_data
    return list(anim_utils.action_get_channelbag_for_slot(ad.action, ad.action_slot).fcurves)


def keys_of(obj, shape):
    for fc in fcurves(obj):
        if fc.data_path == f'key_blocks["{shape}"].value':
            co = np.zeros(2 * len(fc.keyframe_points), np.float32)
            fc.keyframe_points.foreach_get("co", co)
            return co[0::2], co[1::2]
    raise KeyError(shape)


def bake(**kw):
    return bpy.ops.a2f.bake_face(**kw)


def test_register_unregister_twice():
    for _ in range(2):
        addon_utils.disable(ADDON, default_set=True)
        assert not hasattr(bpy.types, "A2F_OT_bake_face")
        addon_utils.enable(ADDON, default_set=True)
        assert hasattr(bpy.types, "A2F_OT_bake_face") and hasattr(bpy.types.Scene, "a2f")


def test_bake_on_demo_face_keys_every_mapped_shape(speech):
    bpy.ops.a2f.add_demo_face()
    face = bpy.context.active_object
    assert all(kb.value == 0.0 for kb in face.data.shape_keys.key_blocks[1:])  # not the Basis
    add_strip()
    assert bake() == {"FINISHED"}
    curves = fcurves(face)
    # 51 ARKit names map (tongueOut has no ICT shape); browInnerUp and cheekPuff drive both halves
    assert len(curves) == 53
    n = int(np.ceil(len(speech) / 16000 * 30))
    assert all(abs(len(fc.keyframe_points) - n) <= 1 for fc in curves)
    s = bpy.context.scene.a2f
    assert s.last_mapped == 51 and s.last_missing == "tongueOut" and s.last_frames == len(curves[0].keyframe_points)
    fl, vl = keys_of(face, "browInnerUp_L")
    fr, vr = keys_of(face, "browInnerUp_R")
    np.testing.assert_array_equal(vl, vr)


def test_all_52_names_on_a_52_key_rig():
    ob = rig(ARKIT_NAMES)
    add_strip()
    assert bake() == {"FINISHED"}
    assert sorted(fc.data_path for fc in fcurves(ob)) == sorted(f'key_blocks["{n}"].value' for n in ARKIT_NAMES)
    assert bpy.context.scene.a2f.last_missing == ""
    # the value is driven: evaluating a frame moves the shape key
    bpy.context.scene.frame_set(40)
    f, v = keys_of(ob, "jawOpen")
    assert ob.data.shape_keys.key_blocks["jawOpen"].value == pytest.approx(float(v[f == 40][0]), abs=1e-5)


def test_loose_names_are_found_and_missing_reported():
    ob = rig(["JawOpen", "mouth_close", "EyeBlink_L", "eye_blink_r", "smile"])
    add_strip()
    assert bake() == {"FINISHED"}
    paths = {fc.data_path for fc in fcurves(ob)}
    assert paths == {'key_blocks["JawOpen"].value', 'key_blocks["mouth_close"].value',
                     'key_blocks["EyeBlink_L"].value', 'key_blocks["eye_blink_r"].value'}
    assert bpy.context.scene.a2f.last_mapped == 4 and "jawForward" in bpy.context.scene.a2f.last_missing


def test_trims_and_offsets_shift_keys():
    ob = rig(ARKIT_NAMES)
    plain = add_strip(name="plain", frame=1)
    opts = dict(obj=ob.name)
    job = compute(prepare(bpy.context, Opts(strip="plain", **opts)))
    base_f, base_v = job.audio.frames, job.values
    # trim 15 frames off the start and 20 off the end: keys only on the visible part, same values there
    plain.frame_offset_start = 15
    plain.frame_offset_end = 20
    job2 = compute(prepare(bpy.context, Opts(strip="plain", **opts)))
    assert job2.audio.frames[0] == 16 and job2.audio.frames[-1] == base_f[-1] - 20
    np.testing.assert_allclose(job2.values, base_v[15:len(base_v) - 20], atol=1e-5)
    # a strip starting at frame 101 keys the same values 100 frames later
    plain.frame_offset_start = plain.frame_offset_end = 0
    plain.frame_start = 101
    job3 = compute(prepare(bpy.context, Opts(strip="plain", **opts)))
    assert job3.audio.frames[0] == 101
    np.testing.assert_allclose(job3.values, base_v, atol=1e-5)
    # a sound offset of 1 s shows the audio 30 frames earlier
    plain.frame_start = 1
    plain.sound_offset = 1.0
    job4 = compute(prepare(bpy.context, Opts(strip="plain", **opts)))
    k = len(job4.values) - 30
    np.testing.assert_allclose(job4.values[:k], base_v[30:30 + k], atol=1e-5)


@pytest.mark.parametrize("fps,base", [(25, 1.0), (24, 1.001), (60, 1.0)])
def test_other_scene_rates(speech, fps, base):
    scene = bpy.context.scene
    scene.render.fps, scene.render.fps_base = fps, base
    ob = rig(ARKIT_NAMES)
    add_strip()
    assert bake() == {"FINISHED"}
    f, v = keys_of(ob, "jawOpen")
    assert abs(len(f) - len(speech) / 16000 * fps / base) <= 1.5
    assert np.all(np.diff(f) == 1)


@rows(('Blender: packed sound',
       'baked from the packed data, the same as from the file'))
def test_packed_sound_bakes_the_same(tmp_path):
    ob = rig(ARKIT_NAMES)
    strip = add_strip()
    a = compute(prepare(bpy.context, Opts(obj=ob.name)))
    strip.sound.pack()
    assert strip.sound.packed_file is not None
    b = compute(prepare(bpy.context, Opts(obj=ob.name)))
    assert b.audio.source.startswith("packed:")
    np.testing.assert_allclose(a.values, b.values, atol=1e-5)


@rows(('Blender: no sound strip, several without a choice',
       'refused: `no sound strip in the scene: add the voice recording ...` / `several sound strips: pick one ...`'),
      ('Blender: muted strip, volume 0',
       "refused: `strip '...' is muted: unmute it ...` / `has volume 0: raise it ...`"),
      ("Blender: strip's file moved",
       "`sound file of strip '...' not found at ...: relink it (File > External Data > Find Missing Files) or pack it`"),
      ('Blender: mesh without shape keys, none of the 52 names, not a mesh',
       'refused with the reason; nothing in the scene changes'))
def test_refusals_have_clear_messages(tmp_path):
    ob = rig(ARKIT_NAMES)
    with pytest.raises(BakeInputError, match="no sound strip in the scene"):
        prepare(bpy.context, Opts(obj=ob.name))
    strip = add_strip()
    strip.mute = True
    with pytest.raises(BakeInputError, match="muted"):
        prepare(bpy.context, Opts(obj=ob.name))
    strip.mute = False
    strip.volume = 0.0
    with pytest.raises(BakeInputError, match="volume 0"):
        prepare(bpy.context, Opts(obj=ob.name))
    strip.volume = 1.0
    second = add_strip(name="voice 2", frame=400)
    bpy.context.scene.sequence_editor.active_strip = None
    with pytest.raises(BakeInputError, match="several sound strips"):
        prepare(bpy.context, Opts(obj=ob.name))
    bpy.context.scene.sequence_editor.strips.remove(second)
    bare = rig([], name="bare")
    with pytest.raises(BakeInputError, match="no shape keys"):
        prepare(bpy.context, Opts(obj=bare.name))
    other = rig(["smile", "frown"], name="other")
    with pytest.raises(BakeInputError, match="none of the 52 ARKit"):
        prepare(bpy.context, Opts(obj=other.name))
    cam = bpy.data.objects.new("cam", bpy.data.cameras.new("cam"))
    bpy.context.scene.collection.objects.link(cam)
    with pytest.raises(BakeInputError, match="not a mesh"):
        prepare(bpy.context, Opts(obj=cam.name))
    moved = tmp_path / "moved.wav"
    sf.write(moved, np.zeros(16000, np.float32), 16000)
    s2 = add_strip(moved, name="moved")
    moved.unlink()
    with pytest.raises(BakeInputError, match="not found"):
        prepare(bpy.context, Opts(obj=ob.name, strip=s2.name))
    # the operator reports the same message as an error and changes nothing
    bpy.context.view_layer.objects.active = bare
    with pytest.raises(RuntimeError, match="has no shape keys"):
        bake()
    assert bare.data.shape_keys is None and not bpy.data.actions


@rows(('Blender: shape keys already use your own action',
       'refused unless *Replace Existing Action* (your action is then kept with a fake user)'))
def test_rebake_replaces_only_its_own_action():
    ob = rig(ARKIT_NAMES)
    add_strip()
    assert bake() == {"FINISHED"}
    first = ob.data.shape_keys.animation_data.action.name
    assert bake() == {"FINISHED"}
    assert [a.name for a in bpy.data.actions] == [ob.data.shape_keys.animation_data.action.name]
    # a user's own action is never replaced without asking
    user = bpy.data.actions.new("hand keyed")
    ob.data.shape_keys.animation_data.action = user
    assert first  # named after the strip
    with pytest.raises(RuntimeError, match="already use action 'hand keyed'"):
        bake()
    assert ob.data.shape_keys.animation_data.action == user
    assert bake(replace=True) == {"FINISHED"}
    assert ob.data.shape_keys.animation_data.action != user
    assert "hand keyed" in bpy.data.actions and bpy.data.actions["hand keyed"].use_fake_user


def _snapshot():
    ad_state = {}
    for key in bpy.data.shape_keys:
        ad = key.animation_data
        ad_state[key.name] = (ad.action.name if ad and ad.action else None)
    return (sorted(a.name for a in bpy.data.actions), ad_state,
            {o.name: [kb.value for kb in o.data.shape_keys.key_blocks] for o in bpy.data.objects
             if o.type == "MESH" and o.data.shape_keys})


@rows(('Blender: Esc during a bake',
       'cancelled: actions, assignments and shape-key values are as they were'))
def test_cancel_leaves_the_scene_as_it_was():
    ob = rig(ARKIT_NAMES)
    add_strip()
    assert bake() == {"FINISHED"}
    before = _snapshot()
    job = prepare(bpy.context, Opts(obj=ob.name))
    with pytest.raises(InterruptedError):
        compute(job, cancel=lambda: True)
    assert _snapshot() == before


def test_cli_command_bakes_and_saves(tmp_path, checkpoint):
    from blender_addon.cli import run

    bpy.ops.a2f.add_demo_face()
    face = bpy.context.active_object.name
    add_strip(name="line01")
    blend = tmp_path / "scene.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(blend))
    out = tmp_path / "baked.blend"
    rc = run(["--blend", str(blend), "--strip", "line01", "--object", face, "--out", str(out),
              "--checkpoint", str(checkpoint)])
    assert rc == 0 and out.exists()
    bpy.ops.wm.open_mainfile(filepath=str(out))
    assert "A2F line01" in bpy.data.actions
    assert run(["--blend", str(tmp_path / "missing.blend"), "--out", str(out)]) == 2
    assert run(["--blend", str(out), "--strip", "nope", "--object", face, "--checkpoint", str(checkpoint)]) == 2


def test_cli_batch_makes_one_action_per_file(tmp_path, checkpoint, speech):
    from blender_addon.cli import run

    folder = tmp_path / "lines"
    folder.mkdir()
    for i in range(3):
        sf.write(folder / f"line{i}.wav", speech[: 16000 * (i + 1)], 16000)
    ob = rig(ARKIT_NAMES)
    out = tmp_path / "batch.blend"
    rc = run(["--batch", str(folder), "--object", ob.name, "--out", str(out), "--checkpoint", str(checkpoint)])
    assert rc == 0
    bpy.ops.wm.open_mainfile(filepath=str(out))
    assert sorted(a.name for a in bpy.data.actions) == ["A2F line0", "A2F line1", "A2F line2"]


def test_one_undo_step_and_keying_is_foreach_fast():
    import time

    from blender_addon.keying import write_action

    ob = rig(ARKIT_NAMES)
    vals = np.random.default_rng(0).random((1800, 52)).astype(np.float32)
    t0 = time.perf_counter()
    write_action(ob.data.shape_keys, "speed", np.arange(1800), vals, {n: [n] for n in ARKIT_NAMES})
    print(f"keying 52 x 1800: {time.perf_counter() - t0:.4f} s")
    assert "UNDO" in bpy.types.A2F_OT_bake_face.bl_options


@rows(("Blender: a mesh linked from a library", "refused: `mesh '...' is linked from a library: make it local or use a library override ...`"))
def test_linked_mesh_is_refused_and_left_alone(tmp_path):
    ob = rig(ARKIT_NAMES, name="libface")
    lib = tmp_path / "lib.blend"
    bpy.data.libraries.write(str(lib), {ob}, fake_user=True)
    bpy.ops.wm.read_factory_settings(use_empty=True)
    addon_utils.enable(ADDON, default_set=True)
    with bpy.data.libraries.load(str(lib), link=True) as (src, dst):
        dst.objects = ["libface"]
    linked = dst.objects[0]
    bpy.context.scene.collection.objects.link(linked)
    add_strip()
    assert linked.library is not None
    with pytest.raises(BakeInputError, match="linked from a library"):
        prepare(bpy.context, Opts(obj=linked.name))
    assert linked.data.shape_keys.animation_data is None and not bpy.data.actions
