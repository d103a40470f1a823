import numpy as np
import pytest
import torch

from a2f_core.arkit import ARKIT_NAMES
from a2f_core.engine import StreamingEngine, default_threads, infer, infer_naive, torch_threads
from a2f_core.features.mel import num_frames
from tests.troubleshooting import rows

from .conftest import DATA


def test_engine_equals_naive_per_frame_forward(model, speech):
    x = speech[: int(16000 * 2.5)]
    fast = infer(x, model, rate=16000).values
    ref = infer_naive(x, model)
    assert fast.shape == ref.shape == (num_frames(len(x)), 52)
    assert np.abs(fast - ref).max() <= 1e-4


@pytest.fixture(scope="module")
def shipped():
    from a2f_core.errors import NoModelError
    from a2f_core.model import load_checkpoint

    try:
        return load_checkpoint(None)
    except NoModelError:
        pytest.skip("no trained model installed")


@pytest.mark.parametrize("chunk,pieces", [(128, None), (48, None), (200, 7919)])
def test_trained_model_equals_naive_across_silence(shipped, speech, chunk, pieces, monkeypatch):
    """Digital silence before, between and after speech drives some of the trained model's sharp
    band weights below float32 range: those rows take the float64 repair, and every frame still
    equals the textbook forward, offline and streamed in odd pieces."""
    gap = np.zeros(int(16000 * 0.7), np.float32)
    x = np.concatenate([gap, speech[:24000], gap, 0.3 * speech[24000:40000], gap[:5000]])
    from a2f_core.model.windows import MelWindowMeans

    repairs = []
    rows64 = MelWindowMeans.rows_float64
    monkeypatch.setattr(MelWindowMeans, "rows_float64",
                        staticmethod(lambda a, *rest: repairs.append(len(a)) or rows64(a, *rest)))
    if pieces is None:
        eng = StreamingEngine(shipped, chunk_frames=chunk)
        got = eng.flush(x)
    else:
        eng = StreamingEngine(shipped, chunk_frames=chunk, emotion_batch_s=1.0)
        got = np.concatenate([eng.push(x[i:i + pieces]) for i in range(0, len(x), pieces)] + [eng.flush()])
    eng.close()
    ref = infer_naive(x, shipped)
    assert got.shape == ref.shape
    assert np.abs(got - ref).max() <= 1e-4
    assert repairs, "the clip should exercise the float64 row repair"


def test_grouped_emotion_stream_is_used_and_changes_nothing(model, speech, monkeypatch):
    """The engine takes the grouped eGeMAPS sums for every chunk but the last (whose final hop
    falls between grid frames) and gives the frame-by-frame result."""
    x = np.concatenate([speech, speech])
    calls = []
    grouped = model.emotion_stream_grouped
    monkeypatch.setattr(model, "emotion_stream_grouped", lambda *a, **k: calls.append(grouped(*a, **k)) or calls[-1])
    got = infer(x, model, rate=16000, block_seconds=4.0).values
    monkeypatch.setattr(model, "emotion_stream_grouped", lambda *a, **k: None)
    ref = infer(x, model, rate=16000, block_seconds=4.0).values
    assert len(calls) >= 3 and sum(c is not None for c in calls) >= len(calls) - 1
    np.testing.assert_allclose(got, ref, atol=1e-5)


def test_overlapped_and_serial_schedules_agree(model, speech):
    x = np.concatenate([speech, speech])
    a = StreamingEngine(model, emotion_batch_s=2.0, overlap=True)
    b = StreamingEngine(model, emotion_batch_s=2.0, overlap=False)
    got_a = np.concatenate([a.push(x[i:i + 40000]) for i in range(0, len(x), 40000)] + [a.flush()])
    got_b = np.concatenate([b.push(x[i:i + 40000]) for i in range(0, len(x), 40000)] + [b.flush()])
    a.close()
    np.testing.assert_allclose(got_a, got_b, atol=1e-6)   # chunk boundaries may differ: float rounding


@pytest.mark.parametrize("seed", [0, 1])
def test_streaming_in_random_pieces_equals_offline(model, speech, seed):
    x = np.concatenate([speech, speech[:40000]])  # 9.6 s
    offline = infer(x, model, rate=16000).values
    rng = np.random.default_rng(seed)
    eng = StreamingEngine(model, chunk_frames=int(rng.integers(16, 200)), emotion_batch_s=float(rng.uniform(0.3, 5)))
    out, i = [], 0
    while i < len(x):
        n = int(rng.integers(1, 12000))
        out.append(eng.push(x[i:i + n]))
        i += n
    out.append(eng.flush())
    got = np.concatenate(out)
    assert got.shape == offline.shape
    assert np.abs(got - offline).max() <= 1e-5
    # frames were released while audio was still arriving, not only at flush
    assert sum(len(o) for o in out[:-1]) > 0


@pytest.mark.parametrize("overlap", [True, False])
def test_an_error_in_the_emotion_run_surfaces_and_does_not_hang(model, speech, monkeypatch, overlap):
    """openSMILE fails half-way through a batch (some rows already published): flush raises that
    error instead of waiting for rows that never come."""
    eng = StreamingEngine(model, overlap=overlap)
    real = eng._extractor.compute

    def failing(*a, on_row=None, **k):
        def half(n, values):
            if n > 5:
                raise MemoryError("openSMILE ran out")
            on_row(n, values)
        return real(*a, on_row=half, **k)

    monkeypatch.setattr(eng._extractor, "compute", failing)
    with pytest.raises(MemoryError, match="ran out"):
        eng.flush(speech)
    eng.close()


