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


def window_keys(seqlen_q: int, seqlen_k: int, window) -> np.ndarray:
    """Boolean (Sq, Sk): query i sees key j iff ``i + off - left <= j <= i + off + right``, ``off = Sk - Sq``
    (``window = (left, right)``, None on a side = unbounded; ``window=None``: everything)."""
    rows = np.arange(seqlen_q)[:, None]
    cols = np.arange(seqlen_k)[None, :]
    offset = cols - rows - (seqlen_k - seqlen_q)
    left, right = window if window is not None else (None, None)
    visible = np.ones((seqlen_q, seqlen_k), dtype=bool)
    if left is not None:
        visible &= offset >= -left
    if right is not None:
        visible &= offset <= right
    return visible


def block_mask_keys(blocks, seq_lengths: tuple[int, int], block_size: tuple[int, int]) -> np.ndarray:
    """Element visibility (B', H', Sq, Sk) of a dense bool block matrix (B', H', nQB, nKB)."""
    blocks = np.asarray(blocks, dtype=bool)
    sq, sk = seq_lengths
    rows = np.repeat(blocks, block_size[0], axis=2)[:, :, :sq]
    return np.repeat(rows, block_size[1], axis=3)[:, :, :, :sk]


def attention_reference(q, k, v, *, causal: bool = False, scale: float | None = None,
                        layout: str = "bhsd", mask=None) -> tuple[np.ndarray, np.ndarray]:
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
    mask : array_like of bool, (B or 1, Hq or 1, Sq, Sk), optional
        Further element visibility, combined with ``causal`` (e.g. :func:`window_keys`,
        :func:`block_mask_keys`).

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
    if mask is not None:
        visible = visible & np.asarray(mask, dtype=bool)
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


def sparsek_blocks_reference(scores, topk: int, *, seqlen_q: int, block_size: int = 128, causal: bool = True,
                             local_blocks: int = 1, pool: str = "max") -> np.ndarray:
    """Which KV blocks each query block keeps under SparseK-style top-k selection (NumPy oracle).

    Parameters
    ----------
    scores : array_like, (B, Hkv, Sk)
        Query-independent importance of every key (SparseK's scoring network output).
    topk : int
        Blocks kept per query block beyond its local window.
    seqlen_q : int
        Sq; query blocks are ``block_size`` rows, bottom-right aligned with the keys as in causal attention.
    block_size : int
        Rows per query block and keys per KV block.
    causal : bool
        Only blocks the bottom-right causal mask touches are candidates.
    local_blocks : int
        The local window, always kept: the blocks holding the diagonal keys of the query block's rows (one,
        or two where ``Sk - Sq`` is not a multiple of ``block_size``) and the ``local_blocks - 1`` blocks
        before them; none when 0.
    pool : {"max", "mean"}
        How a KV block's score is made from its keys' scores (over the keys that exist).

    Returns
    -------
    np.ndarray, bool, (B, Hkv, nQB, nKB)
        Kept blocks: the local window plus the ``topk`` highest-scoring other candidates; ties go to the
        lower block index, so the result is deterministic.
    """
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim != 3:
        raise ValueError(f"scores must be (B, Hkv, Sk), got shape {scores.shape}")
    if pool not in ("max", "mean"):
        raise ValueError(f"pool must be 'max' or 'mean', got {pool!r}")
    batch, heads, seqlen_k = scores.shape
    n_qb, n_kb = -(-seqlen_q // block_size), -(-seqlen_k // block_size)
    padded = np.full((batch, heads, n_kb * block_size), np.nan)
    padded[..., :seqlen_k] = scores
    tiles = padded.reshape(batch, heads, n_kb, block_size)
    pooled = np.nanmax(tiles, axis=-1) if pool == "max" else np.nanmean(tiles, axis=-1)

    rows_last = np.minimum((np.arange(n_qb) + 1) * block_size, seqlen_q) - 1
    diagonal_key = rows_last + (seqlen_k - seqlen_q)           # last key the block's last row may see
    first_diagonal = np.arange(n_qb) * block_size + (seqlen_k - seqlen_q)  # and its first row
    keep = np.zeros((batch, heads, n_qb, n_kb), dtype=bool)
    for qb in range(n_qb):
        if causal:
            if diagonal_key[qb] < 0:
                continue                                          # the block sees no key at all
            last = min(diagonal_key[qb] // block_size, n_kb - 1)
        else:
            last = min(max(diagonal_key[qb], 0) // block_size, n_kb - 1)
        first = min(max(first_diagonal[qb], 0) // block_size, n_kb - 1)
        candidates = np.arange(last + 1) if causal else np.arange(n_kb)
        local = np.arange(max(first - local_blocks + 1, 0), last + 1) if local_blocks > 0 else np.arange(0)
        others = np.setdiff1d(candidates, local)
        for b in range(batch):
            for h in range(heads):
                keep[b, h, qb, local] = True
                if others.size and topk > 0:
                    # stable sort on -score: equal scores keep ascending block order
                    order = others[np.argsort(-pooled[b, h, others], kind="stable")]
                    keep[b, h, qb, order[:topk]] = True
    return keep
