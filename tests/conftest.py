from __future__ import annotations

import os
import tempfile
from pathlib import Path

# bpy (Blender as a module) writes its user config here, never in the user's home
os.environ.setdefault("BLENDER_USER_RESOURCES", tempfile.mkdtemp(prefix="a2f_test_blender_"))

import numpy as np
import pytest
import torch

from a2f_core.audio import load_audio
from a2f_core.demo import example_path
from a2f_core.features.emotion import emotion_features
from a2f_core.features.mel import log_mel, num_frames
from a2f_core.model import DualStreamModel

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def speech() -> np.ndarray:
    """The bundled 7.1 s English clip, 16 kHz mono."""
    return load_audio(example_path())


@pytest.fixture(scope="session")
def model(speech) -> DualStreamModel:
    """A random-init model of the real size with input statistics from real speech,
    so that numerics are exercised in the ranges a trained model sees."""
    torch.manual_seed(1234)
    m = DualStreamModel().eval()
    mel = log_mel(speech, 0, 0, num_frames(len(speech)))
    _, emo = emotion_features(speech)
    m.set_feature_stats(mel.mean(0), mel.std(0), np.nanmean(emo, 0), np.nanstd(emo, 0) + 1e-3)
    return m


@pytest.fixture(scope="session")
def checkpoint(model, tmp_path_factory) -> Path:
    from a2f_core.model import save_checkpoint

    path = tmp_path_factory.mktemp("ckpt") / "random.pt"
    save_checkpoint(model, path, meta={"trained": False})
    return path
