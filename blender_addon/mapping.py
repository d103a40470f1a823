"""Shape-key name -> ARKit name matching. Pure Python: no bpy, testable anywhere.

Finds each of the 52 ARKit names on a rig exactly, or case-, underscore-
and side-suffix-insensitively (``jawOpen`` = ``JawOpen`` = ``jaw_open``;
``eyeBlinkLeft`` = ``eyeBlink_L`` = ``Eye_Blink_L``), and splits ARKit's
single ``browInnerUp`` / ``cheekPuff`` over ``_L``/``_R`` halves when a rig
(such as ICT-FaceKit) has them separately. Presets add rig-specific names;
a user table overrides everything.
"""

from __future__ import annotations

import re

from a2f_core.arkit import ARKIT_NAMES

# Presets: ARKit name -> candidate shape-key names tried before the generic matcher.
# "arkit", "vrm_perfect_sync" and "ready_player_me" use Apple's names (any case),
# which the generic matcher already finds; Character Creator 4's ARKit profile
# uses Capitalised_Underscored names with _L/_R, also found by the generic
# matcher, plus the renamings listed here.
PRESETS: dict[str, dict[str, list[str]]] = {
    "auto": {},
    "arkit": {},
    "vrm_perfect_sync": {},
    "ready_player_me": {},
    "character_creator_4": {
        "browInnerUp": ["Brow_Raise_Inner_L", "Brow_Raise_Inner_R"],
        "browOuterUpLeft": ["Brow_Raise_Outer_L"], "browOuterUpRight": ["Brow_Raise_Outer_R"],
        "browDownLeft": ["Brow_Drop_L"], "browDownRight": ["Brow_Drop_R"],
        "cheekSquintLeft": ["Cheek_Raise_L"], "cheekSquintRight": ["Cheek_Raise_R"],
        "cheekPuff": ["Cheek_Puff_L", "Cheek_Puff_R"],
        "noseSneerLeft": ["Nose_Sneer_L"], "noseSneerRight": ["Nose_Sneer_R"],
        "mouthSmileLeft": ["Mouth_Smile_L"], "mouthSmileRight": ["Mouth_Smile_R"],
        "mouthFrownLeft": ["Mouth_Frown_L"], "mouthFrownRight": ["Mouth_Frown_R"],
        "mouthRollLower": ["Mouth_Roll_In_Lower_L", "Mouth_Roll_In_Lower_R"],
        "mouthRollUpper": ["Mouth_Roll_In_Upper_L", "Mouth_Roll_In_Upper_R"],
        "mouthShrugLower": ["Mouth_Shrug_Lower"], "mouthShrugUpper": ["Mouth_Shrug_Upper"],
        "mouthPucker": ["Mouth_Pucker_Up_L", "Mouth_Pucker_Up_R", "Mouth_Pucker"],
        "mouthFunnel": ["Mouth_Funnel_Up_L", "Mouth_Funnel_Up_R", "Mouth_Funnel"],
        "mouthLowerDownLeft": ["Mouth_Down_Lower_L"], "mouthLowerDownRight": ["Mouth_Down_Lower_R"],
        "mouthUpperUpLeft": ["Mouth_Up_Upper_L"], "mouthUpperUpRight": ["Mouth_Up_Upper_R"],
        "mouthClose": ["Mouth_Close"], "jawOpen": ["Jaw_Open"], "tongueOut": ["Tongue_Out"],
    },
}
PRESET_ITEMS = [("auto", "Auto", "Match ARKit names exactly or loosely (case, underscores, _L/_R)"),
                ("arkit", "ARKit", "Apple's 52 names"),
                ("character_creator_4", "Character Creator 4", "CC4 ARKit/extended profile names"),
                ("ready_player_me", "Ready Player Me", "Ready Player Me avatars (ARKit names)"),
                ("vrm_perfect_sync", "VRM Perfect Sync", "VRM perfect-sync rigs (ARKit names, PascalCase)")]

_SIDE = [(r"(?:_|\.|-)?l$", "left"), (r"(?:_|\.|-)?r$", "right")]


def match_key(name: str) -> str:
    """Normalise a shape-key name for loose matching: lower-case letters/digits, side suffix spelled out."""
    n = name.strip()
    for pattern, side in _SIDE:
        m = re.search(pattern, n, flags=re.IGNORECASE)
        if m and not re.search(r"(left|right)$", n, flags=re.IGNORECASE):
            if len(n) - len(m.group(0)) >= 3:
                n = n[: m.start()] + side
            break
    return re.sub(r"[^a-z0-9]", "", n.lower())


def build_mapping(shape_keys: list[str], preset: str = "auto", user: dict[str, list[str]] | None = None
                  ) -> tuple[dict[str, list[str]], list[str]]:
    """Map ARKit names to shape keys of a rig.

    Returns (mapping ARKit name -> shape-key names to drive with its value,
    ARKit names with no shape key). The rig's basis key is never a target.
    """
    keys = [k for k in shape_keys if k.lower() not in ("basis",)]
    exact = set(keys)
    loose: dict[str, str] = {}
    for k in keys:
        loose.setdefault(match_key(k), k)
    table = PRESETS.get(preset, {})
    user = user or {}
    mapping: dict[str, list[str]] = {}
    for arkit in ARKIT_NAMES:
        found: list[str] = []
        if arkit in user:
            found = [k for k in user[arkit] if k in exact]
        if not found and arkit in table:
            found = [k for k in table[arkit] if k in exact]
            if not found:
                found = [loose[match_key(k)] for k in table[arkit] if match_key(k) in loose]
        if not found and arkit in exact:
            found = [arkit]
        if not found and match_key(arkit) in loose:
            found = [loose[match_key(arkit)]]
        if not found:
            # one ARKit shape split into two halves on the rig (ICT: browInnerUp_L + browInnerUp_R)
            halves = [loose.get(match_key(arkit + side)) for side in ("Left", "Right")]
            if all(halves):
                found = list(halves)
        if found:
            mapping[arkit] = list(dict.fromkeys(found))
    missing = [a for a in ARKIT_NAMES if a not in mapping]
    return mapping, missing
