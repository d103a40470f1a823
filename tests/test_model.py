import numpy as np
import pytest
import torch

from a2f_core.errors import CheckpointError, NoModelError
from a2f_core.model import DualStreamModel, ModelConfig, load_checkpoint, save_checkpoint
from tests.troubleshooting import rows


def windows(n=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 256, 80, generator=g) * 1.5, torch.randn(n, 256, 88, generator=g)


def test_parameter_count_near_seed():
    m = DualStreamModel()
    n = m.num_parameters()
    print("parameters:", n)
    # seed table: ~489 K; ours adds per-band biases (20 K) and two positional key tables (2 x 65 K)
    assert 450_000 < n < 700_000


def test_reduced_forward_equals_textbook_attention(model):
    mel, emo = windows()
    with torch.no_grad():
        fast = model(mel, emo)
        ref = model.forward_reference(mel, emo)
    assert fast.shape == (3, 52)
    assert torch.all((fast >= 0) & (fast <= 1))
    assert (fast - ref).abs().max() < 1e-5


@pytest.mark.parametrize("heads,lookahead", [(1, 0), (4, 4), (8, 10)])
def test_sequence_form_equals_per_window_forward(heads, lookahead):
    torch.manual_seed(heads)
    m = DualStreamModel(ModelConfig(n_heads=heads, lookahead=lookahead)).eval()
    S = 256 + 40
    mel = torch.randn(S, 80) * 2
    emo = torch.randn(S, 88)
    with torch.no_grad():
        seq = m.forward_sequence(mel, emo)
        idx = torch.arange(41)[:, None] + torch.arange(256)[None]
        per = m(mel[idx], emo[idx])
    assert seq.shape == (41, 52)
    assert (seq - per).abs().max() < 1e-5


@pytest.mark.parametrize("width,n_out", [(1, 5), (8, 37), (32, 64), (32, 1), (64, 150)])
def test_banded_streams_equal_per_window_attention(model, width, n_out):
    """The inference streams skip the zeros of the window kernels in width-square blocks; any block
    width and any number of frames (a multiple of the width or not) give every window's attention."""
    g = torch.Generator().manual_seed(width + n_out)
    S = 256 + n_out - 1
    mel, emo = torch.randn(S, 80, generator=g) * 1.5, torch.randn(S, 88, generator=g)
    win = torch.arange(n_out)[:, None] + torch.arange(256)[None]
    with torch.inference_mode():
        terms = model.stream_terms()
        km, ke = model.banded_kernels(terms, width)
        got = model.decode_streams(model.mel_stream_inference(mel, terms, km),
                                   model.emotion_stream_inference(emo, terms, ke))
        ref = model(mel[win], emo[win])
    assert got.shape == (n_out, 52)
    assert (got - ref).abs().max() < 1e-5


@pytest.mark.parametrize("n_out,s0", [(128, -251), (1, 17), (7, 100), (135, 3), (200, 1003)])
def test_grouped_emotion_stream_equals_frame_sums(model, n_out, s0):
    """eGeMAPS frames that interpolate hops every 9 frames are linear inside 9-frame groups; the
    grouped window sums give the frame-by-frame result for any chunk length and any phase."""
    from a2f_core.features.emotion import align_to_frames

    rng = np.random.default_rng(n_out)
    hops = np.arange(30, 30 * 300, 30)
    vals = (2 * rng.standard_normal((len(hops), 88))).astype(np.float32)
    emo = torch.from_numpy(align_to_frames(hops, vals, np.arange(s0, s0 + n_out + 255)))
    with torch.inference_mode():
        terms = model.stream_terms()
        ref = model.emotion_stream_inference(emo, terms, model.banded_kernels(terms)[1])
        got = model.emotion_stream_grouped(emo, terms, model.grouped_kernel(terms, 9), s0 % 9)
    assert got is not None and got.shape == ref.shape == (n_out, 52, 256)
    assert (got - ref).abs().max() < 1e-5


def test_grouped_emotion_stream_declines_frames_that_are_not_linear_in_groups(model):
    """Frames off the 9-frame grid (the recording's last hop, or any other input) are left to the
    frame-by-frame sums."""
    from a2f_core.features.emotion import align_to_frames

    hops = np.array([30, 60, 90, 104])         # the last hop ends a recording between grid points
    vals = np.random.default_rng(0).standard_normal((4, 88)).astype(np.float32)
    emo = torch.from_numpy(align_to_frames(hops, vals, np.arange(-240, 41)))   # frames -240..40
    with torch.inference_mode():
        terms = model.stream_terms()
        kern = model.grouped_kernel(terms, 9)
        assert model.emotion_stream_grouped(emo, terms, kern, -240 % 9) is None   # hop 104 cs: frame 31.2
        assert model.emotion_stream_grouped(torch.randn(300, 88), terms, kern, 0) is None
        assert model.emotion_stream_grouped(emo[:-10], terms, kern, -240 % 9) is not None   # up to frame 30


