"""Property-based: random lengths, rates, channels, amplitudes and push sizes never break the engine."""

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from a2f_core.audio import load_audio
from a2f_core.engine import StreamingEngine, infer
from a2f_core.features.mel import num_frames


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seconds=st.floats(0.02, 3.0), rate=st.sampled_from([8000, 11025, 16000, 22050, 44100, 48000]),
       channels=st.integers(1, 3), amplitude=st.floats(0.0, 2.0), seed=st.integers(0, 2**16),
       piece=st.integers(50, 20000))
def test_engine_properties(model, seconds, rate, channels, amplitude, seed, piece):
    rng = np.random.default_rng(seed)
    n = max(1, int(seconds * rate))
    x = np.clip(amplitude * rng.standard_normal((n, channels)), -1, 1).astype(np.float32)
    audio = load_audio(x, rate=rate)
    a = infer(audio, model, rate=16000).values
    assert a.shape == (num_frames(len(audio)), 52)
    assert np.isfinite(a).all() and a.min() >= 0 and a.max() <= 1
    b = infer(audio, model, rate=16000).values
    assert np.array_equal(a, b)  # deterministic
    eng = StreamingEngine(model, emotion_batch_s=1.0)
    parts = [eng.push(audio[i:i + piece]) for i in range(0, len(audio), piece)]
    s = np.concatenate(parts + [eng.flush()])
    assert s.shape == a.shape and np.abs(s - a).max() <= 1e-5
