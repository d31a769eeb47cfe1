"""C kernels of the smooth activations, forward and backward, elementwise over contiguous
arrays: ``kind`` 0 GELU (tanh approximation), 1 GELU (exact, erf), 2 SiLU, 3 sigmoid, 4 tanh.

Forward ``y = f(x)``. Backward ``dx = g * f'(a)``, where ``a`` is what the op saves: the
input ``x`` for GELU and SiLU, the output ``y`` for sigmoid and tanh. The formulas are the
NumPy path's (``ember/ops/activation_grad.py``), in the same order, except GELU-tanh, which
uses ``0.5 (1 + tanh(u)) = sigmoid(2u)`` and ``(1 - tanh(u)^2) / 4 = e / (1 + e)^2`` with
``e = exp(-2|u|)``: one ``exp``, and no cancellation in ``1 + tanh(u)`` for negative inputs
(the NumPy path loses all digits there below about -4; ``+-inf`` still give what NumPy
gives: ``gelu(-inf)`` and both derivatives at ``+-inf`` are NaN). Sigmoid is ``where(x >= 0, 1, e) / (1 + e)`` with
``e = exp(-|x|)``: no overflow at either end.

float32 runs code of its own (``act_forward_f32``, ``act_backward_f32``), written once on
``act_v``, a vector of ``ACT_W`` floats: with AVX2 and FMA, 6 vectors of 8 (GCC/Clang vector
extensions and the builtins behind the intrinsics, whose header alone takes longer to compile
than these kernels), 4 vectors of 16 where GCC targets AVX-512 (W3's GELU on (2048, 512),
2 threads: 187 us forward against 263 with 6 vectors of 8, 530-560 against 661 forward
and backward; 6 vectors of 16 spilled registers), each operation applied to the blocks in
turn, so that independent chains of an ``exp`` (about 25 dependent operations) run side by
side; else one float, in a loop the compiler vectorizes. ``ember_expf``, ``ember_tanhf``
and ``ember_erfcf`` of :mod:`.common` are taken apart there, so that each caller keeps only
the steps its arguments need:

* the clamps are one ``min``/``max`` each (``a < b ? a : b``: NaN in ``b`` passes): a NaN
  argument stays NaN where the result must be NaN (sigmoid, tanh, erfc), else the formula
  makes NaN of a NaN input anyway (``x / (1 + e)``);
* ``act_expk``: Cody-Waite's reduction and the polynomial, on coefficients that carry a
  power of two ``2^-k``, so that ``2^(n + k)`` stays normal and one multiplication applies
  it, rounding once like ``ember_expf``'s two: ``k = 64`` for arguments ``<= 0`` (denormal
  results round once), ``k = -1`` for GELU-tanh's ``1 + exp(-2u)``, whose argument is
  clamped to ``[-20, 88.8]`` (below, ``1 + e`` is 1; beyond, ``e`` is inf).

For float32 these give, bit for bit, what the scalar loops below give with ``ember_expf``
and company (checked on all 2^32 inputs, GCC 12); the tests compare them with float64 math,
and the one-float build with the vector one. float64 runs the scalar loops, over libm.

Example:
    >>> from ember.kernels.source.activation import UNIT, KINDS
    >>> KINDS["silu"]
    2
"""

from __future__ import annotations

from . import Unit

KINDS = {"gelu_tanh": 0, "gelu": 1, "silu": 2, "sigmoid": 3, "tanh": 4}

