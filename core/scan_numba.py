"""Numba kernels for the elementwise scan on CPU.

Why hand-written ``cos``/``sin``/``tanh``: numba calls libm for ``math.cos``
one scalar at a time (the pip llvmlite has no SVML), which blocks
vectorisation. The polynomials below are plain multiply-adds in float64, which
LLVM vectorises; evaluated in float64 and rounded once, they land within
float32 rounding of torch's float32 ``cos``/``tanh`` (the tests check it over
the whole argument range, up to ``phase * j`` of about 1,200 and beyond). A
float32 ``tanh`` (16 vector lanes, cephes' tanhf, 1.3 ulp) made the forward a
fifth faster but moved the golden trace by 4e-4 through the recurrence, beyond
the parity tolerance: float64 it stays.

Products and sums that the published code computes in float32
(``phase*j + h``, ``h * r * scale``, ``u + ...``) are computed in float32 here
too, in the same order, so the arguments of ``cos``/``tanh`` are bit-identical.

Batch rows are independent over all time steps, so the kernels split the
batch across threads once per call, not once per time step. Compiled code is
cached in a per-user folder (a bundled app's own folder is read-only).
"""

from __future__ import annotations

import os
import threading

import torch

_ERROR: str | None = None
try:
    from core.resources import user_cache_dir

    os.environ.setdefault("NUMBA_CACHE_DIR", str(user_cache_dir() / "numba"))
    import numba
    import numpy as np
    from numba import float32, float64, njit, prange
except Exception as exc:  # numba is optional: the torch loop in core.scan still works
    _ERROR = f"{type(exc).__name__}: {exc}"


def _full_vector_width() -> None:
    """Let LLVM use 512-bit vectors on CPUs with AVX-512.

    LLVM's tuning for most AVX-512 CPUs prefers 256-bit vectors (against
    clock throttling on early server parts), so the kernels ran 4 doubles or
    8 floats per instruction. Lifting that preference makes the backward
    about a fifth faster on this project's test machine (0.67 -> 0.54 ms per
    default layer, one thread); results are bit-identical (elementwise
    arithmetic, same order). Must run before numba's first compilation; an
    explicit ``NUMBA_CPU_NAME``/``NUMBA_CPU_FEATURES`` from the user wins.
    The compiled-code cache is keyed by these features, so it stays valid.
    """
    if "NUMBA_CPU_NAME" in os.environ or "NUMBA_CPU_FEATURES" in os.environ:
        return
    import llvmlite.binding as ll
    from numba.core import config

    features = ll.get_host_cpu_features()
    if features.get("avx512f") and config.CPU_FEATURES is None:
        config.CPU_FEATURES = features.flatten() + ",-prefer-256-bit"


if _ERROR is None:
    try:
        _full_vector_width()
    except Exception:  # an unusual llvmlite: keep numba's own choice
        pass

# The work-queue threading layer must not be entered from two threads at once
# (training and prompt conditioning in the studio can overlap).
KERNEL_LOCK = threading.Lock()


def available() -> bool:
    return _ERROR is None and os.environ.get("LANDAUER_DISABLE_NUMBA", "") in ("", "0")


def unavailable_reason() -> str | None:
    return _ERROR


