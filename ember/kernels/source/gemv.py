"""C kernel of a chain of linear layers on a few rows: ``y = act_L(... act_1(x W_1^T + b_1)
... W_L^T + b_L)``, for ``x`` of ``m`` rows (batch-1 inference: ``m = 1``), each ``W_l``
``(N_l, K_l)`` row-major as PyTorch stores a linear layer's weight, each ``act_l`` one of
:data:`ACTS`: none, ReLU, tanh, sigmoid, SiLU or GELU (exact or tanh), computed in the
order of the ops' NumPy formulas (with ember's ``expf``/``tanhf``/``erfcf`` in float32).

At a few rows a linear layer is a matrix-vector product: it reads every weight once and
does one multiply-add per weight, so it runs at the speed the weights stream from cache or
memory. Two things make it faster than one BLAS call per layer:

* **No packing, no transposes.** Each output is the dot product of one weight row with
  ``x``, read in place: four weight rows at a time, each against a vector accumulator
  (16 floats or 8 doubles: one AVX-512 register, two AVX2 ones, with the same lanes and so
  the same sums either way), summed across lanes at the end of the row. The bias and the
  activation are applied as the outputs are stored.
* **One parallel region for the whole chain.** Layers are separated by a barrier that
  spins up to 100 us before it sleeps, so the threads are woken once per call instead
  of once per layer. Each thread computes the same rows of each layer in every call, so
  its share of the weights stays in the cache nearest to its core. (Rows claimed
  dynamically from a shared counter, which would hide a late wake-up, made W4's chain 40%
  slower on two threads: the weights then moved between the cores' caches.)

Every output is computed by one thread with the same code, in the same order, whatever the
thread count: results are bit-identical on 1 and 2 threads. No product is skipped: a zero
weight times inf gives NaN, as in NumPy; ReLU keeps NaN (``maximum(v, 0)``), and the
other activations give what the ops give at inf and NaN.

Example:
    >>> from ember.kernels.source.gemv import UNIT
    >>> UNIT.name
    'gemv'
"""

from __future__ import annotations

from . import Unit

MAX_LAYERS = 32  # layers of one call (the kernel's per-layer counters live on its stack)
# the activation codes the kernel takes: the ops' names ("gelu_tanh": gelu, approximate="tanh")
ACTS = {"none": 0, "relu": 1, "tanh": 2, "sigmoid": 3, "silu": 4, "gelu": 5, "gelu_tanh": 6}

SHARED = r"""
#define GEMV_MAX_LAYERS 32
#ifndef GEMV_SPIN_NS
#define GEMV_SPIN_NS 100000 /* ns a waiting thread spins before it sleeps */
#endif
#include <time.h>
static i64 gemv_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (i64)ts.tv_sec * 1000000000 + ts.tv_nsec;
}
#if defined(__x86_64__) || defined(__i386__)
#define GEMV_PAUSE() __builtin_ia32_pause()
#elif defined(__aarch64__)
#define GEMV_PAUSE() __asm__ __volatile__("yield")
#else
#define GEMV_PAUSE() (void)0
#endif
#if defined(__linux__)
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <limits.h>
/* sleep while *addr == val (returns at once when it differs); wake every sleeper on addr */
#define GEMV_SLEEP(addr, val) syscall(SYS_futex, (addr), FUTEX_WAIT_PRIVATE, (val), NULL, NULL, 0)
#define GEMV_WAKE(addr) syscall(SYS_futex, (addr), FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0)
#elif defined(_WIN32)
#define GEMV_SLEEP(addr, val) (void)0
#define GEMV_WAKE(addr) (void)0
#else
#include <sched.h>
#define GEMV_SLEEP(addr, val) sched_yield()
#define GEMV_WAKE(addr) (void)0
#endif
/* a barrier of n threads: the last to arrive starts the next generation and wakes the
   sleepers; the others spin a little (the threads of one chain arrive close together),
   then sleep in the kernel (a futex on Linux) until it does. Sleeping, not yielding: with
   other processes busy on every core, a thread that yields stays runnable and takes turns
   with them, so each barrier waited a whole time slice for the thread it waits for (W4's
   GPT call took 184 ms instead of 0.86 ms beside two busy processes); a woken sleeper runs
   at once */
typedef struct { int count, gen, sleepers; } gemv_barrier;
static void gemv_wait(gemv_barrier *b, int n) {
    int gen = __atomic_load_n(&b->gen, __ATOMIC_ACQUIRE);
    if (__atomic_add_fetch(&b->count, 1, __ATOMIC_ACQ_REL) == n) {
        __atomic_store_n(&b->count, 0, __ATOMIC_RELAXED);
        __atomic_store_n(&b->gen, gen + 1, __ATOMIC_SEQ_CST);
        if (__atomic_load_n(&b->sleepers, __ATOMIC_SEQ_CST)) GEMV_WAKE(&b->gen);
        return;
    }
    i64 until = gemv_now_ns() + GEMV_SPIN_NS;
    for (int spins = 1; __atomic_load_n(&b->gen, __ATOMIC_ACQUIRE) == gen; spins++) {
        if (spins % 32 || gemv_now_ns() < until) {
            GEMV_PAUSE();
            continue;
        }
        /* counted before the futex compares gen: the last thread either sees the count
           and wakes this one, or has already moved gen on and the sleep returns at once */
        __atomic_add_fetch(&b->sleepers, 1, __ATOMIC_SEQ_CST);
        GEMV_SLEEP(&b->gen, gen);
        __atomic_sub_fetch(&b->sleepers, 1, __ATOMIC_SEQ_CST);
    }
}
static int gemv_team(void) {
#ifdef _OPENMP
    return omp_get_num_threads();
#else
    return 1;
#endif
}
"""

