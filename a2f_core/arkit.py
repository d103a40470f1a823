"""The 52 Apple ARKit blendshape names in Apple's documentation order."""

from __future__ import annotations

import re

ARKIT_NAMES: tuple[str, ...] = (
    "eyeBlinkLeft", "eyeLookDownLeft", "eyeLookInLeft", "eyeLookOutLeft",
    "eyeLookUpLeft", "eyeSquintLeft", "eyeWideLeft",
    "eyeBlinkRight", "eyeLookDownRight", "eyeLookInRight", "eyeLookOutRight",
    "eyeLookUpRight", "eyeSquintRight", "eyeWideRight",
    "jawForward", "jawLeft", "jawRight", "jawOpen",
    "mouthClose", "mouthFunnel", "mouthPucker", "mouthLeft", "mouthRight",
    "mouthSmileLeft", "mouthSmileRight", "mouthFrownLeft", "mouthFrownRight",
    "mouthDimpleLeft", "mouthDimpleRight", "mouthStretchLeft", "mouthStretchRight",
    "mouthRollLower", "mouthRollUpper", "mouthShrugLower", "mouthShrugUpper",
    "mouthPressLeft", "mouthPressRight", "mouthLowerDownLeft", "mouthLowerDownRight",
    "mouthUpperUpLeft", "mouthUpperUpRight",
    "browDownLeft", "browDownRight", "browInnerUp", "browOuterUpLeft", "browOuterUpRight",
    "cheekPuff", "cheekSquintLeft", "cheekSquintRight",
    "noseSneerLeft", "noseSneerRight", "tongueOut",
)
NUM_BLENDSHAPES = len(ARKIT_NAMES)
INDEX = {name: i for i, name in enumerate(ARKIT_NAMES)}

# Regions used by intensity controls, losses and plots.
MOUTH = tuple(n for n in ARKIT_NAMES if n.startswith(("jaw", "mouth", "cheekPuff", "tongue")))
EYES = tuple(n for n in ARKIT_NAMES if n.startswith("eye"))
BROWS = tuple(n for n in ARKIT_NAMES if n.startswith("brow"))
CHEEKS_NOSE = tuple(n for n in ARKIT_NAMES if n.startswith(("cheekSquint", "nose")))


def lip_aperture(values):
    """ARKit lip aperture per frame: clip(jawOpen - mouthClose, 0, 1) of a (T, 52) array."""
    import numpy as np

    return np.clip(values[:, INDEX["jawOpen"]] - values[:, INDEX["mouthClose"]], 0.0, 1.0)


def normalise_name(name: str) -> str:
    """Key for case/underscore-insensitive matching: ``jaw_open`` == ``JawOpen``."""
    return re.sub(r"[^a-z0-9]", "", name.lower())


_BY_KEY = {normalise_name(n): n for n in ARKIT_NAMES}


def canonical_name(name: str) -> str | None:
    """Return the canonical ARKit name that ``name`` spells, or None.

    >>> canonical_name("Jaw_Open")
    'jawOpen'
    >>> canonical_name("smile") is None
    True
    """
    return _BY_KEY.get(normalise_name(name))
