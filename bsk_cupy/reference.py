"""Float64 NumPy reference for attention: the oracle for tests, ``bsk-cupy validate`` and users.

Works on NumPy arrays in the same layouts as :func:`bsk_cupy.attention_forward` and follows the same
contract (GQA, bottom-right-aligned causal mask, rows that see no key give 0 and lse -inf).
"""

from __future__ import annotations

import numpy as np


def visible_keys(seqlen_q: int, seqlen_k: int, causal: bool) -> np.ndarray:
    """Boolean (Sq, Sk) matrix: entry (i, j) is True when query i may attend to key j.

    With ``causal``, query i sees key j iff ``j <= i + (Sk - Sq)`` (bottom-right aligned, as in
    FlashAttention); otherwise every key is visible.
    """
    if not causal:
        return np.ones((seqlen_q, seqlen_k), dtype=bool)
    rows = np.arange(seqlen_q)[:, None]
    cols = np.arange(seqlen_k)[None, :]
    return cols <= rows + (seqlen_k - seqlen_q)


def attention_reference(q, k, v, *, causal: bool = False, scale: float | None = None,
                        layout: str = "bhsd") -> tuple[np.ndarray, np.ndarray]:
    """Attention in float64.

    Parameters
    ----------
    q : array_like, (B, Hq, Sq, D) for ``layout="bhsd"`` or (B, Sq, Hq, D) for ``"bshd"``
    k, v : array_like, (B, Hkv, Sk, D) or (B, Sk, Hkv, D); ``Hq % Hkv == 0``
    causal : bool
        Bottom-right-aligned causal mask.
    scale : float, optional
        Softmax scale; defaults to ``1 / sqrt(D)``.
    layout : {"bhsd", "bshd"}

    Returns
    -------
    out : np.ndarray, float64, same shape as ``q``
    lse : np.ndarray, float64, (B, Hq, Sq), natural log; -inf where a row sees no key
    """
    if layout not in ("bhsd", "bshd"):
        raise ValueError(f"layout must be 'bhsd' or 'bshd', got {layout!r}")
    q, k, v = (np.asarray(x, dtype=np.float64) for x in (q, k, v))
    if layout == "bshd":
        q, k, v = (x.transpose(0, 2, 1, 3) for x in (q, k, v))
    batch, heads_q, seqlen_q, head_dim = q.shape
    heads_kv, seqlen_k = k.shape[1], k.shape[2]
    if heads_q % heads_kv:
        raise ValueError(f"Hq ({heads_q}) must be a multiple of Hkv ({heads_kv})")
    scale = 1.0 / np.sqrt(head_dim) if scale is None else float(scale)
    group = heads_q // heads_kv
    k = np.repeat(k, group, axis=1)
    v = np.repeat(v, group, axis=1)

    scores = np.einsum("bhid,bhjd->bhij", q, k) * scale
    visible = visible_keys(seqlen_q, seqlen_k, causal)
    scores = np.where(visible, scores, -np.inf)
    row_max = scores.max(axis=-1, keepdims=True)
    safe_max = np.where(np.isfinite(row_max), row_max, 0.0)
    weights = np.exp(scores - safe_max)
    denom = weights.sum(axis=-1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        probs = np.where(denom > 0, weights / denom, 0.0)
        lse = np.where(denom[..., 0] > 0, np.log(denom[..., 0]) + safe_max[..., 0], -np.inf)
    out = np.einsum("bhij,bhjd->bhid", probs, v)
    if layout == "bshd":
        out = out.transpose(0, 2, 1, 3)
    return out, lse


def attention_naive(q, k, v, *, causal: bool = False, scale: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The same math as :func:`attention_reference` with explicit Python loops ("bhsd" only).

    Slow by design: it exists to check the vectorised reference on small inputs.
    """
    q, k, v = (np.asarray(x, dtype=np.float64) for x in (q, k, v))
    batch, heads_q, seqlen_q, head_dim = q.shape
    heads_kv, seqlen_k = k.shape[1], k.shape[2]
    scale = 1.0 / np.sqrt(head_dim) if scale is None else float(scale)
    out = np.zeros_like(q)
    lse = np.full((batch, heads_q, seqlen_q), -np.inf)
    for b in range(batch):
        for h in range(heads_q):
            hk = h // (heads_q // heads_kv)
            for i in range(seqlen_q):
                keys = [j for j in range(seqlen_k) if not causal or j <= i + seqlen_k - seqlen_q]
                if not keys:
                    continue
                s = [scale * float(np.dot(q[b, h, i], k[b, hk, j])) for j in keys]
                m = max(s)
                w = [np.exp(x - m) for x in s]
                total = sum(w)
                lse[b, h, i] = m + np.log(total)
                for wj, j in zip(w, keys):
                    out[b, h, i] += wj / total * v[b, hk, j]
    return out, lse
