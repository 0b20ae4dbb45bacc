/* Fused CPU kernels of dynamic local filtering, shared form (one filter per pixel for all channels).
 *
 * Built on first use by dfn/native_build.py for dfn/ops/cpu_kernel.py (plain C, no torch headers), called through
 * ctypes. Samples run in parallel with OpenMP; linked by soname, libgomp resolves to the copy that
 * torch has already loaded, so the kernels share torch's thread pool instead of fighting its
 * spinning threads for the cores. Built without OpenMP, the pragmas are ignored (serial).
 *
 * Layout: x, g, out, dx are contiguous (B, C, H, W); filters f (B, T, H, W) with T = kh * kw taps
 * (t = u * kw + v) may have any batch/tap/row strides but unit column stride; df is contiguous.
 * Tap (u, v) at pixel (y, x) reads x[y + oy + u, x + ox + v], zero outside the image; (oy, ox) is the
 * window's origin (centred: oy = -(kh/2), ox = -(kw/2); any integers work).
 *
 * Each thread handles whole samples, so every output element has one writer (no atomics). Per
 * sample it works on a zero-padded copy of the image (x, or the gradient of x), which removes
 * every bounds check from the inner loops, and runs tap by tap: the filters (and df) stream
 * through memory in order, each value touched once, while the sample's image stays in cache.
 * Return value: 0, or -1 when a scratch buffer could not be allocated.
 */
#include <stdlib.h>
#include <string.h>

static long max_l(long a, long b) { return a > b ? a : b; }
static long min_l(long a, long b) { return a < b ? a : b; }

/* Copy between an image (C, H, W) and its window region (C, H + kh - 1, W + kw - 1), whose pixel
 * (i, j) is image pixel (i + oy, j + ox): TO_REGION fills the region's part inside the image (the
 * rest stays as it is: zeros), FROM_REGION writes every image pixel (zero where the region does
 * not reach). */
#define IMAGE_SPAN(H, W, kh, kw, oy, ox)                                                          \
    const long y0_ = max_l(0, oy), y1_ = min_l(H, H + kh - 1 + oy);                               \
    const long x0_ = max_l(0, ox), x1_ = min_l(W, W + kw - 1 + ox);                               \
    const long Hp_ = H + kh - 1, Wp_ = W + kw - 1
#define TO_REGION(T, xp, xb, C, H, W, kh, kw, oy, ox) do {                                        \
    IMAGE_SPAN(H, W, kh, kw, oy, ox);                                                             \
    if (x1_ > x0_)                                                                                \
        for (long c_ = 0; c_ < (C); ++c_)                                                         \
            for (long y_ = y0_; y_ < y1_; ++y_)                                                   \
                memcpy((xp) + (c_ * Hp_ + y_ - (oy)) * Wp_ + x0_ - (ox),                          \
                       (xb) + (c_ * (H) + y_) * (W) + x0_, (x1_ - x0_) * sizeof(T));              \
} while (0)
#define FROM_REGION(T, xb, xp, C, H, W, kh, kw, oy, ox) do {                                      \
    IMAGE_SPAN(H, W, kh, kw, oy, ox);                                                             \
    if (y0_ > 0 || y1_ < (H) || x0_ > 0 || x1_ < (W))                                             \
        memset((xb), 0, (C) * (H) * (W) * sizeof(T));                                             \
    if (x1_ > x0_)                                                                                \
        for (long c_ = 0; c_ < (C); ++c_)                                                         \
            for (long y_ = y0_; y_ < y1_; ++y_)                                                   \
                memcpy((xb) + (c_ * (H) + y_) * (W) + x0_,                                        \
                       (xp) + (c_ * Hp_ + y_ - (oy)) * Wp_ + x0_ - (ox), (x1_ - x0_) * sizeof(T)); \
} while (0)

#define DEFINE_KERNELS(T, SUFFIX)                                                                \
/* out[b, c, y, :] = sum_t f[b, t, y, :] * xpad[b, c, y + u, : + v] */                          \
int dlf_forward_##SUFFIX(const T *x, const T *f, T *out, long C, long H, long W, long kh,       \
                         long kw, long oy, long ox, long fsb, long fst, long fsh, long B, int threads) {               \
    const long Hp = H + kh - 1, Wp = W + kw - 1;                                                  \
    int failed = 0;                                                                               \
    _Pragma("omp parallel num_threads(threads) reduction(|:failed)")                              \
    {                                                                                             \
    T *xp = calloc(C * Hp * Wp, sizeof(T));                                                       \
    failed |= !xp;                                                                                \
    _Pragma("omp for schedule(static)")                                                           \
    for (long b = 0; b < B; ++b) {                                                                \
        if (!xp) continue;                                                                        \
        TO_REGION(T, xp, x + b * C * H * W, C, H, W, kh, kw, oy, ox);                                      \
        memset(out + b * C * H * W, 0, C * H * W * sizeof(T));                                   \
        for (long t = 0; t < kh * kw; ++t) {                                                      \
            const long u = t / kw, v = t % kw;                                                    \
            for (long y = 0; y < H; ++y) {                                                        \
                const T *restrict fr = f + b * fsb + t * fst + y * fsh;                          \
                for (long c = 0; c < C; ++c) {                                                    \
                    T *restrict o = out + ((b * C + c) * H + y) * W;                              \
                    const T *restrict xr = xp + (c * Hp + y + u) * Wp + v;                        \
                    for (long i = 0; i < W; ++i) o[i] += fr[i] * xr[i];                           \
                }                                                                                 \
            }                                                                                     \
        }                                                                                         \
    }                                                                                             \
    free(xp);                                                                                     \
    }                                                                                             \
    return failed ? -1 : 0;                                                                       \
}                                                                                                 \
                                                                                                  \