SHARED = r"""
#define GELU_K 0.7978845608028654
#define GELU_C 0.044715
#define SQRT1_2 0.7071067811865476
#define INV_SQRT_2PI 0.3989422804014327

/* act_v: ACT_W floats; act_m: a mask of ACT_W lanes. Each operation rounds once, like the
   scalar code it stands for (fma: a b + c; fnma: c - a b; min/max: a < b ? a : b and
   a > b ? a : b, so a NaN in b passes and one in a does not) */
/* a block: act_f8 / act_i8 / act_u8 (named when a block was AVX2's 8 lanes; ACT_L lanes),
   and the ACT_*8 operations on one block */
#if defined(__AVX512F__) && defined(__GNUC__) && !defined(__clang__)
/* one block is a 64-byte vector (GCC's AVX-512 builtins: all lanes, current rounding) */
#define ACT_L 16 /* lanes of a block */
#define ACT_U 4  /* 4 blocks (6 spilled registers: GELU 215 us against 187 with 4) */
typedef float act_f8 __attribute__((vector_size(64)));
typedef int32_t act_i8 __attribute__((vector_size(64)));
typedef uint32_t act_u8 __attribute__((vector_size(64)));
#define ACT_ALL ((unsigned short)0xFFFF)
#define ACT_MIN8(a, b) __builtin_ia32_minps512_mask(a, b, a, ACT_ALL, 4)
#define ACT_MAX8(a, b) __builtin_ia32_maxps512_mask(a, b, a, ACT_ALL, 4)
#define ACT_FMA8(a, b, c) __builtin_ia32_vfmaddps512_mask(a, b, c, ACT_ALL, 4)
#define ACT_FNMA8(a, b, c) __builtin_ia32_vfnmaddps512_mask(a, b, c, ACT_ALL, 4)
#define ACT_RINT8(a) __builtin_ia32_rndscaleps_mask(a, 8, a, ACT_ALL, 4)
#define ACT_CVTT8(a) __builtin_ia32_cvttps2dq512_mask(a, (act_i8){0}, ACT_ALL, 4)
#define ACT_SEL8(m, a, b) ((act_f8)(((act_i8)(a) & (m)) | ((act_i8)(b) & ~(m))))
#elif defined(__AVX2__) && defined(__FMA__) && (defined(__GNUC__) || defined(__clang__))
#define ACT_L 8
typedef float act_f8 __attribute__((vector_size(32)));
typedef int32_t act_i8 __attribute__((vector_size(32)));
typedef uint32_t act_u8 __attribute__((vector_size(32)));
#define ACT_MIN8(a, b) __builtin_ia32_minps256(a, b)
#define ACT_MAX8(a, b) __builtin_ia32_maxps256(a, b)
#define ACT_FMA8(a, b, c) __builtin_ia32_vfmaddps256(a, b, c)
#if defined(__clang__) /* no vfnmaddps256 builtin (its intrinsic negates a) */
#define ACT_FNMA8(a, b, c) __builtin_ia32_vfmaddps256(-(a), b, c)
#else
#define ACT_FNMA8(a, b, c) __builtin_ia32_vfnmaddps256(a, b, c)
#endif
#define ACT_RINT8(a) __builtin_ia32_roundps256(a, 8)
#define ACT_CVTT8(a) __builtin_ia32_cvttps2dq256(a)
#define ACT_SEL8(m, a, b) __builtin_ia32_blendvps256(b, a, (act_f8)(m))
#endif
#if defined(ACT_L)
#ifndef ACT_U
#define ACT_U 6 /* the blocks of ACT_EACH */
#endif
#define ACT_W (ACT_L * ACT_U)
typedef struct { act_f8 v[ACT_U]; } act_v;
typedef struct { act_i8 v[ACT_U]; } act_m;
#if ACT_U == 6
#define ACT_EACH(T, ...)                                                             \
    T r_;                                                                            \
    { enum { j_ = 0 }; r_.v[j_] = __VA_ARGS__; }                                     \
    { enum { j_ = 1 }; r_.v[j_] = __VA_ARGS__; }                                     \
    { enum { j_ = 2 }; r_.v[j_] = __VA_ARGS__; }                                     \
    { enum { j_ = 3 }; r_.v[j_] = __VA_ARGS__; }                                     \
    { enum { j_ = 4 }; r_.v[j_] = __VA_ARGS__; }                                     \
    { enum { j_ = 5 }; r_.v[j_] = __VA_ARGS__; }                                     \
    return r_
#else /* ACT_U == 4 */
#define ACT_EACH(T, ...)                                                             \
    T r_;                                                                            \
    { enum { j_ = 0 }; r_.v[j_] = __VA_ARGS__; }                                     \
    { enum { j_ = 1 }; r_.v[j_] = __VA_ARGS__; }                                     \
    { enum { j_ = 2 }; r_.v[j_] = __VA_ARGS__; }                                     \
    { enum { j_ = 3 }; r_.v[j_] = __VA_ARGS__; }                                     \
    return r_
#endif
#define ACT_OP2(name, ...) \
    EMBER_INLINE act_v name(act_v a, act_v b) { ACT_EACH(act_v, __VA_ARGS__); }
EMBER_INLINE act_v act_c(float c) { ACT_EACH(act_v, (act_f8){0} + c); }
typedef float act_f8u __attribute__((vector_size(ACT_L * 4), may_alias, aligned(1)));
EMBER_INLINE act_f8 act_ld8(const float *p) { return *(const act_f8u *)p; }
EMBER_INLINE act_v act_ld(const float *p) { ACT_EACH(act_v, act_ld8(p + ACT_L * j_)); }
EMBER_INLINE void act_st(float *p, act_v a) {
    for (int j = 0; j < ACT_U; j++) *(act_f8u *)(p + ACT_L * j) = a.v[j];
}
ACT_OP2(act_add, a.v[j_] + b.v[j_])
ACT_OP2(act_sub, a.v[j_] - b.v[j_])
ACT_OP2(act_mul, a.v[j_] * b.v[j_])
ACT_OP2(act_div, a.v[j_] / b.v[j_])
ACT_OP2(act_min, ACT_MIN8(a.v[j_], b.v[j_]))
ACT_OP2(act_max, ACT_MAX8(a.v[j_], b.v[j_]))
EMBER_INLINE act_v act_fma(act_v a, act_v b, act_v c) {
    ACT_EACH(act_v, ACT_FMA8(a.v[j_], b.v[j_], c.v[j_]));
}
EMBER_INLINE act_v act_fnma(act_v a, act_v b, act_v c) {
    ACT_EACH(act_v, ACT_FNMA8(a.v[j_], b.v[j_], c.v[j_]));
}
EMBER_INLINE act_v act_abs(act_v a) { ACT_EACH(act_v, (act_f8)((act_i8)a.v[j_] & INT32_MAX)); }
EMBER_INLINE act_v act_nabs(act_v a) { ACT_EACH(act_v, (act_f8)((act_i8)a.v[j_] | INT32_MIN)); }
EMBER_INLINE act_v act_neg(act_v a) { ACT_EACH(act_v, (act_f8)((act_i8)a.v[j_] ^ INT32_MIN)); }
EMBER_INLINE act_v act_rint(act_v a) { ACT_EACH(act_v, ACT_RINT8(a.v[j_])); }
/* 2^(nf + k) for integral nf with nf + k + 127 in [1, 254] (other nf: any bits) */
EMBER_INLINE act_v act_pow2(act_v nf, int k) {
    ACT_EACH(act_v, (act_f8)((act_u8)(ACT_CVTT8(nf.v[j_]) + (k + 127)) << 23));
}
EMBER_INLINE act_m act_lt(act_v a, act_v b) { ACT_EACH(act_m, a.v[j_] < b.v[j_]); }
EMBER_INLINE act_m act_ge(act_v a, act_v b) { ACT_EACH(act_m, a.v[j_] >= b.v[j_]); }
EMBER_INLINE act_m act_eq(act_v a, act_v b) { ACT_EACH(act_m, a.v[j_] == b.v[j_]); }
EMBER_INLINE act_v act_sel(act_m m, act_v a, act_v b) {
    ACT_EACH(act_v, ACT_SEL8(m.v[j_], a.v[j_], b.v[j_]));
}
#else
#define ACT_W 1
typedef float act_v;
typedef int act_m;
EMBER_INLINE act_v act_c(float c) { return c; }
EMBER_INLINE act_v act_ld(const float *p) { return *p; }
EMBER_INLINE void act_st(float *p, act_v v) { *p = v; }
EMBER_INLINE act_v act_add(act_v a, act_v b) { return a + b; }
EMBER_INLINE act_v act_sub(act_v a, act_v b) { return a - b; }
EMBER_INLINE act_v act_mul(act_v a, act_v b) { return a * b; }
EMBER_INLINE act_v act_div(act_v a, act_v b) { return a / b; }
#if defined(FP_FAST_FMAF) || defined(__FP_FAST_FMAF) /* fused, as the vectors' (vectorizes) */
EMBER_INLINE act_v act_fma(act_v a, act_v b, act_v c) { return fmaf(a, b, c); }
EMBER_INLINE act_v act_fnma(act_v a, act_v b, act_v c) { return fmaf(-a, b, c); }
#else
EMBER_INLINE act_v act_fma(act_v a, act_v b, act_v c) { return a * b + c; }
EMBER_INLINE act_v act_fnma(act_v a, act_v b, act_v c) { return c - a * b; }
#endif
EMBER_INLINE act_v act_min(act_v a, act_v b) { return a < b ? a : b; }
EMBER_INLINE act_v act_max(act_v a, act_v b) { return a > b ? a : b; }
EMBER_INLINE act_v act_abs(act_v a) { return fabsf(a); }
EMBER_INLINE act_v act_nabs(act_v a) { return -fabsf(a); }
EMBER_INLINE act_v act_neg(act_v a) { return -a; }
EMBER_INLINE act_v act_rint(act_v a) { return rintf(a); }
EMBER_INLINE act_v act_pow2(act_v nf, int k) { /* NaN kept out of the conversion */
    return ember_bits2f((uint32_t)((int32_t)(nf == nf ? nf : 0.0f) + k + 127) << 23);
}
EMBER_INLINE act_m act_lt(act_v a, act_v b) { return a < b; }
EMBER_INLINE act_m act_ge(act_v a, act_v b) { return a >= b; }
EMBER_INLINE act_m act_eq(act_v a, act_v b) { return a == b; }
EMBER_INLINE act_v act_sel(act_m m, act_v a, act_v b) { return m ? a : b; }
#endif

#define ACT_LOG2E 1.44269504088896341f
/* exp(t) as ember_expf computes it, for t already clamped, nf = rintf(t log2(e)) (computed
   by the caller, who may fold a constant factor of t into it), and sc = 2^-k: the
   polynomial carries sc, so that the one multiplication by 2^(n + k) (normal: n + k + 127
   in [1, 254]) rounds like ember_expf's two */
EMBER_INLINE act_v act_expk(act_v t, act_v nf, float sc, int k) {
    act_v r = act_fnma(nf, act_c(0.693359375f), t);
    r = act_fnma(nf, act_c(-2.12194440e-4f), r);
    act_v p = act_fma(act_c(1.9875691500e-4f * sc), r, act_c(1.3981999507e-3f * sc));
    p = act_fma(p, r, act_c(8.3334519073e-3f * sc));
    p = act_fma(p, r, act_c(4.1665795894e-2f * sc));
    p = act_fma(p, r, act_c(1.6666665459e-1f * sc));
    p = act_fma(p, r, act_c(5.0000001201e-1f * sc));
    act_v y = act_add(act_fma(p, act_mul(r, r), act_mul(r, act_c(sc))), act_c(sc));
    return act_mul(y, act_pow2(nf, k));
}
/* exp(-|x|) (NaN stays NaN) */
EMBER_INLINE act_v act_exp_nabs(act_v x) {
    act_v t = act_max(act_c(-105.0f), act_nabs(x));
    return act_expk(t, act_rint(act_mul(t, act_c(ACT_LOG2E))), 0x1p-64f, 64);
}
/* erfc(x): ember_erfcf (x = NaN: NaN; |x| >= 12: exp's argument is below -105, so 0) */
EMBER_INLINE act_v act_erfc(act_v x) {
    act_v yc = act_min(act_c(12.0f), act_abs(x));
    act_v s = act_div(act_c(1.0f), act_fma(act_c(0.5f), yc, act_c(1.0f)));
    act_v p = act_fma(act_c(0.17087277f), s, act_c(-0.82215223f));
    p = act_fma(p, s, act_c(1.48851587f));
    p = act_fma(p, s, act_c(-1.13520398f));
    p = act_fma(p, s, act_c(0.27886807f));
    p = act_fma(p, s, act_c(-0.18628806f));
    p = act_fma(p, s, act_c(0.09678418f));
    p = act_fma(p, s, act_c(0.37409196f));
    p = act_fma(p, s, act_c(1.00002368f));
    p = act_fma(p, s, act_c(-1.26551223f));
    act_v t = act_max(act_c(-105.0f), act_fnma(yc, yc, p));
    act_v r = act_mul(s, act_expk(t, act_rint(act_mul(t, act_c(ACT_LOG2E))), 0x1p-64f, 64));
    return act_sel(act_lt(x, act_c(0.0f)), act_sub(act_c(2.0f), r), r);
}
/* u = sqrt(2/pi) (x + 0.044715 x^3), as v (v^2 C + 1) K */
EMBER_INLINE act_v act_gelu_u(act_v v, act_v v2) {
    return act_mul(act_mul(act_fma(v2, act_c((float)GELU_C), act_c(1.0f)), v),
                   act_c((float)GELU_K));
}

EMBER_INLINE act_v act_gelu_tanh(act_v v) {
    act_v u = act_gelu_u(v, act_mul(v, v));
    /* 1 + exp(-2u): -2u clamped to [-20, 88.8], where 1 + e is 1 and e is inf beyond */
    act_v uc = act_min(act_max(u, act_c(-44.4f)), act_c(10.0f));
    act_v nf = act_rint(act_mul(uc, act_c(-2.0f * ACT_LOG2E)));
    act_v e = act_expk(act_mul(uc, act_c(-2.0f)), nf, 2.0f, -1);
    return act_div(v, act_add(act_c(1.0f), e));
}
EMBER_INLINE act_v act_gelu_tanh_grad(act_v g, act_v v) {
    act_v v2 = act_mul(v, v), u = act_gelu_u(v, v2);
    act_v du = act_mul(act_fma(v2, act_c(3 * (float)GELU_C), act_c(1.0f)),
                       act_c((float)GELU_K));
    act_v au = act_min(act_abs(u), act_c(52.5f)); /* -2|u| >= -105 */
    act_v nf = act_rint(act_mul(au, act_c(-2.0f * ACT_LOG2E)));
    act_v e = act_expk(act_mul(au, act_c(-2.0f)), nf, 0x1p-64f, 64);
    act_v r = act_div(act_c(1.0f), act_add(act_c(1.0f), e)), er = act_mul(e, r);
    act_v s = act_sel(act_ge(u, act_c(0.0f)), r, er); /* sigmoid(2u) */
    act_v w = act_mul(er, r); /* e / (1 + e)^2: 0 beyond |u| ~ 44, keep inf * 0 out */
    act_v d = act_mul(act_mul(act_add(v, v), du), w);
    d = act_sel(act_eq(w, act_c(0.0f)), act_mul(act_c(0.0f), v), d);
    return act_mul(act_add(s, d), g);
}
EMBER_INLINE act_v act_gelu(act_v v) {
    return act_mul(act_mul(act_erfc(act_mul(v, act_c((float)-SQRT1_2))), act_c(0.5f)), v);
}
EMBER_INLINE act_v act_gelu_grad(act_v g, act_v v) {
    act_v cdf = act_mul(act_erfc(act_mul(v, act_c((float)-SQRT1_2))), act_c(0.5f));
    act_v t = act_max(act_c(-105.0f), act_mul(act_mul(v, v), act_c(-0.5f)));
    act_v e = act_expk(t, act_rint(act_mul(t, act_c(ACT_LOG2E))), 0x1p-64f, 64);
    act_v pdf = act_mul(act_mul(e, act_c((float)INV_SQRT_2PI)), v);
    return act_mul(act_add(pdf, cdf), g);
}
EMBER_INLINE act_v act_sigmoid(act_v v) {
    act_v e = act_exp_nabs(v);
    return act_div(act_sel(act_ge(v, act_c(0.0f)), act_c(1.0f), e), act_add(act_c(1.0f), e));
}
EMBER_INLINE act_v act_silu(act_v v) { return act_mul(act_sigmoid(v), v); }
EMBER_INLINE act_v act_silu_grad(act_v g, act_v v) {
    act_v s = act_sigmoid(v);
    return act_mul(act_mul(act_fma(act_sub(act_c(1.0f), s), v, act_c(1.0f)), s), g);
}
EMBER_INLINE act_v act_sigmoid_grad(act_v g, act_v y) {
    return act_mul(act_mul(act_sub(act_c(1.0f), y), y), g);
}
/* tanh: ember_tanhf (odd polynomial for |x| < 0.625, else 1 - 2 / (exp(2|x|) + 1)) */
EMBER_INLINE act_v act_tanh(act_v x) {
    act_v ax = act_abs(x), z = act_mul(x, x);
    act_v p = act_fma(act_c(-5.70498872745e-3f), z, act_c(2.06390887954e-2f));
    p = act_fma(p, z, act_c(-5.37397155531e-2f));
    p = act_fma(p, z, act_c(1.33314422036e-1f));
    p = act_fma(p, z, act_c(-3.33332819422e-1f));
    act_v small = act_mul(x, act_fma(p, z, act_c(1.0f)));
    act_v tc = act_min(act_c(44.0f), ax); /* NaN stays NaN */
    act_v nf = act_rint(act_mul(tc, act_c(2.0f * ACT_LOG2E)));
    act_v e = act_expk(act_add(tc, tc), nf, 1.0f, 0);
    act_v big = act_sub(act_c(1.0f), act_div(act_c(2.0f), act_add(e, act_c(1.0f))));
    big = act_sel(act_lt(x, act_c(0.0f)), act_neg(big), big);
    return act_sel(act_lt(ax, act_c(0.625f)), small, big);
}
EMBER_INLINE act_v act_tanh_grad(act_v g, act_v y) {
    return act_mul(act_fnma(y, y, act_c(1.0f)), g);
}

/* for (i = 0; i < n; i++) y[i] = F(x[i]) (ACT_UNARY) or dx[i] = F(g[i], a[i]) (ACT_BINARY),
   in chunks of about 16384 (whole vectors) spread over nt threads, ACT_W at a time; the
   last, partial vector goes through zero-padded copies, by the same code (F is inlined
   once) */
#define ACT_CHUNK (16384 / ACT_W * ACT_W)
#define ACT_CHUNKS(n, nt, ...)                                                       \
    do {                                                                             \
        i64 n_ = (n), chunks_ = (n_ + ACT_CHUNK - 1) / ACT_CHUNK;                    \
        PARALLEL_FOR(nt)                                                             \
        for (i64 c_ = 0; c_ < chunks_; c_++) {                                       \
            i64 lo_ = c_ * ACT_CHUNK, hi_ = lo_ + ACT_CHUNK < n_ ? lo_ + ACT_CHUNK : n_; \
            __VA_ARGS__                                                              \
        }                                                                            \
    } while (0)
#if ACT_W > 1
#define ACT_UNARY(n, nt, x, y, F)                                                    \
    ACT_CHUNKS(n, nt, float xb_[ACT_W]; float yb_[ACT_W];                            \
        for (i64 i = lo_; i < hi_; i += ACT_W) {                                     \
            const float *xp_ = x + i;                                                \
            float *yp_ = y + i;                                                      \
            size_t k_ = (size_t)(hi_ - i < ACT_W ? hi_ - i : 0) * sizeof(float);     \
            if (k_) {                                                                \
                memset(xb_, 0, sizeof xb_);                                          \
                memcpy(xb_, xp_, k_);                                                \
                xp_ = xb_;                                                           \
                yp_ = yb_;                                                           \
            }                                                                        \
            act_st(yp_, F(act_ld(xp_)));                                             \
            if (k_) memcpy(y + i, yb_, k_);                                          \
        })
#define ACT_BINARY(n, nt, g, a, dx, F)                                               \
    ACT_CHUNKS(n, nt, float gb_[ACT_W]; float ab_[ACT_W]; float db_[ACT_W];          \
        for (i64 i = lo_; i < hi_; i += ACT_W) {                                     \
            const float *gp_ = g + i, *ap_ = a + i;                                  \
            float *dp_ = dx + i;                                                     \
            size_t k_ = (size_t)(hi_ - i < ACT_W ? hi_ - i : 0) * sizeof(float);     \
            if (k_) {                                                                \
                memset(gb_, 0, sizeof gb_);                                          \
                memset(ab_, 0, sizeof ab_);                                          \
                memcpy(gb_, gp_, k_);                                                \
                memcpy(ab_, ap_, k_);                                                \
                gp_ = gb_;                                                           \
                ap_ = ab_;                                                           \
                dp_ = db_;                                                           \
            }                                                                        \
            act_st(dp_, F(act_ld(gp_), act_ld(ap_)));                                \
            if (k_) memcpy(dx + i, db_, k_);                                         \
        })
#else
#define ACT_UNARY(n, nt, x, y, F)                                                    \
    ACT_CHUNKS(n, nt, SIMD for (i64 i = lo_; i < hi_; i++) act_st(y + i, F(act_ld(x + i)));)
#define ACT_BINARY(n, nt, g, a, dx, F)                                               \
    ACT_CHUNKS(n, nt, SIMD for (i64 i = lo_; i < hi_; i++)                           \
        act_st(dx + i, F(act_ld(g + i), act_ld(a + i)));)
#endif

static int act_forward_f32(const float *restrict x, float *restrict y, i64 n, int kind,
                           int nt) {
    switch (kind) {
    case 0: ACT_UNARY(n, nt, x, y, act_gelu_tanh); return 0;
    case 1: ACT_UNARY(n, nt, x, y, act_gelu); return 0;
    case 2: ACT_UNARY(n, nt, x, y, act_silu); return 0;
    case 3: ACT_UNARY(n, nt, x, y, act_sigmoid); return 0;
    case 4: ACT_UNARY(n, nt, x, y, act_tanh); return 0;
    }
    return -1;
}

static int act_backward_f32(const float *restrict g, const float *restrict a,
                            float *restrict dx, i64 n, int kind, int nt) {
    switch (kind) {
    case 0: ACT_BINARY(n, nt, g, a, dx, act_gelu_tanh_grad); return 0;
    case 1: ACT_BINARY(n, nt, g, a, dx, act_gelu_grad); return 0;
    case 2: ACT_BINARY(n, nt, g, a, dx, act_silu_grad); return 0;
    case 3: ACT_BINARY(n, nt, g, a, dx, act_sigmoid_grad); return 0;
    case 4: ACT_BINARY(n, nt, g, a, dx, act_tanh_grad); return 0;
    }
    return -1;
}
"""