BODY = r"""
/* 64 bytes whatever the target: where vectors are 32 bytes, GCC splits each operation in
   two, lane by lane, so every build sums the same lanes in the same order. On AVX-512 the
   64-byte loads stream a weight from L2 faster (W4's 784 x 512 layer: 6.2 us on 2 cores
   against 6.9 with 32-byte loads) when it starts on a cache line, as ember allocates it */
typedef scalar FN(gv) __attribute__((vector_size(64)));
#define GV_N ((i64)(64 / sizeof(scalar)))

EMBER_INLINE scalar FN(gv_sum)(FN(gv) a) {
    scalar s = a[0];
    for (int i = 1; i < GV_N; i++) s += a[i];
    return s;
}

/* sigmoid as the op computes it: e = exp(-|v|), (v >= 0 ? 1 : e) / (1 + e) */
EMBER_INLINE scalar FN(gv_sigmoid)(scalar v) {
    scalar e = EXP(-ABS(v));
    return (v >= 0 ? LIT(1.0) : e) / (LIT(1.0) + e);
}

/* the activation `act` (see ACTS) of one output, in the order of the ops' NumPy formulas */
static scalar FN(gv_act)(scalar v, i64 act) {
    switch (act) {
    case 1: return EMBER_RELU(v);
    case 2: return TANH(v);
    case 3: return FN(gv_sigmoid)(v);
    case 4: return FN(gv_sigmoid)(v) * v;
    case 5: return ERFC(v * LIT(-0.7071067811865476)) * v * LIT(0.5);
    case 6: {
        scalar t = TANH(((v * v) * LIT(0.044715) + LIT(1.0)) * v * LIT(0.7978845608028654));
        return (t + LIT(1.0)) * v * LIT(0.5);
    }
    default: return v;
    }
}

/* outputs [j0, j1) of one layer, for each of the m rows of x (row stride ldx) into y (row
   stride ldy): y[r, j] = act(b[j] + dot(w[j, :k], x[r, :k])) */
static void FN(gemv_rows)(const scalar *x, i64 m, i64 ldx, const scalar *w, const scalar *b,
                          i64 act, scalar *y, i64 ldy, i64 k, i64 j0, i64 j1) {
    i64 kv = k - k % GV_N;
    i64 j = j0;
    for (; j + 4 <= j1; j += 4) {
        const scalar *w0 = w + j * k, *w1 = w0 + k, *w2 = w1 + k, *w3 = w2 + k;
        for (i64 r = 0; r < m; r++) {
            const scalar *xr = x + r * ldx;
            FN(gv) a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0}, xv, t;
            for (i64 i = 0; i < kv; i += GV_N) {
                memcpy(&xv, xr + i, sizeof xv);
                memcpy(&t, w0 + i, sizeof t); a0 += t * xv;
                memcpy(&t, w1 + i, sizeof t); a1 += t * xv;
                memcpy(&t, w2 + i, sizeof t); a2 += t * xv;
                memcpy(&t, w3 + i, sizeof t); a3 += t * xv;
            }
            scalar s[4] = {FN(gv_sum)(a0), FN(gv_sum)(a1), FN(gv_sum)(a2), FN(gv_sum)(a3)};
            for (i64 i = kv; i < k; i++) {
                s[0] += w0[i] * xr[i]; s[1] += w1[i] * xr[i];
                s[2] += w2[i] * xr[i]; s[3] += w3[i] * xr[i];
            }
            for (int q = 0; q < 4; q++) {
                scalar v = s[q] + (b ? b[j + q] : 0);
                y[r * ldy + j + q] = FN(gv_act)(v, act);
            }
        }
    }
    for (; j < j1; j++) {
        const scalar *w0 = w + j * k;
        for (i64 r = 0; r < m; r++) {
            const scalar *xr = x + r * ldx;
            FN(gv) a0 = {0}, xv, t;
            for (i64 i = 0; i < kv; i += GV_N) {
                memcpy(&xv, xr + i, sizeof xv);
                memcpy(&t, w0 + i, sizeof t); a0 += t * xv;
            }
            scalar s = FN(gv_sum)(a0);
            for (i64 i = kv; i < k; i++) s += w0[i] * xr[i];
            y[r * ldy + j] = FN(gv_act)(s + (b ? b[j] : 0), act);
        }
    }
}

/* The chain of `layers` linear layers on the m rows of x (row stride ldx): layer l maps
   dims[l] features to dims[l + 1] with the weight w[l] (dims[l + 1], dims[l]), the bias
   b[l] (or NULL) and the activation acts[l] (ACTS); the last writes y (m rows of
   dims[layers], contiguous). Returns 0, or -1 when the scratch for the intermediate layers
   cannot be allocated (nothing is written then). */
EMBER_API int FN(gemv_chain)(const scalar *x, i64 m, i64 ldx, i64 layers, const i64 *dims,
                             const i64 *acts, void *const *w, void *const *b, scalar *y,
                             int nt) {
    if (layers < 1 || layers > GEMV_MAX_LAYERS) return -1;
    i64 wide = 0;
    for (i64 l = 1; l < layers; l++) wide = dims[l] > wide ? dims[l] : wide;
    scalar *scratch = NULL;
    if (layers > 1) {
        scratch = (scalar *)malloc((size_t)(2 * m * wide) * sizeof(scalar));
        if (!scratch) return -1;
    }
    gemv_barrier bar = {0, 0};
    int caller_cpu = nt > 1 ? EMBER_THREAD_CPU() : -1;
#ifdef _OPENMP
#pragma omp parallel num_threads(nt) if(nt > 1)
#endif
    {
        ember_team_place(caller_cpu);
        int team = gemv_team(), me = THREAD_ID();
        const scalar *in = x;
        i64 ldi = ldx;
        for (i64 l = 0; l < layers; l++) {
            i64 k = dims[l], n = dims[l + 1];
            scalar *out = l == layers - 1 ? y : scratch + (l & 1) * m * wide;
            const scalar *wl = (const scalar *)w[l], *bl = (const scalar *)b[l];
            if (team == 1) {
                FN(gemv_rows)(in, m, ldi, wl, bl, acts[l], out, n, k, 0, n);
            } else {
                /* the same rows to the same thread in every call: its share of the weights
                   stays in the cache nearest to its core */
                i64 j0 = n * me / team / 4 * 4, j1 = me == team - 1 ? n : n * (me + 1) / team / 4 * 4;
                FN(gemv_rows)(in, m, ldi, wl, bl, acts[l], out, n, k, j0, j1);
                if (l + 1 < layers) gemv_wait(&bar, team);
            }
            in = out;
            ldi = n;
        }
    }
    free(scratch);
    return 0;
}
"""

UNIT = Unit(
    name="gemv",
    functions=(
        "int gemv_chain(const scalar *x, i64 m, i64 ldx, i64 layers, const i64 *dims,"
        " const i64 *acts, void *const *w, void *const *b, scalar *y, int nt)",
    ),
    body=BODY,
    shared=SHARED,
)