def test_state_resets_between_files(model, speech):
    eng = StreamingEngine(model)
    eng.push(speech[:30000])
    eng.flush()
    eng.reset()
    a = np.concatenate([eng.push(speech[:20000]), eng.flush()])
    b = infer(speech[:20000], model, rate=16000).values
    np.testing.assert_allclose(a, b, atol=1e-6)
    with pytest.raises(RuntimeError, match="reset"):
        eng.push(speech[:100])


def test_output_covers_duration_at_30fps_and_stays_in_range(model, speech):
    c = infer(speech, model, rate=16000)
    assert len(c) == num_frames(len(speech)) == int(np.ceil(len(speech) * 30 / 16000))
    assert c.names == ARKIT_NAMES and c.fps == 30
    assert c.values.min() >= 0 and c.values.max() <= 1


@rows(('digital silence, very short clips (< 0.1 s)',
       'valid: one frame per 1/30 s, finite values'))
def test_silence_and_tiny_inputs(model):
    c = infer(np.zeros(16000, np.float32), model, rate=16000)
    assert len(c) == 30 and np.isfinite(c.values).all()
    c = infer(np.zeros(100, np.float32), model, rate=16000)
    assert len(c) == 1 and np.isfinite(c.values).all()


def test_input_rate_does_not_shift_timing(model, speech):
    from scipy.signal import resample_poly

    x48 = resample_poly(speech, 3, 1).astype(np.float32)
    a = infer(speech, model, rate=16000)
    b = infer(x48, model, rate=48000)
    assert abs(len(a) - len(b)) <= 1
    n = min(len(a), len(b))
    assert np.corrcoef(a.values[:n, 17], b.values[:n, 17])[0, 1] > 0.95


def test_resampled_output_rates(model, speech):
    for fps in (24, 25, 50, 60):
        c = infer(speech, model, rate=16000, fps=fps)
        assert c.fps == fps and abs(len(c) - len(speech) / 16000 * fps) <= 1


def test_thread_option_restores_callers_setting():
    before = torch.get_num_threads()
    with torch_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before


@pytest.mark.parametrize("cores,jobs,want", [(2, 1, 1), (1, 1, 1), (8, 1, 7), (8, 2, 3), (8, 4, 1), (2, 2, 1)])
def test_default_threads_leave_each_run_a_core_for_opensmile(monkeypatch, cores, jobs, want):
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: set(range(cores)), raising=False)
    assert default_threads(jobs) == want


def test_progress_and_cancel(model, speech):
    seen = []
    infer(np.tile(speech, 3), model, rate=16000, block_seconds=5, progress=seen.append)
    assert seen and seen[-1] == pytest.approx(1.0) and seen == sorted(seen)
    with pytest.raises(InterruptedError):
        infer(speech, model, rate=16000, block_seconds=1, cancel=lambda: True)


@rows(('a 1-hour file or a live stream',
       'memory stays flat: the engine keeps about a minute of audio and features, whatever the length'))
def test_memory_kept_is_bounded(model):
    """The engine keeps ~21 s of audio and one window of features, however long the input."""
    eng = StreamingEngine(model, emotion_batch_s=10)
    rng = np.random.default_rng(0)
    for _ in range(12):  # 60 s in 5 s pieces
        eng.push((0.05 * rng.standard_normal(80000)).astype(np.float32))
        # audio: eGeMAPS' 20 s window and 1 s margin, up to two batches not yet computed (one in the
        # worker thread, one waiting) and the push; features wait for the same eGeMAPS values
        assert len(eng._audio) <= 16000 * (21 + 2 * 10 + 5)
        assert len(eng._mel) <= 256 + 16000 * (1 + 2 * 10 + 5) // 533
        assert sum(len(m) for _, m in eng._pending) <= eng.max_pending
        assert len(eng._hops) <= 200


@rows(("full-scale clipping, a DC offset", "valid: curves close to those of the clean clip"))
def test_clipping_and_dc_offset_degrade_gracefully(shipped, speech):
    x = speech[:16000 * 4]
    clean = infer(x, shipped, rate=16000).values
    clipped = infer(np.clip(8.0 * x, -1.0, 1.0), shipped, rate=16000).values
    dc = infer(np.clip(x + 0.2, -1.0, 1.0), shipped, rate=16000).values
    for got in (clipped, dc):
        assert got.shape == clean.shape and np.isfinite(got).all() and got.min() >= 0 and got.max() <= 1
        jaw = ARKIT_NAMES.index("jawOpen")
        assert np.corrcoef(got[:, jaw], clean[:, jaw])[0, 1] > 0.7
    assert np.abs(dc - clean).mean() < 0.05


def test_shipped_model_on_real_telephone_speech(shipped):
    """Real 8 kHz narrow-band recordings (shared/data/robustness_8k, codec2's test speech) go through the
    file path's resampler, and the shipped model moves the jaw with the voice and rests it where the
    voice is quiet."""
    from a2f_core.arkit import INDEX
    from a2f_core.audio import audio_info, load_audio
    from a2f_core.eval import pearson, rms_baseline

    wavs = sorted((DATA / "robustness_8k").glob("*.wav"))
    if not wavs:
        pytest.skip("shared/data/robustness_8k is not here")
    for wav in wavs:
        seconds, rate, _ = audio_info(wav)
        assert rate == 8000
        jaw = infer(wav, shipped).values[:, INDEX["jawOpen"]]
        assert len(jaw) == num_frames(round(seconds * 16000))
        loud = rms_baseline(load_audio(wav), len(jaw)).values[:, INDEX["jawOpen"]]
        assert pearson(jaw, loud) > 0.5, wav.name
        assert np.percentile(jaw, 95) > 0.1 and jaw[loud < 0.05].mean() < 0.05, wav.name
