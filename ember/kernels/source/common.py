"""The C text every kernel unit starts with: includes, the export macro, the thread clause,
and ember's own vectorizable ``expf``, ``tanhf`` and ``erfcf``.

Why not ``-ffast-math``: it lets GCC call glibc's vector ``expf``, but it also assumes that no
value is ever inf or NaN (a causal attention mask is full of ``-inf``), and GCC before 13
links ``crtfastmath.o`` into a shared library built with it, which turns on flush-to-zero for
the whole process the moment the library is loaded (NumPy's denormals would silently become
zeros). The kernels are compiled with IEEE semantics instead (only ``-fno-math-errno
-fno-trapping-math``) and use the functions below, written so that GCC and Clang vectorize
them (branch-free, bit casts through ``memcpy``), with inf, -inf and NaN handled explicitly:

* ``ember_expf``: Cephes' range reduction and degree-6 polynomial (about 1 ulp), the power
  of two applied in two halves so that results down to the smallest denormal round once,
  like libm's; the input is clamped to ``[-105, 88.8]``, where the result already rounds to
  0 or overflows to inf, so ``exp(+inf) = inf``, ``exp(-inf) = 0`` need no special case;
  ``exp(NaN) = NaN``.
* ``ember_tanhf``: Cephes' odd polynomial for ``|x| < 0.625`` (no cancellation near 0), else
  ``1 - 2 / (exp(2|x|) + 1)`` with the sign restored; ``tanh(+-inf) = +-1``.
* ``ember_erfcf``: ``s * exp(-y^2 + P(s))``, ``s = 1 / (1 + y/2)`` (Numerical Recipes'
  Chebyshev fit, relative error below 1.2e-7 everywhere); in the far tail the rounding of
  ``y*y`` costs a relative ``y^2 * 6e-8``, the same as the rounding of ``y`` itself does.

float64 kernels call libm (``exp``, ``tanh``, ``erfc``): accuracy first.

Each unit's body is written once against the macros ``scalar`` (the element type), ``FN(name)``
(the exported name with its dtype suffix), ``EXP``/``LOG``/``SQRT``/``ABS``/``TANH``/``ERFC`` and
``LIT(c)`` (a literal of the element type), and instantiated for float32 and float64 by
:func:`ember.kernels.source.render`.

Example:
    >>> "ember_expf" in HEADER
    True
"""

from __future__ import annotations

__all__ = ["HEADER", "PRELUDES", "POSTLUDE"]

