"""Sliding-window softmax means as banded blocks, and the mel stream's training form with its gradient.

For every output frame ``t`` and row ``k`` (a query and head), the mel stream needs

    m[k, t, b] = sum_j p_j x[t+j, b],   p_j = g_k[j] e^(alpha[k,b] x[t+j,b]) / den[k, t, b]

over the window ``j < L`` (``g_k = exp(gamma_k)``, the position term). Output frames go
``width`` at a time: block ``o`` reads input frames ``o*width + u`` (``u < U``) through one
(width x U) band matrix, the same for every block (:func:`banded_kernel`, :func:`banded_sums`).

:class:`MelWindowMeans` is that computation for training (:class:`EmoWindowMeans` the eGeMAPS
stream's, with any scores and a vector per frame): autograd through the textbook form keeps tensors
of (rows x bands x frames) for every step of it, several hundred MB per batch; these keep only the
means and sums and compute their gradient directly:

    dL/d score[s] = e_s (x_s Z2_s + Z1_s),   Z = sum_t g[s-t] Y_t   (the transposed window sums)
    dL/d gamma[j] = g_j sum_t sum_c P[t+j, c] Y[t, c]

with ``a = G / den`` (``G``: the gradient of ``m``), ``Y = (-a m, a)``, ``P = (e, e x)``, and
``dL/d alpha[k, b] = sum_s x_s dL/d score[s]`` (the score is ``alpha x`` up to a shift that the
softmax cancels). Both are banded products again, so the gradient costs about twice the forward.
"""

from __future__ import annotations

import torch


