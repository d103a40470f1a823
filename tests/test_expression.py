"""Blinks, gaze, brows and emotion on top of the model's curves."""

import numpy as np
import pytest
from scipy.signal import find_peaks

from a2f_core.arkit import INDEX
from a2f_core.bench import synthetic_speech
from a2f_core.curves import BlendshapeCurves
from a2f_core.expression import EMOTIONS, ExpressionConfig, apply_expression


@pytest.fixture(scope="module")
def minute():
    x = synthetic_speech(60.0, seed=7)
    rng = np.random.default_rng(0)
    v = np.zeros((1800, 52), np.float32)
    jaw = np.clip(rng.random(1800), 0, 1).astype(np.float32)
    v[:, INDEX["jawOpen"]] = jaw
    v[::10, INDEX["mouthClose"]] = jaw[::10]   # sealed lips every 10th frame
    return x, BlendshapeCurves(v)


def test_blinks_rate_peaks_and_both_eyes(minute):
    x, c = minute
    for seed in range(3):
        o = apply_expression(c, x, ExpressionConfig(seed=seed))
        left, right = o.channel("eyeBlinkLeft"), o.channel("eyeBlinkRight")
        pl, _ = find_peaks(left, height=0.8)
        pr, _ = find_peaks(right, height=0.8)
        assert 8 <= len(pl) <= 25 and 8 <= len(pr) <= 25, (len(pl), len(pr))
        assert np.abs(pl[: len(pr)] - pr[: len(pl)]).max() <= 1  # together
        assert left.std() > 0.05


def test_deterministic_and_seeded(minute):
    x, c = minute
    a = apply_expression(c, x, ExpressionConfig(seed=1)).values
    b = apply_expression(c, x, ExpressionConfig(seed=1)).values
    d = apply_expression(c, x, ExpressionConfig(seed=2)).values
    assert np.array_equal(a, b) and not np.array_equal(a, d)


def test_never_fights_the_lips(minute):
    x, c = minute
    for emotion in EMOTIONS:
        o = apply_expression(c, x, ExpressionConfig(emotion=emotion, emotion_strength=1.0))
        ap_in = np.clip(c.channel("jawOpen") - c.channel("mouthClose"), 0, 1)
        ap_out = np.clip(o.channel("jawOpen") - o.channel("mouthClose"), 0, 1)
        np.testing.assert_array_equal(ap_in, ap_out)
        assert o.values.min() >= 0 and o.values.max() <= 1


def test_off_switch_returns_the_model_output(minute):
    x, c = minute
    o = apply_expression(c, x, ExpressionConfig(enabled=False))
    np.testing.assert_array_equal(o.values, c.values)


def test_emotion_offsets_and_intensity(minute):
    x, c = minute
    happy = apply_expression(c, x, ExpressionConfig(emotion="happy", enabled=False))
    assert happy.channel("mouthSmileLeft").mean() > 0.2 and happy.channel("cheekSquintLeft").mean() > 0.1
    angry = apply_expression(c, x, ExpressionConfig(emotion="angry", enabled=False))
    assert angry.channel("browDownLeft").mean() > 0.3
    quiet = apply_expression(c, x, ExpressionConfig(emotion="surprised", intensity={"brows": 0.0}))
    assert quiet.channel("browInnerUp").max() == 0.0
    half = apply_expression(c, x, ExpressionConfig(enabled=False, intensity={"mouth": 0.5}))
    np.testing.assert_allclose(half.channel("jawOpen"), 0.5 * c.channel("jawOpen"), atol=1e-6)
    with pytest.raises(ValueError, match="unknown emotion"):
        apply_expression(c, x, ExpressionConfig(emotion="bored"))


def test_brows_follow_emphasis_not_monotone():
    espeak = pytest.importorskip("a2f_core.teacher.espeak")
    if not espeak.espeak_available():
        pytest.skip("espeak-ng not installed")
    import soxr

    s = espeak.EspeakSynth()
    text = ("I told you, this is the most important day of the year! We must not be late. "
            "Never again, do you hear me?")
    stds = {}
    for name, prange in (("monotone", 0), ("emphatic", 99)):
        a, r, _ = s.synth(text, "en-us", "en", rate=160, pitch=50, pitch_range=prange)
        a = soxr.resample(a, r, 16000).astype(np.float32)
        n = int(np.ceil(len(a) / 16000 * 30))
        o = apply_expression(BlendshapeCurves(np.zeros((n, 52), np.float32)), a, ExpressionConfig(blinks=False))
        stds[name] = float(o.channel("browInnerUp").std())
    print("browInnerUp std:", stds)
    assert stds["emphatic"] > stds["monotone"] + 0.03