HEADER = r"""
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* sched_getcpu and the CPU_* sets, for ember_team_place */
#endif
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

typedef int64_t i64;

#if defined(_WIN32)
#define EMBER_API __declspec(dllexport)
#else
#define EMBER_API __attribute__((visibility("default")))
#endif

#if defined(__GNUC__) || defined(__clang__)
#define EMBER_INLINE static inline __attribute__((always_inline))
#else
#define EMBER_INLINE static inline
#endif

#define EMBER_STR(x) #x
#define EMBER_PRAGMA(x) _Pragma(EMBER_STR(x))
/* a parallel loop over independent items; nt = 1 runs it on the calling thread only */
#ifdef _OPENMP
#define PARALLEL_FOR(nt) EMBER_PRAGMA(omp parallel for num_threads(nt) if(nt > 1) schedule(static))
#define PARALLEL_FOR_DYNAMIC(nt) EMBER_PRAGMA(omp parallel for num_threads(nt) if(nt > 1) schedule(dynamic, 1))
#define THREAD_ID() omp_get_thread_num()
#else
#define PARALLEL_FOR(nt)
#define PARALLEL_FOR_DYNAMIC(nt)
#define THREAD_ID() 0
#endif
/* Where a parallel region's threads run. On a VM (the 2-vCPU test machine's KVM guest),
   Linux wakes a passively waiting OpenMP thread on the CPU of the thread that woke it
   whenever the other vCPU is idle, since an idle vCPU, halted in the host, counts as
   preempted: the two threads then take turns on one CPU, and the region runs at half
   speed or worse (a thread spinning at a barrier waits for one that cannot run). Once
   there a thread stays: its last CPU is busy at every wake-up. Some processes started in
   that state and never left it (2000 of 2000 regions on one CPU), others never entered it.
   So a worker that finds itself on the calling thread's CPU (EMBER_THREAD_CPU(), read by
   the caller before the region) moves off it, for good: its allowed CPUs become the ones
   it started with, less the caller's. The caller is never pinned. */
#if defined(__linux__) && defined(_OPENMP)
#include <sched.h>
#define EMBER_THREAD_CPU() sched_getcpu()
static __thread cpu_set_t ember_allowed;
static __thread int ember_allowed_known;
static __attribute__((unused)) void ember_team_place(int caller_cpu) {
    if (omp_get_thread_num() == 0) return;
    if (!ember_allowed_known) /* the CPUs this thread started with, before any move */
        ember_allowed_known = sched_getaffinity(0, sizeof ember_allowed, &ember_allowed) ? -1 : 1;
    if (ember_allowed_known < 0 || caller_cpu < 0 || sched_getcpu() != caller_cpu) return;
    cpu_set_t others = ember_allowed;
    CPU_CLR(caller_cpu, &others);
    if (CPU_COUNT(&others) > 0) sched_setaffinity(0, sizeof others, &others);
}
#else
#define EMBER_THREAD_CPU() (-1)
#define ember_team_place(cpu) ((void)(cpu))
#endif
/* ReLU as the relu op computes it (NumPy's maximum(v, 0)): v where v > 0 or v is NaN, else
   +0; on a scalar, and on a GCC vector v (its comparison masks select the lanes) */
#define EMBER_RELU(v) (((v) > 0) | ((v) != (v)) ? (v) : 0)
#define EMBER_RELU_VEC(T, v) ((T)((__typeof__((v) > 0))(v) & (((v) > 0) | ((v) != (v)))))
#define SIMD EMBER_PRAGMA(omp simd)
#define SIMD_SUM(...) EMBER_PRAGMA(omp simd reduction(+:__VA_ARGS__))
#define SIMD_MAX(v) EMBER_PRAGMA(omp simd reduction(max:v))

/* for (i = 0; i < n; i++) { ... }, vectorized, in chunks of 16384 spread over nt threads */
#define ELEMENTWISE(n, nt, i, ...)                                                   \
    do {                                                                             \
        i64 n_ = (n), chunks_ = (n_ + 16383) / 16384;                                \
        PARALLEL_FOR(nt)                                                             \
        for (i64 c_ = 0; c_ < chunks_; c_++) {                                       \
            i64 lo_ = c_ * 16384, hi_ = lo_ + 16384 < n_ ? lo_ + 16384 : n_;         \
            SIMD                                                                     \
            for (i64 i = lo_; i < hi_; i++) { __VA_ARGS__; }                          \
        }                                                                            \
    } while (0)

EMBER_INLINE float ember_bits2f(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }

/* exp(x) in float: Cephes' reduction x = n ln2 + r and degree-6 polynomial (about 1 ulp).
   x is clamped to [-105, 88.8], where exp already rounds to 0 and overflows to inf, so the
   ends need no special case; NaN is kept out of the integer conversion and put back. */
EMBER_INLINE float ember_expf(float x) {
    float xc = 88.8f < x ? 88.8f : x; /* NaN compares false: stays NaN here */
    xc = -105.0f > xc ? -105.0f : xc;
    xc = x != x ? 0.0f : xc;
    float nf = rintf(xc * 1.44269504088896341f); /* rintf, not a cast: GCC vectorizes it */
    int32_t n = (int32_t)nf;
    float r = xc - nf * 0.693359375f;
    r = r - nf * -2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    float y = p * (r * r) + r + 1.0f;
    int32_t n1 = n >> 1, n2 = n - n1; /* 2^n1 * 2^n2: both normal, denormal results round once */
    y = y * ember_bits2f((uint32_t)(n1 + 127) << 23);
    y = y * ember_bits2f((uint32_t)(n2 + 127) << 23);
    return x != x ? x : y;
}

/* tanh(x) in float: odd polynomial near 0, 1 - 2 / (exp(2|x|) + 1) elsewhere */
EMBER_INLINE float ember_tanhf(float x) {
    float ax = fabsf(x);
    float z = x * x;
    float p = -5.70498872745e-3f;
    p = p * z + 2.06390887954e-2f;
    p = p * z - 5.37397155531e-2f;
    p = p * z + 1.33314422036e-1f;
    p = p * z - 3.33332819422e-1f;
    float small = x * (1.0f + p * z); /* keeps the sign of -0 */
    float e = ember_expf(2.0f * (ax < 44.0f ? ax : 44.0f));
    float big = 1.0f - 2.0f / (e + 1.0f);
    big = x < 0.0f ? -big : big;
    float y = ax < 0.625f ? small : big;
    return x != x ? x : y;
}

/* erfc(x) in float: Numerical Recipes' erfcc (relative error < 1.2e-7) */
EMBER_INLINE float ember_erfcf(float x) {
    float y = fabsf(x);
    float yc = y < 12.0f ? y : 12.0f;
    float s = 1.0f / (1.0f + 0.5f * yc);
    float p = 0.17087277f;
    p = p * s - 0.82215223f;
    p = p * s + 1.48851587f;
    p = p * s - 1.13520398f;
    p = p * s + 0.27886807f;
    p = p * s - 0.18628806f;
    p = p * s + 0.09678418f;
    p = p * s + 0.37409196f;
    p = p * s + 1.00002368f;
    p = p * s - 1.26551223f;
    float r = s * ember_expf(p - yc * yc);
    r = y >= 12.0f ? 0.0f : r;
    r = x < 0.0f ? 2.0f - r : r;
    return x != x ? x : r;
}
"""

# one prelude per instantiated element type: (C type, name suffix, macro definitions)
PRELUDES = {
    "f32": r"""
#define scalar float
#define FN(name) ember_##name##_f32
#define EXP ember_expf
#define LOG logf
#define SQRT sqrtf
#define ABS fabsf
#define TANH ember_tanhf
#define ERFC ember_erfcf
#define LIT(c) c##f
""",
    "f64": r"""
#define scalar double
#define FN(name) ember_##name##_f64
#define EXP exp
#define LOG log
#define SQRT sqrt
#define ABS fabs
#define TANH tanh
#define ERFC erfc
#define LIT(c) c
""",
}

POSTLUDE = r"""
#undef scalar
#undef FN
#undef EXP
#undef LOG
#undef SQRT
#undef ABS
#undef TANH
#undef ERFC
#undef LIT
"""
