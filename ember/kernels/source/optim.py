"""C kernels of the fused optimizer updates: SGD (momentum, dampening, Nesterov), Adam/AdamW
(AMSGrad) and RMSprop (centered, momentum), each over *all* the parameters of a group in one
call, as PyTorch's fused optimizers do.

Arguments are arrays of pointers (one per parameter: the parameter, its gradient, its state
buffers) and their sizes; the work is cut into chunks of 8192 elements across all
parameters and spread over the threads in one parallel region (no fork/join per parameter).
Every element follows the NumPy path's formulas and op order (``ember/ops/optim.py``), with
the scalars rounded to the element type as NumPy rounds a Python float, and the unit is
compiled with ``-ffp-contract=off`` (no fused multiply-add), so the two paths agree to the
last bit: inf and NaN propagate exactly as in NumPy (AMSGrad's running maximum included).
A state array that the update does not use (``max_exp_avg_sq`` without AMSGrad, the
momentum buffers without momentum) is passed as NULL. Each function returns 0, or -1 when
its chunk table cannot be allocated.

Example:
    >>> from ember.kernels.source.optim import UNIT
    >>> UNIT.flags
    ('-ffp-contract=off',)
"""

from __future__ import annotations

from . import Unit

SHARED = r"""
#define OPT_CHUNK 8192

/* starts[i]: the first chunk of parameter i (starts[count]: the total) */
static i64 *opt_chunks(const i64 *sizes, i64 count) {
    i64 *starts = (i64 *)malloc((size_t)(count + 1) * sizeof(i64));
    if (!starts) return NULL;
    starts[0] = 0;
    for (i64 i = 0; i < count; i++) starts[i + 1] = starts[i] + (sizes[i] + OPT_CHUNK - 1) / OPT_CHUNK;
    return starts;
}

/* the parameter that chunk c belongs to: the last i with starts[i] <= c */
static i64 opt_owner(const i64 *starts, i64 count, i64 c) {
    i64 lo = 0, hi = count;
    while (hi - lo > 1) {
        i64 mid = (lo + hi) / 2;
        if (starts[mid] <= c) lo = mid; else hi = mid;
    }
    return lo;
}

#define OPT_LOOP(nt, sizes, count, ...)                                           \
    do {                                                                          \
        i64 *starts_ = opt_chunks(sizes, count);                                  \
        if (!starts_) return -1;                                                  \
        i64 total_ = starts_[count];                                              \
        PARALLEL_FOR(nt)                                                          \
        for (i64 c_ = 0; c_ < total_; c_++) {                                     \
            i64 i = opt_owner(starts_, count, c_);                                \
            i64 lo = (c_ - starts_[i]) * OPT_CHUNK;                               \
            i64 hi = lo + OPT_CHUNK < sizes[i] ? lo + OPT_CHUNK : sizes[i];       \
            __VA_ARGS__                                                           \
        }                                                                         \
        free(starts_);                                                            \
    } while (0)
"""