/* df[b, t, y, :] = sum_c g[b, c, y, :] * xpad[b, c, y + u, : + v] */                           \
int dlf_grad_filters_##SUFFIX(const T *x, const T *g, T *df, long C, long H, long W, long kh,   \
                              long kw, long oy, long ox, long B, int threads) {                                        \
    const long Hp = H + kh - 1, Wp = W + kw - 1;                                                  \
    int failed = 0;                                                                               \
    _Pragma("omp parallel num_threads(threads) reduction(|:failed)")                              \
    {                                                                                             \
    T *xp = calloc(C * Hp * Wp, sizeof(T));                                                       \
    failed |= !xp;                                                                                \
    _Pragma("omp for schedule(static)")                                                           \
    for (long b = 0; b < B; ++b) {                                                                \
        if (!xp) continue;                                                                        \
        TO_REGION(T, xp, x + b * C * H * W, C, H, W, kh, kw, oy, ox);                                      \
        for (long t = 0; t < kh * kw; ++t) {                                                      \
            const long u = t / kw, v = t % kw;                                                    \
            for (long y = 0; y < H; ++y) {                                                        \
                T *restrict d = df + ((b * kh * kw + t) * H + y) * W;                             \
                const T *restrict g0 = g + (b * C * H + y) * W;                                   \
                const T *restrict x0 = xp + (y + u) * Wp + v;                                     \
                for (long i = 0; i < W; ++i) d[i] = g0[i] * x0[i];                                \
                for (long c = 1; c < C; ++c) {                                                    \
                    const T *restrict gr = g0 + c * H * W, *restrict xr = x0 + c * Hp * Wp;      \
                    for (long i = 0; i < W; ++i) d[i] += gr[i] * xr[i];                           \
                }                                                                                 \
            }                                                                                     \
        }                                                                                         \
    }                                                                                             \
    free(xp);                                                                                     \
    }                                                                                             \
    return failed ? -1 : 0;                                                                       \
}                                                                                                 \
                                                                                                  \
/* dxpad[b, c, y + u, : + v] += f[b, t, y, :] * g[b, c, y, :]; dx = interior of dxpad */        \
int dlf_grad_input_##SUFFIX(const T *g, const T *f, T *dx, long C, long H, long W, long kh,     \
                            long kw, long oy, long ox, long fsb, long fst, long fsh, long B, int threads) {            \
    const long Hp = H + kh - 1, Wp = W + kw - 1;                                                  \
    int failed = 0;                                                                               \
    _Pragma("omp parallel num_threads(threads) reduction(|:failed)")                              \
    {                                                                                             \
    T *dxp = malloc(C * Hp * Wp * sizeof(T));                                                     \
    failed |= !dxp;                                                                               \
    _Pragma("omp for schedule(static)")                                                           \
    for (long b = 0; b < B; ++b) {                                                                \
        if (!dxp) continue;                                                                       \
        memset(dxp, 0, C * Hp * Wp * sizeof(T));                                                  \
        for (long t = 0; t < kh * kw; ++t) {                                                      \
            const long u = t / kw, v = t % kw;                                                    \
            for (long y = 0; y < H; ++y) {                                                        \
                const T *restrict fr = f + b * fsb + t * fst + y * fsh;                          \
                for (long c = 0; c < C; ++c) {                                                    \
                    T *restrict d = dxp + (c * Hp + y + u) * Wp + v;                              \
                    const T *restrict gr = g + ((b * C + c) * H + y) * W;                         \
                    for (long i = 0; i < W; ++i) d[i] += fr[i] * gr[i];                           \
                }                                                                                 \
            }                                                                                     \
        }                                                                                         \
        FROM_REGION(T, dx + b * C * H * W, dxp, C, H, W, kh, kw, oy, ox);                         \
    }                                                                                             \
    free(dxp);                                                                                    \
    }                                                                                             \
    return failed ? -1 : 0;                                                                       \
}

DEFINE_KERNELS(float, f32)
DEFINE_KERNELS(double, f64)
