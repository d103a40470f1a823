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


def test_position_prior_starts_every_query_at_the_predicted_frame():
    """``position_prior`` changes only the start: every query's mel attention is peaked at the predicted
    frame (plain random init: spread over the window), and all forward forms still agree."""
    torch.manual_seed(0)
    plain = DualStreamModel(ModelConfig())
    torch.manual_seed(0)
    m = DualStreamModel(ModelConfig(position_prior=2.0)).eval()
    c = m.cfg

    def near(model):            # attention mass within 3 frames of the predicted one, every query and head
        with torch.no_grad():
            p = torch.softmax(model.stream_terms()["mel_gamma"], -1)
        return p[..., c.past - 3:c.past + 4].sum(-1)

    assert near(plain).max() < 0.2 and near(m).min() > 0.8
    assert torch.equal(plain.queries, m.queries)          # the rest of the start is the same draw
    mel, emo = windows()
    S = 256 + 30
    seq_mel, seq_emo = torch.randn(S, 80), torch.randn(S, 88)
    with torch.no_grad():
        assert (m(mel, emo) - m.forward_reference(mel, emo)).abs().max() < 1e-5
        idx = torch.arange(31)[:, None] + torch.arange(256)[None]
        assert (m.forward_sequence(seq_mel, seq_emo) - m(seq_mel[idx], seq_emo[idx])).abs().max() < 1e-5


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


def test_fine_tunes_of_one_model_average_into_one_checkpoint(model, tmp_path, capsys):
    """`average A B --weights 3,1`: every weight is 0.75 A + 0.25 B; the feature statistics stay A's (= B's)."""
    from a2f_core.__main__ import main

    torch.manual_seed(1)
    other = DualStreamModel(model.cfg)
    other.load_state_dict(model.state_dict())
    with torch.no_grad():
        for prm in other.parameters():
            prm.add_(torch.randn_like(prm))
    a, b, out = tmp_path / "a.pt", tmp_path / "b.pt", tmp_path / "soup.pt"
    save_checkpoint(model, a, meta={"step": 1})
    save_checkpoint(other, b, meta={"step": 2})
    assert main(["average", str(a), str(b), "--weights", "3,1", "--out", str(out)]) == 0
    soup = load_checkpoint(out)
    sa, sb = model.state_dict(), other.state_dict()
    for k, v in soup.state_dict().items():
        assert torch.allclose(v, 0.75 * sa[k] + 0.25 * sb[k], atol=1e-6), k
    assert torch.equal(soup.mel_mean, model.mel_mean)
    assert [x["weight"] for x in soup.checkpoint_meta["average"]] == [0.75, 0.25]
    assert soup.checkpoint_meta["average"][1]["meta"] == {"step": 2}
    # models that do not share their start (other feature statistics) are refused, as is a lone checkpoint
    with torch.no_grad():
        other.mel_mean.add_(1.0)
    save_checkpoint(other, b)
    capsys.readouterr()
    assert main(["average", str(a), str(b), "--out", str(out)]) != 0
    assert "feature statistics differ" in capsys.readouterr().err
    assert main(["average", str(a), "--out", str(out)]) != 0
    assert "at least two" in capsys.readouterr().err
    assert torch.equal(load_checkpoint(out).mel_mean, model.mel_mean)   # the earlier soup is left as it was


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


def _textbook_window_means(scores, gamma, values):
    """out[k, t, n] = sum_j softmax_j(scores[k, n, t+j] + gamma[k, j]) values[k, n, t+j] (explicit windows)."""
    L = gamma.shape[1]
    T = scores.shape[-1] - L + 1
    idx = torch.arange(T)[:, None] + torch.arange(L)[None]
    p = torch.softmax(scores[..., idx] + gamma[:, None, None, :], dim=-1)          # (K, N, T, L)
    return torch.einsum("kntl,kntlc->ktnc", p, values[:, :, idx])