BODY = r"""
EMBER_API int FN(activation_forward)(const scalar *restrict x, scalar *restrict y, i64 n, int kind,
                                     int nt) {
    if (sizeof(scalar) == sizeof(float))
        return act_forward_f32((const float *)x, (float *)y, n, kind, nt);
    const scalar K = (scalar)GELU_K, C = (scalar)GELU_C, S = (scalar)SQRT1_2;
    switch (kind) {
    case 0:
        ELEMENTWISE(n, nt, i, {
            scalar v = x[i];
            scalar u = v * (v * v * C + 1) * K;
            y[i] = v / (1 + EXP(-2 * u));
        });
        return 0;
    case 1:
        ELEMENTWISE(n, nt, i, { y[i] = ERFC(x[i] * -S) * LIT(0.5) * x[i]; });
        return 0;
    case 2:
        ELEMENTWISE(n, nt, i, {
            scalar v = x[i];
            scalar e = EXP(-ABS(v));
            y[i] = (v >= 0 ? 1 : e) / (1 + e) * v;
        });
        return 0;
    case 3:
        ELEMENTWISE(n, nt, i, {
            scalar v = x[i];
            scalar e = EXP(-ABS(v));
            y[i] = (v >= 0 ? 1 : e) / (1 + e);
        });
        return 0;
    case 4:
        ELEMENTWISE(n, nt, i, { y[i] = TANH(x[i]); });
        return 0;
    }
    return -1;
}

EMBER_API int FN(activation_backward)(const scalar *restrict g, const scalar *restrict a,
                                      scalar *restrict dx, i64 n, int kind, int nt) {
    if (sizeof(scalar) == sizeof(float))
        return act_backward_f32((const float *)g, (const float *)a, (float *)dx, n, kind, nt);
    const scalar K = (scalar)GELU_K, C = (scalar)GELU_C, S = (scalar)SQRT1_2;
    const scalar P = (scalar)INV_SQRT_2PI;
    switch (kind) {
    case 0:
        ELEMENTWISE(n, nt, i, {
            scalar v = a[i], v2 = v * v;
            scalar u = (v2 * C + 1) * v * K;
            scalar du = (v2 * (3 * C) + 1) * K;
            scalar e = EXP(-2 * ABS(u)), r = 1 / (1 + e);
            scalar s = (u >= 0 ? 1 : e) * r; /* sigmoid(2u) = (1 + tanh(u)) / 2 */
            scalar w = e * r * r; /* 0 beyond |u| ~ 44: keep x^2 overflow out (inf * 0) */
            dx[i] = (s + (w == 0 ? 0 * v : 2 * v * du * w)) * g[i];
        });
        return 0;
    case 1:
        ELEMENTWISE(n, nt, i, {
            scalar v = a[i];
            scalar cdf = ERFC(v * -S) * LIT(0.5);
            scalar pdf = EXP(v * v * LIT(-0.5)) * P * v;
            dx[i] = (pdf + cdf) * g[i];
        });
        return 0;
    case 2:
        ELEMENTWISE(n, nt, i, {
            scalar v = a[i];
            scalar e = EXP(-ABS(v));
            scalar s = (v >= 0 ? 1 : e) / (1 + e);
            dx[i] = ((1 - s) * v + 1) * s * g[i];
        });
        return 0;
    case 3:
        ELEMENTWISE(n, nt, i, { dx[i] = (1 - a[i]) * a[i] * g[i]; });
        return 0;
    case 4:
        ELEMENTWISE(n, nt, i, { dx[i] = (1 - a[i] * a[i]) * g[i]; });
        return 0;
    }
    return -1;
}
"""

UNIT = Unit(
    name="activation",
    functions=(
        "int activation_forward(const scalar *x, scalar *y, i64 n, int kind, int nt)",
        "int activation_backward(const scalar *g, const scalar *a, scalar *dx, i64 n, int kind,"
        " int nt)",
    ),
    body=BODY,
    shared=SHARED,
)