def banded_kernel(g: torch.Tensor, width: int) -> torch.Tensor:
    """(K, L) window weights -> (K, width, U) band matrices, ``[t, u] = g[u - t]`` (zero outside the
    window), ``U`` = ``width + L - 1`` rounded up to a multiple of ``width``."""
    K, L = g.shape
    W = int(width)
    U = -(-(L - 1 + W) // W) * W
    j = torch.arange(U, device=g.device)[None, :] - torch.arange(W, device=g.device)[:, None]
    inside = (j >= 0) & (j < L)
    return torch.where(inside[None], g[:, j.clamp(0, L - 1)], torch.zeros((), dtype=g.dtype, device=g.device))


def banded_sums(rows: torch.Tensor, kernel: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """rows (K, S_in, C), kernel (K, W, U) -> out (n_blk, K, W, C): window sums, one bmm per block."""
    W, U = kernel.shape[-2:]
    for o in range(out.shape[0]):
        torch.bmm(kernel, rows[:, o * W:o * W + U], out=out[o])
    return out


def _pad_frames(x: torch.Tensor, n_out: int, W: int, U: int, front: int = 0) -> tuple[torch.Tensor, int]:
    """(S, ...) frames with ``front`` zero frames before and zeros after, to what ``n_out`` outputs in
    blocks of W read; and the number of blocks."""
    n_blk = -(-n_out // W)
    size = (n_blk - 1) * W + U
    out = x.new_zeros((size,) + x.shape[1:])
    n = min(x.shape[0], size - front)
    out[front:front + n] = x[:n]
    return out, n_blk


def _window_sums(rows: torch.Tensor, kern: torch.Tensor, n_out: int) -> torch.Tensor:
    """rows (k, S, C) -> window sums (k, n_out, C) through band matrices ``kern`` (k, W, U)."""
    k, S, C = rows.shape
    W, U = kern.shape[-2:]
    rp, n_blk = _pad_frames(rows.transpose(0, 1), n_out, W, U)                 # (S_in, k, C)
    out = torch.empty((n_blk, k, W, C), dtype=rows.dtype, device=rows.device)
    banded_sums(rp.transpose(0, 1), kern, out)
    return out.transpose(0, 1).reshape(k, n_blk * W, C)[:, :n_out]


def _window_grads(y: torch.Tensor, rows: torch.Tensor, kern: torch.Tensor, L: int) -> tuple[torch.Tensor, torch.Tensor]:
    """For output weights y (k, T, C) and input rows (k, S, C): Z (k, S, C), ``Z[s] = sum_t g[s - t] y[t]``
    (the window sums transposed), and (k, L) ``sum_t sum_c y[t, c] rows[t + j, c]`` for each lag j."""
    k, T, C = y.shape
    W, U = kern.shape[-2:]
    yo, n_blk = _pad_frames(y.transpose(0, 1), T, W, W)                        # (n_blk*W, k, C)
    yo = yo.reshape(n_blk, W, k, C).transpose(1, 2)                            # (n_blk, k, W, C)
    rp, _ = _pad_frames(rows.transpose(0, 1), T, W, U)                         # (S_in, k, C)
    rp = rp.transpose(0, 1)                                                    # (k, S_in, C)
    z = torch.zeros_like(rp)
    lags = torch.zeros((k, L), dtype=y.dtype, device=y.device)
    for o in range(n_blk):
        z[:, o * W:o * W + U].baddbmm_(kern.transpose(1, 2), yo[o])
        mo = torch.bmm(yo[o], rp[:, o * W:o * W + U].transpose(1, 2))          # (k, W, U)
        lags += mo.as_strided((k, W, L), (W * U, U + 1, 1)).sum(1)             # sum_t mo[t, t + j]
    return z[:, :rows.shape[1]], lags


def _window_means(rows: torch.Tensor, kern: torch.Tensor, n_out: int) -> tuple[torch.Tensor, torch.Tensor]:
    """rows (k, S, ..., 1 + P), weights first then weights x values -> window means (k, n_out, ..., P)
    and window sums of the weights (k, n_out, ..., 1)."""
    s = _window_sums(rows.flatten(2), kern, n_out).view((rows.shape[0], n_out) + rows.shape[2:])
    den = s[..., :1]
    return s[..., 1:] / den, den


def _window_means_grad(rows: torch.Tensor, grad: torch.Tensor, means: torch.Tensor, den: torch.Tensor,
                       kern: torch.Tensor, L: int) -> tuple[torch.Tensor, torch.Tensor]:
    """For :func:`_window_means`' rows, means and sums and the means' gradient: the gradient of each
    frame's score (k, S, ...) and, per lag, ``sum_t sum_c Y[t, c] rows[t + j, c]`` (k, L)."""
    a = grad / den
    y = torch.cat([-(a * means).sum(-1, keepdim=True), a], dim=-1)           # pairs with rows' channels
    z, lags = _window_grads(y.flatten(2), rows.flatten(2), kern, L)
    return (rows * z.view(rows.shape)).sum(-1), lags


class MelWindowMeans(torch.autograd.Function):
    """m (K, T, N, B) and the smallest window sum, for alpha (K, B), gamma (K, L) and frames x (N, S, B).

    ``x`` takes no gradient (features); ``alpha`` and ``gamma`` do. Float32 or float64. Callers
    check the smallest sum: below the dtype's range the result is not to be used.
    """

    @staticmethod
    def _exp_rows(alpha: torch.Tensor, x: torch.Tensor, peak: torch.Tensor) -> torch.Tensor:
        """(k, S, N, B, 2): e = exp(alpha x - peak) and e x, frames first."""
        xt = x.transpose(0, 1)                                                  # (S, N, B)
        r = torch.empty((alpha.shape[0],) + xt.shape + (2,), dtype=x.dtype, device=x.device)
        e = r[..., 0]
        torch.mul(alpha[:, None, None, :], xt[None], out=e)
        e.sub_(peak[:, None]).exp_()
        torch.mul(e, xt[None], out=r[..., 1])
        return r

    @staticmethod
    def forward(ctx, alpha, gamma, x, width: int = 32, block: int = 4):
        K, B = alpha.shape
        L = gamma.shape[1]
        N, S, _ = x.shape
        T = S - L + 1
        alpha, gamma, x = alpha.detach(), gamma.detach(), x.detach()
        g = torch.exp(gamma - gamma.amax(dim=1, keepdim=True))
        kern = banded_kernel(g, width)
        peak = torch.maximum(alpha[:, None, :] * x.amax(1)[None], alpha[:, None, :] * x.amin(1)[None])  # (K,N,B)
        m = torch.empty((K, T, N, B), dtype=x.dtype, device=x.device)
        den = torch.empty((K, T, N, B), dtype=x.dtype, device=x.device)
        for k0 in range(0, K, block):
            k1 = min(K, k0 + block)
            mk, dk = _window_means(MelWindowMeans._exp_rows(alpha[k0:k1], x, peak[k0:k1]), kern[k0:k1], T)
            m[k0:k1], den[k0:k1] = mk[..., 0], dk[..., 0]
        # rows (k, n, b) whose sums fall below float32 range (digital silence beside speech under a
        # sharp band weight): those rows alone in float64
        tiny = 1e-30 if x.dtype == torch.float32 else 1e-300
        row_min = den.amin(dim=1) if T else torch.ones((K, N, B), dtype=x.dtype)    # (K, N, B)
        bad = row_min < tiny
        k_i, n_i, b_i = bad.nonzero(as_tuple=True)
        den_min = row_min[~bad].amin() if bool((~bad).any()) else torch.ones((), dtype=x.dtype)
        if len(k_i):
            with torch.no_grad():
                m64, den64 = MelWindowMeans.rows_float64(alpha[k_i, b_i], gamma[k_i], x[n_i, :, b_i])
            m[k_i, :, n_i, b_i] = m64.to(x.dtype)
            den[k_i, :, n_i, b_i] = 1.0            # the backward takes these rows in float64 too
            if float(den64.amin()) < 1e-300:       # beyond float64 as well: the caller's fallback
                den_min = torch.zeros((), dtype=x.dtype)
        ctx.save_for_backward(alpha, gamma, g, x, peak, m, den, k_i, n_i, b_i)
        ctx.width, ctx.block = width, block
        ctx.mark_non_differentiable(den_min)
        return m, den_min

    @staticmethod
    def rows_float64(a: torch.Tensor, gamma: torch.Tensor, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Window means (R, T) and sums of R single rows in float64: a (R,), gamma (R, L), x (R, S)."""
        L = gamma.shape[1]
        xw = x.double().unfold(1, L, 1)                                        # (R, T, L)
        s = a.double()[:, None, None] * xw + gamma.double()[:, None, :]
        peak = s.amax(dim=(1, 2), keepdim=True)
        e = torch.exp(s - peak)
        den = e.sum(-1)
        return (e * xw).sum(-1) / den, den

    @staticmethod
    def backward(ctx, grad_m, _grad_den_min):
        alpha, gamma, g, x, peak, m, den, k_i, n_i, b_i = ctx.saved_tensors
        K = m.shape[0]
        kern = banded_kernel(g, ctx.width)
        d_alpha = torch.empty_like(alpha)
        d_gamma = torch.empty_like(g)
        grad_m = grad_m.contiguous()
        if len(k_i):                   # the float64 rows: their own gradient; none through the float32 sums
            g64 = grad_m[k_i, :, n_i, b_i].double()
            grad_m = grad_m.clone()
            grad_m[k_i, :, n_i, b_i] = 0.0
        xt = x.transpose(0, 1)                                                  # (S, N, B)
        for k0 in range(0, K, ctx.block):
            k1 = min(K, k0 + ctx.block)
            rows = MelWindowMeans._exp_rows(alpha[k0:k1], x, peak[k0:k1])     # (nk, S, N, B, 2)
            d_score, lags = _window_means_grad(rows, grad_m[k0:k1, ..., None], m[k0:k1, ..., None],
                                               den[k0:k1, ..., None], kern[k0:k1], g.shape[1])
            d_gamma[k0:k1] = lags * g[k0:k1]
            d_alpha[k0:k1] = (d_score * xt[None]).sum(dim=(1, 2))
        if len(k_i):
            with torch.enable_grad():
                a = alpha[k_i, b_i].double().requires_grad_()
                gm = gamma[k_i].double().requires_grad_()
                m64, _ = MelWindowMeans.rows_float64(a, gm, x[n_i, :, b_i])
                da, dg = torch.autograd.grad(m64, (a, gm), g64)
            d_alpha.index_put_((k_i, b_i), da.to(d_alpha.dtype), accumulate=True)
            d_gamma.index_add_(0, k_i, dg.to(d_gamma.dtype))
        return d_alpha, d_gamma, None, None, None


class EmoWindowMeans(torch.autograd.Function):
    """u (K, T, N, F) and the smallest window sum, for scores (K, N, S), gamma (K, L) and values v (N, S, F):
    ``u[k, t] = sum_j softmax_j(scores[k, t + j] + gamma[k, j]) v[t + j]``. ``v`` takes no gradient."""

    @staticmethod
    def _exp_rows(scores: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """(k, S, N, 1 + F): e = exp(score - max) and e v, frames first."""
        e = torch.exp(scores - scores.amax(dim=-1, keepdim=True)).transpose(1, 2)   # (k, S, N)
        vt = v.transpose(0, 1)                                                  # (S, N, F)
        r = torch.empty(e.shape + (1 + v.shape[-1],), dtype=v.dtype, device=v.device)
        r[..., 0] = e
        torch.mul(e[..., None], vt[None], out=r[..., 1:])
        return r

    @staticmethod
    def forward(ctx, scores, gamma, v, width: int = 32, block: int = 8):
        K, N, S = scores.shape
        L = gamma.shape[1]
        F = v.shape[-1]
        T = S - L + 1
        scores, gamma, v = scores.detach(), gamma.detach(), v.detach()
        g = torch.exp(gamma - gamma.amax(dim=1, keepdim=True))
        kern = banded_kernel(g, width)
        u = torch.empty((K, T, N, F), dtype=v.dtype, device=v.device)
        den = torch.empty((K, T, N, 1), dtype=v.dtype, device=v.device)
        for k0 in range(0, K, block):
            k1 = min(K, k0 + block)
            u[k0:k1], den[k0:k1] = _window_means(EmoWindowMeans._exp_rows(scores[k0:k1], v), kern[k0:k1], T)
        ctx.save_for_backward(scores, g, v, u, den)
        ctx.width, ctx.block = width, block
        den_min = den.amin() if den.numel() else torch.ones((), dtype=v.dtype)
        ctx.mark_non_differentiable(den_min)
        return u, den_min

    @staticmethod
    def backward(ctx, grad_u, _grad_den_min):
        scores, g, v, u, den = ctx.saved_tensors
        kern = banded_kernel(g, ctx.width)
        d_scores = torch.empty_like(scores)
        d_gamma = torch.empty_like(g)
        grad_u = grad_u.contiguous()
        for k0 in range(0, scores.shape[0], ctx.block):
            k1 = min(scores.shape[0], k0 + ctx.block)
            rows = EmoWindowMeans._exp_rows(scores[k0:k1], v)                   # (nk, S, N, 1 + F)
            d_score, lags = _window_means_grad(rows, grad_u[k0:k1], u[k0:k1], den[k0:k1], kern[k0:k1],
                                               g.shape[1])
            d_gamma[k0:k1] = lags * g[k0:k1]
            d_scores[k0:k1] = d_score.transpose(1, 2)
        return d_scores, d_gamma, None, None, None
