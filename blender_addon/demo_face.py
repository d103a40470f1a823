"""A realistic demo head (ICT-FaceKit, MIT) with 57 ARKit-style expression shape keys."""

from __future__ import annotations

from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parent / "data" / "ict_face_arkit.npz"


def add_demo_face(context, name: str = "A2F Demo Face"):
    """Build the head in the scene (Z-up, metres) with a Basis key and 57 shape keys at 0."""
    import bpy

    z = np.load(DATA)
    v = z["vertices"].astype(np.float32)
    to_blender = lambda a: np.stack([a[..., 0], -a[..., 2], a[..., 1]], axis=-1) * 0.01  # noqa: E731
    verts = to_blender(v)
    sizes = z["face_sizes"].astype(np.int32)
    corners = z["face_indices"].astype(np.int32)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int32)
    me = bpy.data.meshes.new(name)
    me.vertices.add(len(verts))
    me.vertices.foreach_set("co", verts.ravel())
    me.loops.add(len(corners))
    me.loops.foreach_set("vertex_index", corners)
    me.polygons.add(len(sizes))
    me.polygons.foreach_set("loop_start", starts)
    me.polygons.foreach_set("use_smooth", np.ones(len(sizes), bool))
    uv = me.uv_layers.new(name="UVMap")
    uv.data.foreach_set("uv", z["uv"].astype(np.float32).ravel())
    me.update()
    me.validate()
    obj = bpy.data.objects.new(name, me)
    context.scene.collection.objects.link(obj)
    obj.shape_key_add(name="Basis", from_mix=False)
    deltas = z["deltas"].astype(np.float32)
    for i, shape in enumerate(z["names"]):
        kb = obj.shape_key_add(name=str(shape), from_mix=False)
        kb.value = 0.0  # new keys start at 1.0 in Blender 5.0
        kb.data.foreach_set("co", (verts + to_blender(deltas[i])).ravel())
    mat = bpy.data.materials.new(name + " Skin")
    mat.diffuse_color = (0.80, 0.62, 0.55, 1.0)
    me.materials.append(mat)
    return obj