BODY = r"""
/* the gradient after maximize and coupled weight decay (selects on loop invariants vectorize) */
#define OPT_GRAD(gj, pj) \
    (couple ? (maximize ? (pj) * wd - (gj) : (pj) * wd + (gj)) : (maximize ? -(gj) : (gj)))

/* avg.lerp_(target, weight) with PyTorch's two formulas (w: weight, wc: 1 - weight) */
#define LERP(avg, target, low, w, wc) ((low) ? (avg) + ((target) - (avg)) * (w) : (target) - ((target) - (avg)) * (wc))

/* The element loops live in functions whose array parameters are `restrict` (GCC ignores
   `restrict` on local pointers, and with 4-5 arrays gives up on runtime alias checks). */
static void FN(sgd_chunk)(scalar *restrict p, const scalar *restrict g, scalar *restrict b,
                          i64 lo, i64 hi, scalar nlr, scalar mom, scalar wd, scalar damp1,
                          int couple, int undamped, int nesterov, int maximize, int fst) {
    if (!b) {
        SIMD
        for (i64 j = lo; j < hi; j++) p[j] = p[j] + OPT_GRAD(g[j], p[j]) * nlr;
        return;
    }
    SIMD
    for (i64 j = lo; j < hi; j++) {
        scalar gr = OPT_GRAD(g[j], p[j]);
        scalar bb = fst ? gr : (undamped ? b[j] * mom + gr : b[j] * mom + gr * damp1);
        b[j] = bb;
        p[j] = p[j] + (nesterov ? bb * mom + gr : bb) * nlr;
    }
}

EMBER_API int FN(sgd_multi)(scalar *const *params, scalar *const *grads, scalar *const *bufs,
                            const int8_t *first, const i64 *sizes, i64 count, double lr,
                            double momentum, double dampening, double weight_decay,
                            int nesterov, int maximize, int nt) {
    const scalar nlr = (scalar)(-lr), mom = (scalar)momentum, wd = (scalar)weight_decay;
    const scalar damp1 = (scalar)(1 - dampening);
    const int couple = weight_decay != 0, undamped = dampening == 0;
    OPT_LOOP(nt, sizes, count, {
        FN(sgd_chunk)(params[i], grads[i], bufs ? bufs[i] : NULL, lo, hi, nlr, mom, wd, damp1,
                      couple, undamped, nesterov, maximize, first ? first[i] : 0);
    });
    return 0;
}

typedef struct {
    scalar w1, w1c, b2, omb2, ep, wd, dec, sgn, bc2, nss;
    int low, couple;
} FN(adam_consts);

/* `couple` and `ams` are literal constants at each call: one specialized loop per case (GCC
   does not vectorize this loop with loop-invariant selects left in it) */
EMBER_INLINE void FN(adam_loop)(scalar *restrict p, const scalar *restrict g, scalar *restrict m,
                                scalar *restrict v, scalar *restrict vmax, i64 lo, i64 hi,
                                const FN(adam_consts) *k, const int couple, const int ams) {
    const scalar w1 = k->w1, w1c = k->w1c, b2 = k->b2, omb2 = k->omb2, ep = k->ep, wd = k->wd;
    const scalar dec = k->dec, sgn = k->sgn, bc2 = k->bc2, nss = k->nss;
    const int low = k->low;
    SIMD
    for (i64 j = lo; j < hi; j++) {
        scalar pp = p[j] * dec;      /* dec = 1 without decoupled decay: exact */
        scalar gr = g[j] * sgn;      /* sgn = -1 with maximize: exact negation */
        if (couple) gr = pp * wd + gr;
        scalar mm = LERP(m[j], gr, low, w1, w1c);
        scalar vv = v[j] * b2 + (gr * omb2) * gr;
        scalar den = vv;
        if (ams) {
            scalar old = vmax[j], top = vv > old ? vv : old;
            top = vv != vv ? vv : top; /* np.maximum: a NaN on either side wins */
            vmax[j] = top;
            den = top;
        }
        m[j] = mm;
        v[j] = vv;
        p[j] = pp + (mm / (SQRT(den) / bc2 + ep)) * nss;
    }
}

static void FN(adam_chunk)(scalar *restrict p, const scalar *restrict g, scalar *restrict m,
                           scalar *restrict v, scalar *restrict vmax, i64 lo, i64 hi,
                           const FN(adam_consts) *k) {
    if (k->couple) {
        if (vmax) FN(adam_loop)(p, g, m, v, vmax, lo, hi, k, 1, 1);
        else FN(adam_loop)(p, g, m, v, vmax, lo, hi, k, 1, 0);
    } else {
        if (vmax) FN(adam_loop)(p, g, m, v, vmax, lo, hi, k, 0, 1);
        else FN(adam_loop)(p, g, m, v, vmax, lo, hi, k, 0, 0);
    }
}

EMBER_API int FN(adam_multi)(scalar *const *params, scalar *const *grads, scalar *const *exp_avgs,
                             scalar *const *exp_avg_sqs, scalar *const *max_exp_avg_sqs,
                             const i64 *sizes, const double *steps, i64 count, double lr,
                             double beta1, double beta2, double eps, double weight_decay,
                             int decoupled, int maximize, int nt) {
    const double w1d = 1 - beta1;
    FN(adam_consts) base;
    base.w1 = (scalar)w1d;
    base.w1c = (scalar)(1 - (double)(scalar)w1d);
    base.b2 = (scalar)beta2;
    base.omb2 = (scalar)(1 - beta2);
    base.ep = (scalar)eps;
    base.wd = (scalar)weight_decay;
    base.dec = decoupled && weight_decay != 0 ? (scalar)(1 - lr * weight_decay) : 1;
    base.sgn = maximize ? -1 : 1;
    base.low = w1d < 0.5;
    base.couple = !decoupled && weight_decay != 0;
    OPT_LOOP(nt, sizes, count, {
        FN(adam_consts) k = base;
        k.bc2 = (scalar)sqrt(1 - pow(beta2, steps[i]));
        k.nss = (scalar)(-(lr / (1 - pow(beta1, steps[i]))));
        FN(adam_chunk)(params[i], grads[i], exp_avgs[i], exp_avg_sqs[i],
                       max_exp_avg_sqs ? max_exp_avg_sqs[i] : NULL, lo, hi, &k);
    });
    return 0;
}

/* one RMSprop element; `centered` and `with_buf` are literal constants at each use */
#define RMSPROP_ELEMENT(centered, with_buf)                                     \
    {                                                                           \
        scalar gr = OPT_GRAD(g[j], p[j]);                                       \
        scalar s = sq[j] * al + (gr * oma) * gr;                                \
        sq[j] = s;                                                              \
        scalar avg;                                                             \
        if (centered) {                                                         \
            scalar a = LERP(ga[j], gr, low, wa, wac);                           \
            ga[j] = a;                                                          \
            avg = SQRT(s - a * a) + ep;                                         \
        } else {                                                                \
            avg = SQRT(s) + ep;                                                 \
        }                                                                       \
        scalar step = gr / avg;                                                 \
        if (with_buf) {                                                         \
            scalar bb = b[j] * mom + step;                                      \
            b[j] = bb;                                                          \
            step = bb;                                                          \
        }                                                                       \
        p[j] = p[j] + step * nlr;                                               \
    }

typedef struct {
    scalar wa, wac, al, oma, ep, wd, mom, nlr;
    int low, couple, maximize;
} FN(rmsprop_consts);

static void FN(rmsprop_chunk)(scalar *restrict p, const scalar *restrict g, scalar *restrict sq,
                              scalar *restrict ga, scalar *restrict b, i64 lo, i64 hi,
                              const FN(rmsprop_consts) *k) {
    const scalar wa = k->wa, wac = k->wac, al = k->al, oma = k->oma, ep = k->ep, wd = k->wd;
    const scalar mom = k->mom, nlr = k->nlr;
    const int low = k->low, couple = k->couple, maximize = k->maximize;
    if (ga && b) {
        SIMD
        for (i64 j = lo; j < hi; j++) RMSPROP_ELEMENT(1, 1)
    } else if (ga) {
        SIMD
        for (i64 j = lo; j < hi; j++) RMSPROP_ELEMENT(1, 0)
    } else if (b) {
        SIMD
        for (i64 j = lo; j < hi; j++) RMSPROP_ELEMENT(0, 1)
    } else {
        SIMD
        for (i64 j = lo; j < hi; j++) RMSPROP_ELEMENT(0, 0)
    }
}

EMBER_API int FN(rmsprop_multi)(scalar *const *params, scalar *const *grads,
                                scalar *const *square_avgs, scalar *const *grad_avgs,
                                scalar *const *bufs, const i64 *sizes, i64 count, double lr,
                                double alpha, double eps, double weight_decay, double momentum,
                                int maximize, int nt) {
    const double wad = 1 - alpha;
    FN(rmsprop_consts) k;
    k.wa = (scalar)wad;
    k.wac = (scalar)(1 - (double)(scalar)wad);
    k.al = (scalar)alpha;
    k.oma = (scalar)(1 - alpha);
    k.ep = (scalar)eps;
    k.wd = (scalar)weight_decay;
    k.mom = (scalar)momentum;
    k.nlr = (scalar)(-lr);
    k.low = wad < 0.5;
    k.couple = weight_decay != 0;
    k.maximize = maximize;
    OPT_LOOP(nt, sizes, count, {
        FN(rmsprop_chunk)(params[i], grads[i], square_avgs[i], grad_avgs ? grad_avgs[i] : NULL,
                          bufs ? bufs[i] : NULL, lo, hi, &k);
    });
    return 0;
}

#undef LERP
#undef OPT_GRAD
#undef RMSPROP_ELEMENT
"""

UNIT = Unit(
    name="optim",
    functions=(
        "int sgd_multi(scalar **params, scalar **grads, scalar **bufs, const int8_t *first,"
        " const i64 *sizes, i64 count, double lr, double momentum, double dampening,"
        " double weight_decay, int nesterov, int maximize, int nt)",
        "int adam_multi(scalar **params, scalar **grads, scalar **exp_avgs, scalar **exp_avg_sqs,"
        " scalar **max_exp_avg_sqs, const i64 *sizes, const double *steps, i64 count, double lr,"
        " double beta1, double beta2, double eps, double weight_decay, int decoupled,"
        " int maximize, int nt)",
        "int rmsprop_multi(scalar **params, scalar **grads, scalar **square_avgs,"
        " scalar **grad_avgs, scalar **bufs, const i64 *sizes, i64 count, double lr,"
        " double alpha, double eps, double weight_decay, double momentum, int maximize, int nt)",
    ),
    body=BODY,
    shared=SHARED,
    flags=("-ffp-contract=off",),
)