if _ERROR is None:
    _JIT = dict(cache=True, nogil=True, error_model="numpy", boundscheck=False)

    # pi/2 split so that k * _PIO2_HI is exact for |k| < 2**20 (fdlibm's pio2_1/pio2_1t).
    _PIO2_HI = 1.57079632673412561417e00
    _PIO2_LO = 6.07710050650619224932e-11
    _TWO_OVER_PI = 6.36619772367581382433e-01
    _ROUND = 6755399441055744.0  # 1.5 * 2**52: adding and subtracting it rounds to an integer

    # Polynomials may use fused multiply-adds ("contract"): they run in float64, far
    # below float32 rounding. The kernels themselves stay strict, so their float32
    # sums and products round exactly as the published code's.
    _POLY = dict(_JIT, fastmath={"contract"})

    # Minimax kernels for |r| <= pi/4 evaluated in double (FreeBSD/musl __sindf, __cosdf):
    # |sin r / r - s(r)| < 2**-37.5, |cos r - c(r)| < 2**-34.1, below float32 rounding.
    _S1, _S2 = -0.166666666416265235595, 0.0083333293858894631756
    _S3, _S4 = -0.000198393348360966317347, 0.0000027183114939898219064
    _C0, _C1 = -0.499999997251031003120, 0.0416666233237390631894
    _C2, _C3 = -0.00138867637746099294692, 0.0000243904487962774090654

    @njit(**_POLY)
    def _sincos(a):
        """(sin a, cos a) in float64 for a float32 argument."""
        x = float64(a)
        k = (x * _TWO_OVER_PI + _ROUND) - _ROUND  # round to nearest without a libm call
        r = (x - k * _PIO2_HI) - k * _PIO2_LO  # |r| <= pi/4
        z = r * r
        w = z * z
        s = (r + z * r * (_S1 + z * _S2)) + z * r * w * (_S3 + z * _S4)
        c = ((1.0 + z * _C0) + w * _C1) + (w * z) * (_C2 + z * _C3)
        # quadrant q = k mod 4 picks (+-sin r, +-cos r). Found with floor, not integer ops:
        # AVX2 has no packed float64 -> int64 conversion, and one would keep this loop scalar.
        q = k - 4.0 * np.floor(k * 0.25)  # 0, 1, 2 or 3
        half = np.floor(q * 0.5)  # 1 for q = 2, 3: sin negative
        odd = q - 2.0 * half
        turned = np.floor((q + 1.0) * 0.5)  # 1 for q = 1, 2; 2 for q = 3
        sin_sign = 1.0 - 2.0 * half
        cos_sign = 1.0 - 2.0 * (turned - 2.0 * np.floor(turned * 0.5))  # negative for q = 1, 2
        return (s + odd * (c - s)) * sin_sign, (c + odd * (s - c)) * cos_sign

    @njit(**_POLY)
    def _cos(a):
        return _sincos(a)[1]

    @njit(**_POLY)
    def _tanh(zf):
        """tanh in float64 for a float32 argument, via expm1 doubling (keeps relative accuracy near 0)."""
        x = abs(float64(zf))
        x = 9.5 if x > 9.5 else x  # float32 tanh is exactly +-1 beyond about 9.01; NaN stays NaN
        r = x * (2.0 / 16.0)
        m = r * (1.0 + r * (1.0 / 2 + r * (1.0 / 6 + r * (1.0 / 24 + r * (1.0 / 120 + r * (1.0 / 720
            + r * (1.0 / 5040 + r * (1.0 / 40320 + r * (1.0 / 362880 + r * (1.0 / 3628800
            + r * (1.0 / 39916800)))))))))))
        m = m * (m + 2.0)  # expm1(2y) = expm1(y) * (expm1(y) + 2), four times: 2x = 16r
        m = m * (m + 2.0)
        m = m * (m + 2.0)
        m = m * (m + 2.0)
        return np.copysign(m / (m + 2.0), float64(zf))

    # Taylor coefficients for |d| <= 1.25: truncation below 2**-35 (sin) and 2**-39 (cos)
    _T3, _T5, _T7 = -1.0 / 6, 1.0 / 120, -1.0 / 5040
    _T9, _T11, _T13 = 1.0 / 362880, -1.0 / 39916800, 1.0 / 6227020800
    _T2, _T4, _T6, _T8 = -1.0 / 2, 1.0 / 24, -1.0 / 720, 1.0 / 40320
    _T10, _T12, _T14 = -1.0 / 3628800, 1.0 / 479001600, -1.0 / 87178291200

    @njit(**_POLY)
    def _sincos_near(a, base, sin_base, cos_base):
        """(sin a, cos a) in float64 for a float32 ``a`` within 1.25 of ``base``.

        In the scan ``a = phase*j + h`` (rounded to float32) and ``|h| <= 1`` after
        the first step, so with ``base = phase*j`` and its sine and cosine precomputed
        in float64, ``d = a - base`` is exact and small: the angle-addition formulas
        need no range reduction and no quadrant logic, about half the work of
        :func:`_sincos`, with the same float64 accuracy.
        """
        d = float64(a) - base
        z = d * d
        s = d + d * z * (_T3 + z * (_T5 + z * (_T7 + z * (_T9 + z * (_T11 + z * _T13)))))
        c = 1.0 + z * (_T2 + z * (_T4 + z * (_T6 + z * (_T8 + z * (_T10 + z * (_T12 + z * _T14))))))
        return sin_base * c + cos_base * s, cos_base * c - sin_base * s

    @njit(**_JIT)
    def _add_parts(parts, out):
        """``out[j] = sum_p parts[p, j]`` in float64, rounded to ``out``'s float32."""
        for j in range(out.shape[0]):
            total = 0.0
            for p in range(parts.shape[0]):
                total += parts[p, j]
            out[j] = float32(total)

    @njit(**_JIT)
    def _rotation(first, h, angles, base, sin_base, cos_base, ct, st):
        """``ct``/``st`` <- cos/sin of ``angles + h`` (float32 sum, as published), rounded to float32."""
        if first:  # the initial state may hold any values: full range reduction
            for j in range(h.shape[0]):
                sin_a, cos_a = _sincos(angles[j] + h[j])
                ct[j] = float32(cos_a)
                st[j] = float32(sin_a)
        else:  # |h| <= 1 (tanh outputs): angle addition around phase*j
            for j in range(h.shape[0]):
                sin_a, cos_a = _sincos_near(angles[j] + h[j], base[j], sin_base[j], cos_base[j])
                ct[j] = float32(cos_a)
                st[j] = float32(sin_a)

    @njit(**_JIT, parallel=True)
    def _forward_kernel(u, bias, table, tokens, h0, scale, angles, base, sin_base, cos_base, out, cos_out, sin_out,
                        keep, sq_rows, sq_total):
        """``out`` <- trace; with ``keep``, also cos and sin of each step's angle for the backward.

        The input of step ``t`` is ``u[t, b]`` plus a non-empty ``bias`` (H,) (added here,
        not by the matrix product: one pass fewer over u), or with a non-empty ``tokens`` (T, B)
        the row ``table[tokens[t, b]]`` (the first layer: its projection of each symbol,
        so the (T, B, H) input is never written out). With a non-empty ``sq_rows``
        (B, H), also the inertia sums ``sq_rows[b, j] = sum_t (h_t - h_{t-1})**2`` over
        ``t >= 1``, the differences and squares rounded in float32 as published, summed
        in float64, and their total in ``sq_total[0]``.
        """
        steps, batch, hidden = out.shape
        inertia = sq_rows.shape[0] > 0
        gather = tokens.shape[0] > 0
        biased = bias.shape[0] > 0
        for b in prange(batch):
            h = h0[b].copy()  # a private state: reading `out` while writing it defeats vectorisation
            cos_buf = np.empty(hidden, dtype=np.float32)
            sin_buf = np.empty(hidden, dtype=np.float32)
            for t in range(steps):
                ct = cos_out[t, b] if keep else cos_buf
                st = sin_out[t, b] if keep else sin_buf
                _rotation(t == 0, h, angles, base, sin_base, cos_base, ct, st)
                ut = table[tokens[t, b]] if gather else u[t, b]
                ot = out[t, b]
                if biased:
                    for j in range(hidden):
                        ot[j] = float32(_tanh((ut[j] + bias[j]) + h[j] * ct[j] * scale[j]))
                else:
                    for j in range(hidden):
                        ot[j] = float32(_tanh(ut[j] + h[j] * ct[j] * scale[j]))
                if inertia and t > 0:
                    sq = sq_rows[b]
                    for j in range(hidden):
                        d = ot[j] - h[j]
                        sq[j] += float64(d * d)
                h[:] = ot
        if inertia:
            sq_total[0] = sq_rows.sum()

    @njit(**_JIT, parallel=True)
    def _backward_kernel(grad_trace, h0, scale, trace, cos_a, sin_a, inertia_coef, grad_u, tokens, table_parts,
                         grad_h0, grad_s_parts, grad_b_parts, grad_s, grad_b, grad_table):
        """Gradients of one layer; ``inertia_coef`` c adds the inertia term's gradient
        ``c * (d_t - d_{t+1})`` (``d_t = h_t - h_{t-1}``, zero outside ``1 <= t <= T-1``).

        The batch is split into ``P = grad_s_parts.shape[0]`` parts, one per thread,
        each summing its own float64 gradients of the scale and the input bias
        (``(P, H)``) and, with a non-empty ``tokens``, of the input table rows
        (``table_parts (P, V, H)``, the first layer's scatter; ``grad_u`` is then
        not written). The parts' sums are then added up into the float32 ``grad_s``,
        ``grad_b`` (H,) and ``grad_table`` (V, H).
        """
        steps, batch, hidden = trace.shape
        parts = grad_s_parts.shape[0]
        scatter = tokens.shape[0] > 0
        one = float32(1.0)
        c = float32(inertia_coef)
        for part in prange(parts):
            # private accumulators: sums into the shared (P, H) arrays inside the loop below
            # would have to assume they alias the inputs, and run about 60% slower
            carry = np.empty(hidden, dtype=np.float32)
            gz_buf = np.empty(hidden, dtype=np.float32)
            gs = np.empty(hidden, dtype=np.float64)
            gb = np.empty(hidden, dtype=np.float64)
            for b in range(part * batch // parts, (part + 1) * batch // parts):
                carry[:] = 0.0
                gs[:] = 0.0
                gb[:] = 0.0
                for t in range(steps - 1, -1, -1):
                    prev = h0[b] if t == 0 else trace[t - 1, b]
                    cur = trace[t, b]
                    gt = grad_trace[t, b]
                    gu = gz_buf if scatter else grad_u[t, b]
                    ct = cos_a[t, b]
                    st = sin_a[t, b]
                    # for the inertia term: d_t (zero for t = 0, the initial state is not part of
                    # the energy) minus d_{t+1} (zero for the last step)
                    before = cur if t == 0 else prev
                    after = cur if t == steps - 1 else trace[t + 1, b]
                    for j in range(hidden):
                        hp = prev[j]
                        r = ct[j]
                        h = cur[j]
                        g = gt[j] + c * ((h - before[j]) - (after[j] - h))
                        gz = (g + carry[j]) * (one - h * h)
                        gu[j] = gz
                        carry[j] = gz * scale[j] * (r - hp * st[j])
                    # the float64 sums in a loop of their own: fewer arrays per loop, so
                    # LLVM's alias checks still admit vectors (the backward ~10% faster)
                    for j in range(hidden):
                        gz = gu[j]
                        gs[j] += float64(gz * prev[j] * ct[j])
                        gb[j] += float64(gz)
                    if scatter:
                        row = table_parts[part, tokens[t, b]]
                        for j in range(hidden):
                            row[j] += float64(gu[j])
                grad_h0[b, :] = carry
                grad_s_parts[part] += gs
                grad_b_parts[part] += gb
        _add_parts(grad_s_parts, grad_s)
        _add_parts(grad_b_parts, grad_b)
        if scatter:
            for v in range(table_parts.shape[1]):
                _add_parts(table_parts[:, v], grad_table[v])

    @njit(**_JIT)
    def _elementwise(fn_id, a):
        """Elementwise sin/cos/tanh over a float32 array (for tests of the approximations)."""
        out = np.empty(a.shape, dtype=np.float32)
        for i in range(a.size):
            if fn_id == 0:
                out.flat[i] = float32(_sincos(a.flat[i])[0])
            elif fn_id == 1:
                out.flat[i] = float32(_sincos(a.flat[i])[1])
            else:
                out.flat[i] = float32(_tanh(a.flat[i]))
        return out


def thread_parts(n: int) -> int:
    """Into how many parts a kernel splits ``n`` independent rows: one per numba thread, at most ``n``."""
    return max(1, min(numba.get_num_threads(), n))


def _np(t: torch.Tensor):
    return t.detach().numpy()


if _ERROR is None:  # placeholders for the kernels' unused array arguments
    _EMPTY1 = np.empty(0, dtype=np.float32)
    _EMPTY2 = np.empty((0, 0), dtype=np.float32)
    _EMPTY3 = np.empty((0, 0, 0), dtype=np.float32)
    _NO_TOKENS = np.empty((0, 0), dtype=np.int64)


_ANGLE_TABLES: dict[bytes, tuple] = {}


def _angle_table(angles):
    """``phase*j`` as float64 with its sine and cosine (float64, numpy's libm), cached per angle row."""
    key = angles.tobytes()
    table = _ANGLE_TABLES.get(key)
    if table is None:
        if len(_ANGLE_TABLES) > 64:  # a few models' layers at a time; never grows without bound
            _ANGLE_TABLES.clear()
        base = angles.astype(np.float64)
        table = _ANGLE_TABLES[key] = (base, np.sin(base), np.cos(base))
    return table


def forward(u: torch.Tensor | None, h0: torch.Tensor, scale: torch.Tensor, angles: torch.Tensor,
            keep: bool = True, inertia: bool = False, *, bias: torch.Tensor | None = None,
            table: torch.Tensor | None = None, tokens: torch.Tensor | None = None):
    """Trace ``(T,B,H)`` of one layer, cos and sin for the backward (with ``keep``, else None),
    and with ``inertia`` the float64 sum of ``(h_t - h_{t-1})**2`` over ``t >= 1`` (else None).

    The input is ``u (T,B,H)`` (plus ``bias (H,)`` when given), or ``table[tokens]`` for ``table (V,H)`` and int64
    ``tokens (T,B)`` (then ``u`` is None). All inputs float32 (tokens int64),
    contiguous, on CPU. Keeping cos/sin costs two writes per element and spares
    the backward its own polynomial evaluations.
    """
    gather = tokens is not None
    shape = (*tokens.shape, table.shape[1]) if gather else u.shape
    out = torch.empty(shape)
    cos_a = torch.empty(shape) if keep else torch.empty(0, 0, 0)
    sin_a = torch.empty(shape) if keep else torch.empty(0, 0, 0)
    sq_rows = np.zeros(shape[1:] if inertia else (0, 0), dtype=np.float64)
    sq_total = np.zeros(1, dtype=np.float64)
    angles_np = _np(angles.contiguous())
    base, sin_base, cos_base = _angle_table(angles_np)
    u_np = _EMPTY3 if gather else _np(u)
    table_np = _np(table) if gather else _EMPTY2
    tokens_np = _np(tokens) if gather else _NO_TOKENS
    with KERNEL_LOCK:
        _forward_kernel(u_np, _EMPTY1 if bias is None else _np(bias), table_np, tokens_np, _np(h0), _np(scale.contiguous()), angles_np, base, sin_base,
                        cos_base, out.numpy(), cos_a.numpy(), sin_a.numpy(), keep, sq_rows, sq_total)
    sq_sum = float(sq_total[0]) if inertia else None
    return out, (cos_a if keep else None), (sin_a if keep else None), sq_sum


def backward(grad_trace, h0, scale, trace, cos_a, sin_a, inertia_coef: float = 0.0, *,
             tokens: torch.Tensor | None = None, vocab: int = 0):
    """Gradients ``(u, h0, scale, bias, table)`` for :func:`forward` (see :class:`core.scan.LayerGrads`);
    with ``tokens`` (the forward gathered its input from a ``(vocab, H)`` table), the
    table's gradient instead of the input's.

    ``inertia_coef`` (``c``) adds ``c * (d_t - d_{t+1})`` to the gradient arriving at each
    ``h_t``: the gradient of ``c/2 * sum_t d_t**2``, the fused inertia term.
    """
    batch, hidden = h0.shape
    scatter = tokens is not None
    parts = thread_parts(batch)
    grad_u = None if scatter else torch.empty_like(trace)
    grad_h0 = torch.empty_like(h0)
    s_parts = np.zeros((parts, hidden), dtype=np.float64)
    b_parts = np.zeros((parts, hidden), dtype=np.float64)
    table_parts = np.zeros((parts, vocab, hidden) if scatter else (0, 0, 0), dtype=np.float64)
    grad_s, grad_b = torch.empty(hidden), torch.empty(hidden)
    grad_table = torch.empty(vocab, hidden) if scatter else None
    with KERNEL_LOCK:
        _backward_kernel(_np(grad_trace), _np(h0), _np(scale.contiguous()), _np(trace), _np(cos_a), _np(sin_a),
                         float(inertia_coef), _EMPTY3 if scatter else grad_u.numpy(),
                         _np(tokens) if scatter else _NO_TOKENS, table_parts, grad_h0.numpy(), s_parts, b_parts,
                         grad_s.numpy(), grad_b.numpy(), grad_table.numpy() if scatter else _EMPTY2)
    return grad_u, grad_h0, grad_s, grad_b, grad_table


def elementwise(fn: str, x: torch.Tensor) -> torch.Tensor:
    """The kernels' own sin/cos/tanh on a float32 tensor, for accuracy tests."""
    fn_id = {"sin": 0, "cos": 1, "tanh": 2}[fn]
    return torch.from_numpy(_elementwise(fn_id, _np(x.contiguous())))