def test_sequence_form_survives_extreme_inputs():
    """Huge score ranges underflow float32 exp sums; the chunk is then redone in float64."""
    torch.manual_seed(0)
    m = DualStreamModel().eval()
    with torch.no_grad():
        m.mel_w.mul_(40.0)  # scores of hundreds
        S = 256 + 10
        mel = torch.randn(S, 80) * 4
        emo = torch.randn(S, 88)
        seq = m.forward_sequence(mel, emo)
        idx = torch.arange(11)[:, None] + torch.arange(256)[None]
        per = m.double()(mel[idx].double(), emo[idx].double()).float()
    assert torch.isfinite(seq).all()
    assert (seq - per).abs().max() < 1e-4


def test_smoothing_state_and_reset():
    m = DualStreamModel()
    a = m.smoothing_alpha()
    x1, x2 = torch.rand(1, 52), torch.rand(1, 52)
    assert torch.equal(m.apply_temporal_smoothing(x1), x1)
    y2 = m.apply_temporal_smoothing(x2)
    assert torch.allclose(y2, a * x2 + (1 - a) * x1)
    m.reset_temporal_state()
    assert torch.equal(m.apply_temporal_smoothing(x2), x2)


def test_checkpoint_roundtrip(model, tmp_path):
    p = tmp_path / "m.pt"
    save_checkpoint(model, p, meta={"note": "test"})
    loaded = load_checkpoint(p)
    mel, emo = windows()
    with torch.no_grad():
        assert torch.equal(model(mel, emo), loaded(mel, emo))
    assert loaded.checkpoint_meta == {"note": "test"}
    assert torch.equal(loaded.mel_mean, model.mel_mean)


@rows(('checkpoint missing, corrupt, of another format version or other blendshape names',
       '`error: ...: checkpoint not found` / `not a readable a2f_core checkpoint` / `format version N is not supported`'))
def test_bad_checkpoints_are_refused(model, tmp_path):
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="not a readable"):
        load_checkpoint(junk)
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "missing.pt")
    p = tmp_path / "old.pt"
    save_checkpoint(model, p)
    blob = torch.load(p, weights_only=True)
    blob["format_version"] = 999
    torch.save(blob, p)
    with pytest.raises(CheckpointError, match="version 999"):
        load_checkpoint(p)
    blob["format_version"] = 1
    blob["names"] = blob["names"][::-1]
    torch.save(blob, p)
    with pytest.raises(CheckpointError, match="canonical order"):
        load_checkpoint(p)


@rows(('a checkpoint carrying pickled code',
       'refused: checkpoints load with `weights_only=True`, nothing in them runs'))
def test_pickled_code_is_never_loaded(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    p = tmp_path / "evil.pt"
    torch.save({"format": "a2f_core.dual_stream", "x": Evil()}, p)
    with pytest.raises(CheckpointError):
        load_checkpoint(p)


@rows(('no trained model installed',
       '`error: no trained model is installed; pass --checkpoint PATH`'))
def test_no_default_model_is_a_clear_error(monkeypatch):
    import a2f_core.model.checkpoint as ck

    monkeypatch.setattr(ck, "default_checkpoint_path", lambda: None)
    with pytest.raises(NoModelError, match="no trained model is installed"):
        ck.load_checkpoint(None)


@rows(('the shipped model altered on disk',
       'refused: its sha256 does not match the one shipped beside it'))
def test_shipped_model_is_verified_by_checksum(model, tmp_path, monkeypatch):
    import a2f_core.model.checkpoint as ck

    weights = tmp_path / "default.pt"
    save_checkpoint(model, weights)
    (tmp_path / "default.pt.sha256").write_text(ck.file_sha256(weights) + "  default.pt\n")
    monkeypatch.setattr(ck, "default_checkpoint_path", lambda: weights)
    assert ck.load_checkpoint(None).num_parameters() == model.num_parameters()
    with open(weights, "r+b") as f:  # flip bytes inside the file
        f.seek(2000)
        f.write(b"\x00\x01\x02\x03")
    with pytest.raises(CheckpointError, match="damaged"):
        ck.load_checkpoint(None)


@rows(('no network (render farm, air-gapped studio)',
       'nothing is downloaded: inference never opens a socket'))
def test_inference_opens_no_network_connection(model, speech, monkeypatch):
    import socket

    from a2f_core.engine import infer

    def refuse(*args, **kwargs):
        raise AssertionError("a socket was opened during inference")

    monkeypatch.setattr(socket, "socket", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    assert len(infer(speech[:32000], model, rate=16000)) == 60
