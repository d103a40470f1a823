"""The dual-stream model: 52 blendshape queries cross-attend a log-mel and an eGeMAPS stream.

Shapes follow the seed design (DESIGN.md §2). Where the seed is silent:

* Every mel band has its own affine embedding of its scalar value
  (``x * w_b + c_b``, 2x80x256 parameters), so bands keep their identity and
  the mel stream sees spectral shape, not only loudness.
* Position enters as a learned key term per window position (relative to
  the frame being predicted), added to the keys only. Values carry content.
* The window ends ``lookahead`` frames after the predicted frame (lips move
  before the sound).
* Band outputs are combined with a learned softmax weighting per query.
* The decoder 256->128->52 is one shared MLP; query i's vector gives channel i.

Because a token is affine in one scalar (mel) or in one 88-vector (eGeMAPS)
and position only shifts keys, attention reduces exactly to

    score(j) = alpha * x_j + gamma(j),   output = (sum_j p_j x_j) * v_w + v_c,

which :meth:`DualStreamModel.forward` computes per window and
:meth:`DualStreamModel.forward_sequence` computes for many consecutive frames
at once (``exp(alpha x) * exp(gamma)`` turns the sliding softmax sums into
one matrix product). :meth:`DualStreamModel.forward_reference` is the
textbook computation with explicit tokens, keys and values; tests check
that all three agree.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..arkit import NUM_BLENDSHAPES
from .windows import EmoWindowMeans, MelWindowMeans, banded_kernel, banded_sums


@dataclass
class ModelConfig:
    d_model: int = 256
    n_heads: int = 4
    context: int = 256          # frames in each window (8.5 s at 30 fps)
    lookahead: int = 4          # frames after the predicted one inside the window (133 ms)
    n_mels: int = 80
    n_emotion: int = 88
    n_blendshapes: int = NUM_BLENDSHAPES
    decoder_hidden: int = 128
    # initialisation only: every query's mel attention starts peaked at the predicted frame (see
    # DualStreamModel._init_position_prior); 0 = the plain random start. Loaded weights replace it.
    position_prior: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def d_head(self) -> int:
        return self.d_model // self.n_heads

    @property
    def past(self) -> int:
        """Frames before the predicted one inside the window."""
        return self.context - 1 - self.lookahead


class DualStreamModel(nn.Module):
    def __init__(self, cfg: ModelConfig | None = None):
        super().__init__()
        cfg = cfg or ModelConfig()
        if cfg.d_model % cfg.n_heads:
            raise ValueError("d_model must be divisible by n_heads")
        if not 0 <= cfg.lookahead < cfg.context:
            raise ValueError("lookahead must be in [0, context)")
        self.cfg = cfg
        D, I, B, L = cfg.d_model, cfg.n_blendshapes, cfg.n_mels, cfg.context
        self.queries = nn.Parameter(torch.randn(I, D) * 0.5)
        # mel stream
        self.mel_w = nn.Parameter(torch.randn(B, D) * 0.5)
        self.mel_c = nn.Parameter(torch.randn(B, D) * 0.5)
        self.mel_pos = nn.Parameter(torch.randn(L, D) * 0.1)
        self.mel_q = nn.Linear(D, D)
        self.mel_k = nn.Linear(D, D)
        self.mel_v = nn.Linear(D, D)
        self.band_logits = nn.Parameter(torch.zeros(I, B))
        # emotion stream
        self.emo_enc = nn.Linear(cfg.n_emotion, D)
        self.emo_pos = nn.Parameter(torch.randn(L, D) * 0.1)
        self.emo_q = nn.Linear(D, D)
        self.emo_k = nn.Linear(D, D)
        self.emo_v = nn.Linear(D, D)
        # per-blendshape stream weights, softmax over the two streams with learned temperature
        self.stream_logits = nn.Parameter(torch.zeros(I, 2))
        self.log_temperature = nn.Parameter(torch.zeros(()))
        self.norm = nn.LayerNorm(D)
        self.dec1 = nn.Linear(D, cfg.decoder_hidden)
        self.dec2 = nn.Linear(cfg.decoder_hidden, I)
        # temporal smoothing y_t = a*raw_t + (1-a)*y_{t-1}, a = sigmoid(param), per blendshape
        self.smoothing_param = nn.Parameter(torch.full((I,), 1.5))
        # input normalisation, stored in the checkpoint (never per-file statistics)
        self.register_buffer("mel_mean", torch.zeros(B))
        self.register_buffer("mel_std", torch.ones(B))
        self.register_buffer("emo_mean", torch.zeros(cfg.n_emotion))
        self.register_buffer("emo_std", torch.ones(cfg.n_emotion))
        self.prev_blendshapes: torch.Tensor | None = None
        if cfg.position_prior:
            self._init_position_prior(cfg.position_prior)
        # a2f_core.calibration.OutputMap applied to the smoothed outputs by the engine (None: none);
        # kept in the checkpoint beside the weights, never trained
        self.output_map = None

    def _init_position_prior(self, k: float, strength: float = 20.0) -> None:
        """Start every query's mel attention at the predicted frame: gamma(j) gets -k*log(1 + |j - t|).

        With random queries and positions the position term starts near 0, every query averages its
        whole 8.5 s window, and a query learns where to look only through that average: a blendshape
        that is up on a few frames in ten (mouthClose, the presses) can die at 0 before its query
        finds the frame. Here the first dimension of each head carries the prior: the query projection
        gives every query ``strength`` there, the keys' content does not reach it, and the position
        term holds ``f(j) / (scale * strength)``, so ``gamma`` starts as ``f(j)`` plus the random part
        for every query. All of it is trainable; nothing in the forward pass changes. (One 1 000-step
        run from scratch with k = 2 learnt mouthClose no better than the plain start: see docs/EXPERIMENTS.md.)
        """
        c = self.cfg
        scale = 1.0 / math.sqrt(c.d_head)
        offset = torch.arange(c.context, dtype=torch.float32) - c.past
        prior = -k * torch.log1p(offset.abs())
        with torch.no_grad():
            for h in range(c.n_heads):
                e = h * c.d_head
                self.mel_q.weight[e] = 0.0
                self.mel_q.bias[e] = strength
                self.mel_k.weight[e] = 0.0
                self.mel_k.bias[e] = 0.0
                self.mel_pos[:, e] = prior / (scale * strength)

    # ------------------------------------------------------------------ inputs
    def set_feature_stats(self, mel_mean, mel_std, emo_mean, emo_std) -> None:
        def t(v):
            return torch.as_tensor(v, dtype=torch.float32)

        self.mel_mean.copy_(t(mel_mean))
        self.mel_std.copy_(torch.clamp(t(mel_std), min=1e-3))
        self.emo_mean.copy_(torch.nan_to_num(t(emo_mean)))
        self.emo_std.copy_(torch.clamp(torch.nan_to_num(t(emo_std), nan=1.0), min=1e-6))

    def normalize_mel(self, mel: torch.Tensor) -> torch.Tensor:
        return (mel - self.mel_mean) / self.mel_std

    def normalize_emotion(self, emo: torch.Tensor) -> torch.Tensor:
        """z-scores; NaN (too short to measure) becomes 0, extremes are clipped to +-10."""
        z = (emo - self.emo_mean) / self.emo_std
        return torch.clamp(torch.nan_to_num(z, nan=0.0, posinf=10.0, neginf=-10.0), -10.0, 10.0)

    # ------------------------------------------------------- reduced attention
    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(*x.shape[:-1], self.cfg.n_heads, self.cfg.d_head)

    def stream_terms(self) -> dict[str, torch.Tensor]:
        """Window-independent terms of both attentions (see module docstring)."""
        c = self.cfg
        scale = 1.0 / math.sqrt(c.d_head)
        qm = self._heads(self.mel_q(self.queries))                      # (I,H,dh)
        kw = self._heads(self.mel_w @ self.mel_k.weight.T)              # (B,H,dh)
        mel_alpha = torch.einsum("ihd,bhd->ibh", qm, kw) * scale        # (I,B,H)
        mel_gamma = torch.einsum("ihd,jhd->ihj", qm, self._heads(self.mel_pos)) * scale
        vw = self._heads(self.mel_w @ self.mel_v.weight.T)              # (B,H,dh)
        vc = self._heads(self.mel_c @ self.mel_v.weight.T + self.mel_v.bias)
        qe = self._heads(self.emo_q(self.queries))                      # (I,H,dh)
        ke = (self.emo_k.weight @ self.emo_enc.weight).T.reshape(c.n_emotion, c.n_heads, c.d_head)  # (F,H,dh)
        emo_a = torch.einsum("ihd,fhd->ihf", qe, ke) * scale            # (I,H,F)
        emo_gamma = torch.einsum("ihd,jhd->ihj", qe, self._heads(self.emo_pos)) * scale
        ev = (self.emo_v.weight @ self.emo_enc.weight)                  # (D,F)
        ec = self.emo_v.weight @ self.emo_enc.bias + self.emo_v.bias    # (D,)
        return dict(mel_alpha=mel_alpha, mel_gamma=mel_gamma, vw=vw, vc=vc,
                    emo_a=emo_a, emo_gamma=emo_gamma, ev=ev, ec=ec)

    def _combine(self, m: torch.Tensor, u_bar: torch.Tensor, terms: dict) -> torch.Tensor:
        """m: (N,I,B,H) attended band means; u_bar: (N,I,H,F) attended eGeMAPS means -> raw (N,I) in [0,1]."""
        c = self.cfg
        pi = torch.softmax(self.band_logits, dim=1)                     # (I,B)
        mel_out = torch.einsum("nibh,bhd->nihd", m * pi[None, :, :, None], terms["vw"])
        mel_out = mel_out + torch.einsum("ib,bhd->ihd", pi, terms["vc"])[None]
        mel_out = mel_out.reshape(*mel_out.shape[:2], c.d_model)
        ev = terms["ev"].reshape(c.n_heads, c.d_head, c.n_emotion)
        emo_out = torch.einsum("nihf,hdf->nihd", u_bar, ev).reshape(*u_bar.shape[:2], c.d_model) + terms["ec"]
        return self._decode(mel_out, emo_out)

    def _decode(self, mel_out: torch.Tensor, emo_out: torch.Tensor) -> torch.Tensor:
        """Stream outputs (N,I,D) -> per-blendshape stream mix, decoder -> raw (N,I) in [0,1]."""
        w = torch.softmax(self.stream_logits / torch.exp(self.log_temperature), dim=1)  # (I,2)
        z = torch.addcmul(self.queries, w[:, 0:1], mel_out).addcmul_(w[:, 1:2], emo_out)
        h = F.gelu(self.dec1(self.norm(z)))                             # (N,I,hidden)
        logits = torch.einsum("nik,ik->ni", h, self.dec2.weight) + self.dec2.bias
        return torch.sigmoid(logits)

    def forward(self, mel: torch.Tensor, emotion: torch.Tensor) -> torch.Tensor:
        """Raw blendshapes (N, 52) in [0, 1] for windows of normalised features.

        mel: (N, context, 80); emotion: (N, context, 88); the predicted frame
        sits at window index ``context - 1 - lookahead``. No smoothing.
        """
        t = self.stream_terms()
        # mel: score = alpha*x + gamma(j), softmax over j, m = sum_j p_j x_j
        x = mel.transpose(1, 2)                                          # (N,B,L)
        s = x[:, None, :, None, :] * t["mel_alpha"][None, :, :, :, None] \
            + t["mel_gamma"][None, :, None, :, :]                         # (N,I,B,H,L)
        p = torch.softmax(s, dim=-1)
        m = (p * x[:, None, :, None, :]).sum(-1)                         # (N,I,B,H)
        se = torch.einsum("nlf,ihf->nihl", emotion, t["emo_a"]) + t["emo_gamma"][None]
        pe = torch.softmax(se, dim=-1)                                   # (N,I,H,L)
        u_bar = torch.einsum("nihl,nlf->nihf", pe, emotion)
        return self._combine(m, u_bar, t)

    def forward_reference(self, mel: torch.Tensor, emotion: torch.Tensor) -> torch.Tensor:
        """The same function as :meth:`forward`, computed the textbook way (slow)."""
        c = self.cfg
        N, L, B = mel.shape
        H, dh = c.n_heads, c.d_head
        q = self.mel_q(self.queries).reshape(c.n_blendshapes, H, dh).transpose(0, 1)   # (H,I,dh)
        x = mel.transpose(1, 2).reshape(N * B, L, 1)                                   # (N*B, L, 1)
        band = torch.arange(B).repeat(N)
        tokens = x * self.mel_w[band][:, None, :] + self.mel_c[band][:, None, :]      # (N*B, L, D)
        k = self.mel_k(tokens) + self.mel_pos[None]
        v = self.mel_v(tokens)
        k = k.reshape(N * B, L, H, dh).transpose(1, 2)
        v = v.reshape(N * B, L, H, dh).transpose(1, 2)
        att = torch.softmax(q[None] @ k.transpose(-1, -2) / math.sqrt(dh), dim=-1)     # (NB,H,I,L)
        o = (att @ v).transpose(1, 2).reshape(N, B, c.n_blendshapes, c.d_model)
        pi = torch.softmax(self.band_logits, dim=1)                                      # (I,B)
        mel_out = torch.einsum("nbid,ib->nid", o, pi)
        qe = self.emo_q(self.queries).reshape(c.n_blendshapes, H, dh).transpose(0, 1)
        te = self.emo_enc(emotion)
        ke = (self.emo_k(te) + self.emo_pos[None]).reshape(N, L, H, dh).transpose(1, 2)
        ve = self.emo_v(te).reshape(N, L, H, dh).transpose(1, 2)
        atte = torch.softmax(qe[None] @ ke.transpose(-1, -2) / math.sqrt(dh), dim=-1)
        emo_out = (atte @ ve).transpose(1, 2).reshape(N, c.n_blendshapes, c.d_model)
        w = torch.softmax(self.stream_logits / torch.exp(self.log_temperature), dim=1)
        z = w[None, :, 0:1] * mel_out + w[None, :, 1:2] * emo_out + self.queries[None]
        h = F.gelu(self.dec1(self.norm(z)))
        logits = torch.einsum("nik,ik->ni", h, self.dec2.weight) + self.dec2.bias
        return torch.sigmoid(logits)

    # ------------------------------------------------------ sliding sequences
    @staticmethod
    def _toeplitz(kernel: torch.Tensor, n_out: int) -> torch.Tensor:
        """(M, L) kernels -> (M, n_out+L-1, n_out) with [s, t] = kernel[s - t] inside the band."""
        M, L = kernel.shape
        S = n_out + L - 1
        j = torch.arange(S, device=kernel.device)[:, None] - torch.arange(n_out, device=kernel.device)[None, :]
        inside = (j >= 0) & (j < L)
        g = kernel[:, j.clamp(0, L - 1)]
        return torch.where(inside[None], g, torch.zeros((), dtype=kernel.dtype))

    def forward_sequence(self, mel: torch.Tensor, emotion: torch.Tensor, terms: dict | None = None,
                         toeplitz: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        """Raw blendshapes for every window of a sequence, without building the windows.

        mel: (S, 80) and emotion: (S, 88) normalised frames, or a batch of
        equally long sequences (N, S, 80) / (N, S, 88); returns
        (S - context + 1, 52) (or (N, S - context + 1, 52)): row t is
        :meth:`forward` of the window ``mel[t : t + context]``. Exact up to
        float rounding; chunks whose softmax sums fall below float32 range are
        redone in float64 (float64 inputs take that path at once). On CPU in
        float32 (training) the sums go through :mod:`.windows`, whose gradient
        is written out and which redoes only the underflowing rows in float64.
        """
        c = self.cfg
        single = mel.dim() == 2
        if single:
            mel, emotion = mel[None], emotion[None]
        N, S = mel.shape[:2]
        T = S - c.context + 1
        if T <= 0:
            out = mel.new_zeros((N, 0, c.n_blendshapes))
            return out[0] if single else out
        if terms is None:
            with torch.autocast(device_type=mel.device.type, enabled=False):
                terms = self.stream_terms()
        exact = mel.dtype == torch.float64
        if not exact and not torch.is_grad_enabled() and mel.device.type == "cpu" and N == 1:
            outs = self._stream_outputs_inference(mel[0], emotion[0], terms)
            if outs is not None:
                out = self._decode(*outs)[None]
                return out[0] if single else out
        sums = None if exact else self._sequence_sums(mel, emotion, terms, toeplitz, torch.float32)
        if sums is None:
            sums = self._sequence_sums(mel.double(), emotion.double(), terms, None, torch.float64)
        m, u_bar = sums
        out = self._combine(m.float().flatten(0, 1), u_bar.float().flatten(0, 1), terms).reshape(N, T, -1)
        return out[0] if single else out

    def sequence_kernels(self, n_out: int, terms: dict, dtype=torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
        I, H, L = self.cfg.n_blendshapes, self.cfg.n_heads, self.cfg.context
        gm = terms["mel_gamma"].reshape(I * H, L).to(dtype)
        ge = terms["emo_gamma"].reshape(I * H, L).to(dtype)
        gm = torch.exp(gm - gm.max(dim=1, keepdim=True).values)
        ge = torch.exp(ge - ge.max(dim=1, keepdim=True).values)
        return self._toeplitz(gm, n_out), self._toeplitz(ge, n_out)

    def _sequence_sums(self, mel, emotion, terms, toeplitz, dtype):
        """Attended means for (N, S, .) batches: m (N,T,I,B,H), u_bar (N,T,I,H,F); None on float32 underflow.

        The Toeplitz kernels depend on the window position only, so all
        sequences of a batch share them: their rows are stacked into one bmm.
        """
        with torch.autocast(device_type=mel.device.type, enabled=False):   # sums of exponentials: never bf16
            if dtype == torch.float32 and mel.device.type == "cpu" and toeplitz is None:
                return self._sequence_sums_banded(mel, emotion, terms)
            return self._sequence_sums_fp(mel, emotion, terms, toeplitz, dtype)

    def _sequence_sums_banded(self, mel, emotion, terms):
        """:meth:`_sequence_sums_fp` in float32 through :mod:`.windows` (banded sums, direct gradient:
        the training form on CPU, about 3x faster than autograd through the dense sums)."""
        c = self.cfg
        I, H, B, F_, L = c.n_blendshapes, c.n_heads, c.n_mels, c.n_emotion, c.context
        N, S = mel.shape[:2]
        T = S - L + 1
        f32 = torch.float32
        alpha = terms["mel_alpha"].to(f32).permute(0, 2, 1).reshape(I * H, B)
        m, den_m = MelWindowMeans.apply(alpha, terms["mel_gamma"].to(f32).reshape(I * H, L), mel.to(f32))
        emotion = emotion.to(f32)
        se = torch.einsum("nsf,ihf->ihns", emotion, terms["emo_a"].to(f32)).reshape(I * H, N, S)
        u, den_e = EmoWindowMeans.apply(se, terms["emo_gamma"].to(f32).reshape(I * H, L), emotion)
        if float(den_m) < 1e-30 or float(den_e) < 1e-30:
            return None
        m = m.view(I, H, T, N, B).permute(3, 2, 0, 4, 1)                       # (N,T,I,B,H)
        u_bar = u.view(I, H, T, N, F_).permute(3, 2, 0, 1, 4)                  # (N,T,I,H,F)
        return m, u_bar

    def banded_kernels(self, terms: dict, width: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
        """Both streams' window kernels as bands, float32, for :meth:`mel_stream_inference` and
        :meth:`emotion_stream_inference`.

        Output frames are taken ``width`` at a time; block ``o`` (frames ``o*width + t``) reads input
        frames ``o*width + u`` for ``u < U`` (``U`` = ``width + context - 1`` rounded up to a multiple
        of ``width``) through ``[t, u] = kernel[u - t]`` (zero outside the window), the same matrix
        for every block. Returns two (I*H, width, U) tensors.
        """
        I, H, L = self.cfg.n_blendshapes, self.cfg.n_heads, self.cfg.context
        out = []
        for name in ("mel_gamma", "emo_gamma"):
            g = terms[name].reshape(I * H, L).to(torch.float32)
            out.append(banded_kernel(torch.exp(g - g.max(dim=1, keepdim=True).values), width))
        return out[0], out[1]

    @staticmethod
    def _banded_pad(x: torch.Tensor, n_out: int, kernel: torch.Tensor) -> tuple[torch.Tensor, int]:
        """Frames (S, C) padded at the end to what the blocks of ``n_out`` outputs read, by repeating
        the last frame (padding meets only kernel zeros or outputs that are dropped); and the
        number of output blocks."""
        W, U = kernel.shape[-2:]
        n_blk = -(-n_out // W)
        pad = (n_blk - 1) * W + U - x.shape[0]
        return (torch.cat([x, x[-1:].expand(pad, -1)]) if pad > 0 else x), n_blk

    def _stream_outputs_inference(self, mel, emotion, terms):
        """Both streams' attended outputs (T, I, D) for one sequence (S, .), float32, no autograd;
        None when the eGeMAPS sums underflow float32 (the caller then takes the float64 path)."""
        kernels = self.banded_kernels(terms)
        emo_out = self.emotion_stream_inference(emotion, terms, kernels[1])
        if emo_out is None:
            return None
        return self.mel_stream_inference(mel, terms, kernels[0]), emo_out

    def mel_stream_inference(self, mel: torch.Tensor, terms: dict, kernel: torch.Tensor,
                             block: int = 4) -> torch.Tensor:
        """The mel stream's attended output (T, I, D) for normalised frames (S, 80), T = S - context + 1.

        Float32 without autograd; the same sums as :meth:`_sequence_sums_fp`, arranged for speed:
        the window sums are banded (each output frame reads ``context`` input frames), so they are
        taken as small dense blocks that skip the zeros (``kernel``: ``banded_kernels(terms)[0]``);
        queries go ``block`` at a time so that each block's exponentials stay in cache between being
        written and being read; the row maxima come from each band's min and max (``alpha * x`` is
        linear in x); rows whose window sums fall below float32 range (digital silence next to
        speech, under a sharp band weight) are recomputed alone in float64.
        """
        c = self.cfg
        I, H, B, dh = c.n_blendshapes, c.n_heads, c.n_mels, c.d_head
        S = mel.shape[0]
        T = S - c.context + 1
        W = kernel.shape[-2]
        f32 = torch.float32
        mel = mel.to(f32)
        xp, n_blk = self._banded_pad(mel, T, kernel)                            # (S_in, B)
        alpha = terms["mel_alpha"].to(f32).permute(0, 2, 1)                    # (I,H,B)
        neg_peak = -torch.maximum(alpha * mel.amax(0), alpha * mel.amin(0))    # (I,H,B)
        alpha, neg_peak = alpha[:, :, None, :], neg_peak[:, :, None, :]
        m = torch.empty((I * H, n_blk * W, B), dtype=f32)                      # (IH, T_pad, B)
        den_min = torch.empty((I * H, B), dtype=f32)
        rows = torch.empty((block, H, xp.shape[0], 2, B), dtype=f32)
        sums = torch.empty((n_blk, block * H, W, 2, B), dtype=f32)
        for q0 in range(0, I, block):
            q1 = min(I, q0 + block)
            n, k0, k1 = q1 - q0, q0 * H, q1 * H
            r = rows[:n]
            e = r[..., 0, :]
            torch.addcmul(neg_peak[q0:q1], alpha[q0:q1], xp, out=e)
            e.exp_()
            torch.mul(e, xp, out=r[..., 1, :])
            s = banded_sums(r.view(n * H, -1, 2 * B), kernel[k0:k1],
                                  sums[:, :n * H].view(n_blk, n * H, W, 2 * B)).view(n_blk, n * H, W, 2, B)
            den = s[..., 0, :].transpose(0, 1)                                 # (nH, n_blk, W, B)
            torch.div(s[..., 1, :].transpose(0, 1), den, out=m[k0:k1].view(n * H, n_blk, W, B))
            full = T // W                                                      # blocks inside [0, T)
            dm = s[:full, :, :, 0, :].amin(dim=(0, 2)) if full else None       # (nH, B), no copies
            if full < n_blk and T > full * W:
                dp = s[full, :, :T - full * W, 0, :].amin(dim=1)
                dm = dp if dm is None else torch.minimum(dm, dp)
            den_min[k0:k1] = dm
        bad = (den_min < 1e-30).view(I, H, B)
        if bool(bad.any()):
            i, h, b = bad.nonzero(as_tuple=True)
            m64, _ = MelWindowMeans.rows_float64(alpha[i, h, 0, b], terms["mel_gamma"][i, h], mel[:, b].T)
            m.view(I, H, -1, B)[i, h, :T, b] = m64.float()
        # sum_b pi[i,b] (m * vw[b,h] + vc[b,h]): one bmm per (i,h) over the bands
        pi = torch.softmax(self.band_logits, dim=1).to(f32)                    # (I,B)
        vw = terms["vw"].to(f32)                                               # (B,H,dh)
        wm = (pi[:, None, :, None] * vw.permute(1, 0, 2)[None]).reshape(I * H, B, dh)
        const = torch.einsum("ib,bhd->ihd", pi, terms["vc"].to(f32)).reshape(I * H, 1, dh)
        out = torch.baddbmm(const, m[:, :T], wm)                               # (IH,T,dh)
        return out.view(I, H, T, dh).permute(2, 0, 1, 3).reshape(T, I, c.d_model)

    def emotion_stream_inference(self, emotion: torch.Tensor, terms: dict, kernel: torch.Tensor,
                                 block: int = 4) -> torch.Tensor | None:
        """The eGeMAPS stream's attended output (T, I, D) for normalised frames (S, 88); float32, no
        autograd. The values are projected to each head's value space before the window sums (64
        rows per head instead of 88: the projection is linear, so it commutes with the sums). None
        if the sums underflow float32. ``kernel``: ``banded_kernels(terms)[1]``."""
        c = self.cfg
        I, H, dh = c.n_blendshapes, c.n_heads, c.d_head
        S = emotion.shape[0]
        T = S - c.context + 1
        W = kernel.shape[-2]
        f32 = torch.float32
        emo, n_blk = self._banded_pad(emotion.to(f32), T, kernel)              # (S_in, 88)
        S_in = emo.shape[0]
        se = torch.einsum("sf,ihf->ihs", emo, terms["emo_a"].to(f32))          # (I,H,S_in)
        se = se - se.amax(dim=-1, keepdim=True)
        vp = torch.matmul(emo, terms["ev"].to(f32).T).view(S_in, H, dh).transpose(0, 1)   # (H, S_in, dh)
        u = torch.empty((I * H, n_blk * W, dh), dtype=f32)                     # (IH, T_pad, dh)
        rows = torch.empty((block, H, S_in, 1 + dh), dtype=f32)
        sums = torch.empty((n_blk, block * H, W, 1 + dh), dtype=f32)
        den_min = float("inf")
        for q0 in range(0, I, block):
            q1 = min(I, q0 + block)
            n, k0, k1 = q1 - q0, q0 * H, q1 * H
            r = rows[:n]
            torch.exp(se[q0:q1], out=r[..., 0])
            torch.mul(r[..., :1], vp, out=r[..., 1:])
            s = banded_sums(r.view(n * H, S_in, 1 + dh), kernel[k0:k1], sums[:, :n * H]).transpose(0, 1)
            den = s[..., :1]                                                   # (nH, n_blk, W, 1)
            den_min = min(den_min, float(den.reshape(n * H, -1)[:, :T].min()))
            torch.div(s[..., 1:], den, out=u[k0:k1].view(n * H, n_blk, W, dh))
        if den_min < 1e-30:
            return None
        u = u[:, :T].view(I, H, T, dh).permute(2, 0, 1, 3).reshape(T, I, c.d_model)
        return u + terms["ec"].to(f32)

    def grouped_kernel(self, terms: dict, group: int) -> torch.Tensor:
        """The eGeMAPS window kernel cut into groups of ``group`` frames, for
        :meth:`emotion_stream_grouped`: (H*I*D, group, group), row ``(h, i, d)``, entry ``[rho, r]`` =
        ``kernel[group*d + r - rho]`` (zero outside the window): the weight that output ``rho`` of a
        block of ``group`` outputs gives to frame ``r`` of the ``d``-th group it reads (``D`` groups)."""
        I, H, L = self.cfg.n_blendshapes, self.cfg.n_heads, self.cfg.context
        G = int(group)
        g = terms["emo_gamma"].to(torch.float32).transpose(0, 1).reshape(H * I, L)   # head-major rows
        band = banded_kernel(torch.exp(g - g.max(dim=1, keepdim=True).values), G)    # (HI, G, D*G)
        return band.view(H * I, G, -1, G).transpose(1, 2).reshape(-1, G, G)          # [rho, G*d + r]

    def emotion_stream_grouped(self, emotion: torch.Tensor, terms: dict, kernel: torch.Tensor, phase: int,
                               tol: float = 2e-5) -> torch.Tensor | None:
        """:meth:`emotion_stream_inference` for eGeMAPS frames that are linear inside groups of
        ``group`` frames (``kernel``: :meth:`grouped_kernel`); ``phase``: where frame 0 sits in its group.

        The engine's eGeMAPS frames interpolate hops that come every ``group`` frames (9 at 30 fps
        and 300 ms hops), so inside a group each frame's values are ``a + r * b`` (``r``: position in
        the group). The window sums of ``p_j * v_j`` then need only two scalar sums per group
        (``sum p_j`` and ``sum p_j r_j`` over the group's frames in the window) and one product with
        the groups' ``a`` and ``b`` in each head's value space: 30 groups instead of 256 frames of
        64-vectors, about 4x less work than the frame-by-frame sums. Same numbers up to float
        rounding. None when the frames are not linear in their groups (the end of a recording, where
        the last hop falls inside a group; ``tol``: largest allowed departure, in z-score units) or
        when the sums underflow float32; the caller then takes :meth:`emotion_stream_inference`.
        """
        c = self.cfg
        I, H, dh, L = c.n_blendshapes, c.n_heads, c.d_head, c.context
        G = kernel.shape[-1]
        D = kernel.shape[0] // (H * I)
        S = emotion.shape[0]
        T = S - L + 1
        if T <= 0:
            return emotion.new_zeros((0, I, c.d_model), dtype=torch.float32)
        f32, f64 = torch.float32, torch.float64
        phase = int(phase) % G
        n_blk = -(-(phase + T) // G)               # blocks of G outputs, counted from the first group start
        Q = n_blk + D - 1                          # groups read by them
        # each group's a, b from its first and last frame; then every frame must match a + r*b
        e64 = emotion.to(f64)
        pos = torch.arange(S) + phase              # frame position counted from the first group start
        q_of, r_of = pos // G, pos % G
        first = torch.clamp(torch.arange(Q) * G - phase, 0, S - 1)
        last = torch.clamp(torch.arange(Q) * G + G - 1 - phase, 0, S - 1)
        span = (last - first).to(f64)[:, None]
        b = torch.where(span > 0, (e64[last] - e64[first]) / span.clamp(min=1), torch.zeros((), dtype=f64))
        a = e64[first] - r_of[first].to(f64)[:, None] * b
        if float((a[q_of] + r_of.to(f64)[:, None] * b[q_of] - e64).abs().max()) > tol:
            return None
        # exponentials of the scores per frame, laid out in whole groups (zero weight on padding)
        emo = emotion.to(f32)
        se = torch.einsum("sf,ihf->his", emo, terms["emo_a"].to(f32)).reshape(H * I, S)
        se = se - se.amax(dim=-1, keepdim=True)
        rows = torch.zeros((H * I, 2, Q * G), dtype=f32)
        w = rows[:, 0, phase:phase + S]
        torch.exp(se, out=w)
        torch.mul(w, r_of.to(f32), out=rows[:, 1, phase:phase + S])
        # sums[(h,i), d, rho, c, o] = sum_r kernel[(h,i,d), rho, r] * rows[(h,i), c, G*(o+d) + r]
        unf = rows.as_strided((H * I, D, G, 2, n_blk), (2 * Q * G, G, 1, Q * G, G))
        sums = torch.bmm(kernel, unf.reshape(H * I * D, G, 2 * n_blk)).view(H, I, D, G, 2, n_blk)
        # per head and output block: (I*G outputs) x (D groups x {a, b}) weights
        wts = sums.permute(0, 5, 1, 3, 2, 4).reshape(H * n_blk, I * G, 2 * D)
        # the groups' a and b in each head's value space, plus a column that sums the a-weights (den)
        ev = terms["ev"].to(f32).view(H, dh, c.n_emotion)
        vab = torch.zeros((H, 2 * Q, dh + 1), dtype=f32)
        torch.matmul(torch.cat([a, b]).to(f32), ev.transpose(1, 2), out=vab[..., :dh])
        vab[:, :Q, :dh] += terms["ec"].to(f32).view(H, 1, dh)   # the a-weights of an output sum to den
        vab[:, :Q, dh] = 1.0
        vs = vab.stride()
        vals = vab.as_strided((H, n_blk, D, 2, dh + 1), (vs[0], vs[1], vs[1], Q * vs[1], vs[2]))
        num = torch.bmm(wts, vals.reshape(H * n_blk, 2 * D, dh + 1)).view(H, n_blk, I, G, dh + 1)
        den = num[..., dh]                                                      # (H, n_blk, I, G)
        if float(den.permute(0, 2, 1, 3).reshape(H * I, n_blk * G)[:, phase:phase + T].min()) < 1e-30:
            return None
        out = torch.empty((n_blk, G, I, H, dh), dtype=f32)
        torch.div(num[..., :dh].permute(1, 3, 2, 0, 4), num[..., dh:].permute(1, 3, 2, 0, 4), out=out)
        out = out.view(n_blk * G, I, c.d_model)
        return out[phase:phase + T]

    def decode_streams(self, mel_out: torch.Tensor, emo_out: torch.Tensor) -> torch.Tensor:
        """Raw blendshapes (T, 52) from both streams' outputs (T, I, D)."""
        return self._decode(mel_out, emo_out)

    def _sequence_sums_fp(self, mel, emotion, terms, toeplitz, dtype):
        c = self.cfg
        I, H, B, F_ = c.n_blendshapes, c.n_heads, c.n_mels, c.n_emotion
        N, S = mel.shape[:2]
        T = S - c.context + 1
        if toeplitz is None or toeplitz[0].shape[-1] != T or toeplitz[0].dtype != dtype:
            toeplitz = self.sequence_kernels(T, terms, dtype)
        gm, ge = toeplitz
        xm = mel.to(dtype).transpose(1, 2)                                      # (N,B,S)
        emotion = emotion.to(dtype)
        alpha = terms["mel_alpha"].to(dtype).permute(0, 2, 1)                 # (I,H,B)
        ax = alpha[:, :, None, :, None] * xm[None, None]                       # (I,H,N,B,S)
        e = torch.exp(ax - ax.amax(dim=-1, keepdim=True))
        rows = torch.stack([e, e * xm[None, None]], dim=2).reshape(I * H, 2 * N * B, S)
        sums = torch.bmm(rows, gm).reshape(I, H, 2, N, B, T)
        den, num = sums[:, :, 0], sums[:, :, 1]                                # (I,H,N,B,T)
        se = torch.einsum("nsf,ihf->ihns", emotion, terms["emo_a"].to(dtype))  # (I,H,N,S)
        ee = torch.exp(se - se.amax(dim=-1, keepdim=True))
        et = emotion.transpose(1, 2)                                           # (N,F,S)
        rows_e = torch.cat([ee[:, :, :, None, :], ee[:, :, :, None, :] * et[None, None]], dim=3)
        sums_e = torch.bmm(rows_e.reshape(I * H, N * (1 + F_), S), ge).reshape(I, H, N, 1 + F_, T)
        den_e, num_e = sums_e[:, :, :, :1], sums_e[:, :, :, 1:]
        tiny = 1e-30 if dtype == torch.float32 else 1e-300
        if dtype == torch.float32 and (den.min() < tiny or den_e.min() < tiny):
            return None
        m = (num / den).permute(2, 4, 0, 3, 1)                                 # (N,T,I,B,H)
        u_bar = (num_e / den_e).permute(2, 4, 0, 1, 3)                         # (N,T,I,H,F)
        return m, u_bar

    # --------------------------------------------------------- smoothing
    def smoothing_alpha(self) -> torch.Tensor:
        return torch.sigmoid(self.smoothing_param)

    def reset_temporal_state(self) -> None:
        """Forget the previous frame: call at every file boundary."""
        self.prev_blendshapes = None

    def apply_temporal_smoothing(self, raw: torch.Tensor) -> torch.Tensor:
        """One step of ``y_t = a*raw_t + (1-a)*y_{t-1}``; raw: (N, 52). Keeps the state."""
        if self.prev_blendshapes is None:
            out = raw
        else:
            a = self.smoothing_alpha()
            out = a * raw + (1 - a) * self.prev_blendshapes
        self.prev_blendshapes = out.detach()
        return out

    def smooth_sequence(self, raw: torch.Tensor) -> torch.Tensor:
        """The smoothing recurrence over a whole (T, 52) or (N, T, 52) stretch, from a fresh state.

        Closed form ``y_t = (1-a)^t raw_0 + sum_{1<=k<=t} a (1-a)^(t-k) raw_k``
        as one matrix product per channel (differentiable; used in training).
        """
        a = self.smoothing_alpha()                                             # (I,)
        T = raw.shape[-2]
        t = torch.arange(T, device=raw.device, dtype=raw.dtype)
        lag = t[:, None] - t[None, :]                                          # (T,T)
        causal = lag >= 0
        a = a.to(raw.dtype)
        decay = torch.exp(lag.clamp(min=0)[None] * torch.log1p(-a)[:, None, None])       # (I,T,T)
        scale = torch.cat([torch.ones_like(a)[:, None], a[:, None].expand(-1, T - 1)], dim=1)  # (I,T): k=0 -> 1
        w = torch.where(causal[None], decay, torch.zeros((), dtype=raw.dtype, device=raw.device)) * scale[:, None, :]
        return torch.einsum("itk,...ki->...ti", w, raw)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())
