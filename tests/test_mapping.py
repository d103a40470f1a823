"""Shape-key name matching (pure Python, no Blender needed)."""

import numpy as np

from a2f_core.arkit import ARKIT_NAMES
from blender_addon.mapping import build_mapping, match_key

from .conftest import DATA


def test_exact_and_loose_names():
    m, missing = build_mapping(["Basis", "jawOpen", "JawForward", "jaw_left", "Eye_Blink_L", "eyeBlinkRight"])
    assert m == {"jawOpen": ["jawOpen"], "jawForward": ["JawForward"], "jawLeft": ["jaw_left"],
                 "eyeBlinkLeft": ["Eye_Blink_L"], "eyeBlinkRight": ["eyeBlinkRight"]}
    assert len(missing) == 47 and "Basis" not in str(m)


def test_pascal_case_vrm_and_arkit_rigs_map_fully():
    for names in (list(ARKIT_NAMES), [n[0].upper() + n[1:] for n in ARKIT_NAMES]):
        m, missing = build_mapping(names, preset="vrm_perfect_sync")
        assert len(m) == 52 and not missing


def test_ict_demo_head_split_shapes():
    path = DATA / "face_ict" / "ict_face_arkit.npz"
    from pathlib import Path

    local = Path(__file__).resolve().parents[1] / "blender_addon" / "data" / "ict_face_arkit.npz"
    names = [str(n) for n in np.load(local if local.exists() else path)["names"]]
    m, missing = build_mapping(names)
    assert missing == ["tongueOut"]
    assert m["browInnerUp"] == ["browInnerUp_L", "browInnerUp_R"] and m["cheekPuff"] == ["cheekPuff_L", "cheekPuff_R"]
    assert m["mouthSmileLeft"] == ["mouthSmile_L"]


def test_user_table_wins_and_presets():
    m, _ = build_mapping(["Jaw_Open", "MyJaw"], user={"jawOpen": ["MyJaw"]})
    assert m["jawOpen"] == ["MyJaw"]
    m, _ = build_mapping(["Brow_Raise_Inner_L", "Brow_Raise_Inner_R", "Cheek_Raise_L"], preset="character_creator_4")
    assert m["browInnerUp"] == ["Brow_Raise_Inner_L", "Brow_Raise_Inner_R"]
    assert m["cheekSquintLeft"] == ["Cheek_Raise_L"]


def test_match_key_sides():
    assert match_key("eyeBlink_L") == match_key("EyeBlinkLeft") == match_key("eye.blink.l") == "eyeblinkleft"
    assert match_key("mouthLeft") == "mouthleft" and match_key("ML") == "ml"
