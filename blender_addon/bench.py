"""``python -m blender_addon.bench``: how long keying a bake takes in Blender (bpy), as JSON.

Keys 52 ARKit shape keys x ``--frames`` frames into a new action with :func:`keying.write_action`
(``foreach_set``, no per-key Python calls), ``--repeat`` times, and prints the median and best.
Needs Blender's ``bpy`` module (``pip install bpy==5.0.1``) or a Blender binary:
``blender --background --python-expr "from blender_addon import bench; bench.main()"``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--frames", type=int, default=1800, help="frames per curve (default 1800: 60 s at 30 fps)")
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args(argv)
    os.environ.setdefault("BLENDER_USER_RESOURCES", tempfile.mkdtemp(prefix="a2f_blender_"))
    import bpy
    import numpy as np

    from a2f_core.arkit import ARKIT_NAMES

    from .keying import write_action

    bpy.ops.wm.read_factory_settings(use_empty=True)
    me = bpy.data.meshes.new("bench")
    me.from_pydata([(0, 0, 0), (1, 0, 0), (0, 1, 0)], [], [(0, 1, 2)])
    ob = bpy.data.objects.new("bench", me)
    bpy.context.scene.collection.objects.link(ob)
    ob.shape_key_add(name="Basis")
    for n in ARKIT_NAMES:
        ob.shape_key_add(name=n).value = 0.0
    values = np.random.default_rng(0).random((args.frames, len(ARKIT_NAMES))).astype(np.float32)
    frames = np.arange(args.frames, dtype=np.float32)
    mapping = {n: [n] for n in ARKIT_NAMES}
    times = []
    for i in range(args.repeat):
        t0 = time.perf_counter()
        action = write_action(ob.data.shape_keys, f"bench{i}", frames, values, mapping)
        times.append(time.perf_counter() - t0)
        keys = sum(len(fc.keyframe_points) for fc in _fcurves(action))
    print(json.dumps({"curves": len(ARKIT_NAMES), "frames": args.frames, "keys": keys,
                      "keying_s_median": round(statistics.median(times), 4), "keying_s_best": round(min(times), 4),
                      "blender": bpy.app.version_string}, indent=2))
    return 0


def _fcurves(action):
    if hasattr(action, "layers") and action.layers:
        return [fc for layer in action.layers for strip in layer.strips for bag in strip.channelbags
                for fc in bag.fcurves]
    return list(action.fcurves)


if __name__ == "__main__":
    raise SystemExit(main())