def test_window_means_and_their_gradients_match_the_textbook_form():
    """The training form's banded window means and their direct gradient (no autograd through the
    sums) equal explicit windows, and pass torch's numerical gradient check."""
    from a2f_core.model.windows import EmoWindowMeans, MelWindowMeans

    g = torch.Generator().manual_seed(0)
    K, L, N, S, B, F = 5, 20, 2, 50, 3, 4
    alpha = torch.randn(K, B, dtype=torch.float64, generator=g).requires_grad_()
    gamma = torch.randn(K, L, dtype=torch.float64, generator=g).requires_grad_()
    x = torch.randn(N, S, B, dtype=torch.float64, generator=g)
    scores = torch.randn(K, N, S, dtype=torch.float64, generator=g).requires_grad_()
    v = torch.randn(N, S, F, dtype=torch.float64, generator=g)
    mel = lambda a, gm: MelWindowMeans.apply(a, gm, x, 8, 2)[0]          # noqa: E731
    emo = lambda sc, gm: EmoWindowMeans.apply(sc, gm, v, 8, 2)[0]        # noqa: E731
    xs = x.transpose(1, 2)                                               # (N, B, S)
    mel_ref = torch.stack([_textbook_window_means(alpha[:, b, None, None] * xs[None, :, b], gamma,
                                                  xs[None, :, b, :, None].expand(K, -1, -1, 1))[..., 0]
                           for b in range(B)], dim=-1)
    assert (mel(alpha, gamma) - mel_ref).abs().max() < 1e-12
    assert (emo(scores, gamma) - _textbook_window_means(scores, gamma, v[None].expand(K, -1, -1, -1))).abs().max() < 1e-12
    assert torch.autograd.gradcheck(mel, (alpha, gamma), eps=1e-6, atol=1e-6, fast_mode=True)
    assert torch.autograd.gradcheck(emo, (scores, gamma), eps=1e-6, atol=1e-6, fast_mode=True)


def test_training_form_gives_the_dense_sums_gradients():
    """On CPU the model's sequence form trains through the banded window means; its output and every
    parameter's gradient equal autograd through the dense Toeplitz sums."""
    torch.manual_seed(0)
    m = DualStreamModel(ModelConfig(n_heads=2, context=40, lookahead=3)).train()
    mel, emo = torch.randn(3, 40 + 21, 80) * 0.7, torch.randn(3, 40 + 21, 88) * 0.7

    def run(dense):
        m.zero_grad()
        kern = m.sequence_kernels(21, m.stream_terms()) if dense else None
        out = m.forward_sequence(mel, emo, toeplitz=kern)
        (out * torch.linspace(-1, 1, 52)).sum().backward()
        return out.detach(), {n: p.grad.clone() for n, p in m.named_parameters() if p.grad is not None}

    out_b, grad_b = run(False)
    out_d, grad_d = run(True)
    assert (out_b - out_d).abs().max() < 1e-5
    assert grad_b.keys() == grad_d.keys() and len(grad_b) > 10
    for name, gd in grad_d.items():
        assert (grad_b[name] - gd).abs().max() <= 1e-4 * (1 + gd.abs().max()), name


def test_window_means_take_underflowing_rows_in_float64(monkeypatch):
    """Digital silence beside speech under a sharp band weight drives whole windows' sums below
    float32 range: those rows are computed (and differentiated) in float64, the rest stays float32."""
    from a2f_core.model.windows import MelWindowMeans

    rows64 = MelWindowMeans.rows_float64
    repaired = []
    monkeypatch.setattr(MelWindowMeans, "rows_float64",
                        staticmethod(lambda a, *rest: repaired.append(len(a)) or rows64(a, *rest)))

    g = torch.Generator().manual_seed(1)
    K, L, N, S, B = 3, 20, 2, 50, 3
    alpha = torch.randn(K, B, generator=g)
    alpha[0, 1] = 60.0
    gamma = torch.randn(K, L, generator=g)
    x = torch.randn(N, S, B, generator=g)
    x[0, :25, 1] = -3.0                                  # silence, then speech up to ~ +2
    G = torch.randn(K, S - L + 1, N, B, generator=g)

    def grads(a, gm, fn):
        a, gm = a.clone().requires_grad_(), gm.clone().requires_grad_()
        out = fn(a, gm)
        (out * G.to(out.dtype)).sum().backward()
        return out.detach(), a.grad, gm.grad

    xs = x.double().transpose(1, 2)
    ref = grads(alpha.double(), gamma.double(), lambda a, gm: torch.stack(
        [_textbook_window_means(a[:, b, None, None] * xs[None, :, b], gm, xs[None, :, b, :, None].expand(K, -1, -1, 1))[..., 0]
         for b in range(B)], dim=-1))
    den_min = MelWindowMeans.apply(alpha, gamma, x, 8, 2)[1]
    got = grads(alpha, gamma, lambda a, gm: MelWindowMeans.apply(a, gm, x, 8, 2)[0])
    assert float(den_min) >= 1e-30 and repaired and repaired[0] == 1
    for r, o in zip(ref, got):
        assert torch.isfinite(o).all()
        assert (o.double() - r).abs().max() <= 1e-4 * (1 + r.abs().max())
