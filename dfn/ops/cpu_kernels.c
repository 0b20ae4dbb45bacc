/* Fused CPU kernels of dynamic local filtering, shared form (one filter per pixel for all channels).
 *
 * Built on first use by dfn/ops/native_build.py for dfn/ops/cpu_kernel.py (plain C, no torch headers), called through
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
 * The softmax kernels take logits (and an optional dynamic bias (B, 1 or C, H, W) added to x) and
 * normalise each pixel's taps row by row in a small scratch buffer (kh*kw x W values, in cache),
 * so the normalised filters never reach memory: the forward reads the logits once and keeps two
 * values per pixel (the taps' maximum m and r = 1 / sum_t exp(l - m)), the backward reads them
 * once more, recomputes p = exp(l - m) * r in one pass and writes their gradient
 * p * (dp - sum_t p * dp) together with dx.
 * Float32 uses exp_f32 below (vectorisable, within 2 ulp); float64 uses libm's exp. The softmax
 * kernels also come with bfloat16 logits (and logit gradient) beside float32 images (suffix
 * f32_bf16): the generator's output under bf16 autocast, read without a float32 copy.
 * Return value: 0, or -1 when a scratch buffer could not be allocated.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#if defined(__AVX__)
#include <immintrin.h>
#endif

static long max_l(long a, long b) { return a > b ? a : b; }
static long min_l(long a, long b) { return a < b ? a : b; }
static long round_up(long n, long m) { return (n + m - 1) / m * m; }

/* The softmax kernels sum a block of pixels in four vector registers: 512-bit ones where the build
 * targets AVX-512 (cpu_kernel.py asks gcc for 512-bit vectors there; on an Intel AMX CPU the ops
 * ran 10-25 % faster than with 256-bit ones), else AVX2's width; a build for narrower vectors
 * splits each (the portable build: SSE2 on x86-64, NEON on ARM). Rows whose width is not a
 * multiple of a block end with single vectors. */
#if defined(__AVX512F__)
#define VECTOR_BYTES 64
#else
#define VECTOR_BYTES 32
#endif
#define LANES(T) (VECTOR_BYTES / (long)sizeof(T))
#define BLOCK(T) (4 * LANES(T))

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

/* e^x for x <= 0 (a logit minus its row's maximum), in plain arithmetic so that loops calling it
 * vectorise: x = n ln2 + r with |r| <= ln2 / 2 (Cody-Waite split of ln2), e^r by a degree-5
 * polynomial (fitted here to the relative error on that interval: at most 2.1e-7 in float32, under
 * 2 ulp), times 2^n built in the exponent bits. Below -87 (2^-126, the smallest normal float) the
 * result is held at about 1.6e-38. */
static inline float exp_f32(float x) {
    x = x > -87.0f ? x : -87.0f;
    const float n = (x * 1.44269504f + 12582912.0f) - 12582912.0f;    /* round(x / ln2) */
    const float r = (x - n * 0.693359375f) + n * 2.12194440e-4f;
    float e = 0.00829663314f;
    e = e * r + 0.0419153199f; e = e * r + 0.166675895f; e = e * r + 0.499988943f;
    e = e * r + 0.999999702f; e = e * r + 1.00000012f;
    const int bits = ((int)n + 127) << 23;
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return e * scale;
}
static inline double exp_f64(double x) { return exp(x); }

/* Non-temporal stores of one vector to a VECTOR_BYTES-aligned address, for outputs written once
 * and read only by the next op (they skip reading the line into the cache first), where the
 * CPU has them (AVX); elsewhere STREAMS is 0 and plain stores run. */
typedef float vec_f32 __attribute__((vector_size(VECTOR_BYTES)));
typedef double vec_f64 __attribute__((vector_size(VECTOR_BYTES)));
typedef uint32_t vec_u32 __attribute__((vector_size(VECTOR_BYTES)));
typedef uint16_t vec_u16 __attribute__((vector_size(VECTOR_BYTES / 2)));   /* a vec_f32 as bfloat16 */
#if defined(__AVX__)
#define STREAMS 1
#if defined(__AVX512F__)
static inline void stream_f32(float *p, vec_f32 v) { _mm512_stream_ps(p, (__m512)v); }
static inline void stream_f64(double *p, vec_f64 v) { _mm512_stream_pd(p, (__m512d)v); }
static inline void stream_u16(uint16_t *p, vec_u16 v) { _mm256_stream_si256((__m256i *)p, (__m256i)v); }
#else
static inline void stream_f32(float *p, vec_f32 v) { _mm256_stream_ps(p, (__m256)v); }
static inline void stream_f64(double *p, vec_f64 v) { _mm256_stream_pd(p, (__m256d)v); }
static inline void stream_u16(uint16_t *p, vec_u16 v) { _mm_stream_si128((__m128i *)p, (__m128i)v); }
#endif
static inline void stream_fence(void) { _mm_sfence(); }
#else
#define STREAMS 0
static inline void stream_f32(float *p, vec_f32 v) { memcpy(p, &v, sizeof v); }
static inline void stream_f64(double *p, vec_f64 v) { memcpy(p, &v, sizeof v); }
static inline void stream_u16(uint16_t *p, vec_u16 v) { memcpy(p, &v, sizeof v); }
static inline void stream_fence(void) {}
#endif

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

/* Logits as stored (LT: float, double, or bfloat16 as its 16 bits) and as computed (T): reading
 * widens, writing rounds to nearest even as torch does (a NaN stays a NaN). */
static inline float logit_f32(float v) { return v; }
static inline double logit_f64(double v) { return v; }
static inline float logit_bf16(uint16_t v) {
    const uint32_t bits = (uint32_t)v << 16;
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}
static inline uint16_t store_bf16(float v) {
    uint32_t bits;
    memcpy(&bits, &v, sizeof bits);
    return (bits & 0x7fffffffu) > 0x7f800000u ? 0x7fc0 : (bits + 0x7fffu + ((bits >> 16) & 1u)) >> 16;
}
static inline vec_u16 store_bf16_vec(vec_f32 v) {
    vec_u32 bits;
    memcpy(&bits, &v, sizeof bits);
    const vec_u32 nan = (vec_u32)((bits & 0x7fffffffu) > 0x7f800000u);   /* all ones where NaN */
    bits = ((bits + 0x7fffu + ((bits >> 16) & 1u)) & ~nan) | (nan & 0x7fc00000u);
    return __builtin_convertvector(bits >> 16, vec_u16);
}

/* The softmax kernels' helpers that depend on the compute type T alone */
#define DEFINE_SOFTMAX_HELPERS(T, SUFFIX)                                                          \
/* The window region of x + bias (bias: bc = 1 or C channels of (H, W), or NULL) */                \
static void biased_region_##SUFFIX(T *xp, const T *xb, const T *bb, long bc, long C, long H,       \
                                   long W, long kh, long kw, long oy, long ox) {                   \
    TO_REGION(T, xp, xb, C, H, W, kh, kw, oy, ox);                                                 \
    if (!bb) return;                                                                               \
    IMAGE_SPAN(H, W, kh, kw, oy, ox);                                                              \
    for (long c = 0; c < C; ++c)                                                                   \
        for (long y = y0_; y < y1_; ++y) {                                                         \
            T *restrict r = xp + (c * Hp_ + y - oy) * Wp_ - ox;                                    \
            const T *restrict br = bb + ((bc == 1 ? 0 : c) * H + y) * W;                           \
            for (long i = x0_; i < x1_; ++i) r[i] += br[i];                                        \
        }                                                                                          \
}                                                                                                  \
                                                                                                   \
static inline vec_##SUFFIX load_##SUFFIX(const T *p) {                                             \
    vec_##SUFFIX v;                                                                                \
    memcpy(&v, p, sizeof v);                                                                       \
    return v;                                                                                      \
}                                                                                                  \
                                                                                                   \
/* One row of the softmax's gradient, dst[i] = e[i] * (d[i] - s[i]) for i < W, streamed past the   \
 * cache where aligned (written once, read by the next op) */                                      \
static void dlogit_row_##SUFFIX(T *restrict dst, const T *restrict e, const T *restrict d,         \
                                const T *restrict s, long W) {                                     \
    long i = 0;                                                                                    \
    if (STREAMS && (uintptr_t)dst % VECTOR_BYTES == 0)                                             \
        for (; i + LANES(T) <= W; i += LANES(T))                                                   \
            stream_##SUFFIX(dst + i, load_##SUFFIX(e + i)                                          \
                                     * (load_##SUFFIX(d + i) - load_##SUFFIX(s + i)));             \
    for (; i < W; ++i) dst[i] = e[i] * (d[i] - s[i]);                                              \
}                                                                                                  \
                                                                                                   \
/* acc[k] = sum_{q1 < n1, q2 < n2} a[q1 * sa1 + q2 * sa2 + k] * b[q1 * sb1 + q2 * sb2 + k] for     \
 * k < nv * LANES(T): nv (1 to 4, a constant where it is called) vectors of pixels summed over     \
 * taps (or channels) in registers; BLOCK(T) pixels at nv = 4. */                                  \
static inline __attribute__((always_inline)) void                                                  \
block_dot_##SUFFIX(const T *a, const T *b, long n1, long sa1, long sb1, long n2, long sa2,         \
                   long sb2, const int nv, T *restrict acc) {                                      \
    const long L = LANES(T);                                                                       \
    vec_##SUFFIX s0 = {0}, s1 = {0}, s2 = {0}, s3 = {0};                                           \
    for (long q1 = 0; q1 < n1; ++q1)                                                               \
        for (long q2 = 0; q2 < n2; ++q2) {                                                         \
            const T *pa = a + q1 * sa1 + q2 * sa2, *pb = b + q1 * sb1 + q2 * sb2;                  \
            s0 += load_##SUFFIX(pa) * load_##SUFFIX(pb);                                           \
            if (nv > 1) s1 += load_##SUFFIX(pa + L) * load_##SUFFIX(pb + L);                       \
            if (nv > 2) s2 += load_##SUFFIX(pa + 2 * L) * load_##SUFFIX(pb + 2 * L);               \
            if (nv > 3) s3 += load_##SUFFIX(pa + 3 * L) * load_##SUFFIX(pb + 3 * L);               \
        }                                                                                          \
    memcpy(acc, &s0, sizeof s0);                                                                   \
    if (nv > 1) memcpy(acc + L, &s1, sizeof s1);                                                   \
    if (nv > 2) memcpy(acc + 2 * L, &s2, sizeof s2);                                               \
    if (nv > 3) memcpy(acc + 3 * L, &s3, sizeof s3);                                               \
}                                                                                                  \
                                                                                                   \
/* One block of pixels of the softmax backward: d[t * ds + k] = sum_c g[c * gs + k] * x[c * cs +   \
 * u * xs + v + k] for every tap t = (u, v), and s[k] = sum_t e[t * es + k] * d[t * ds + k], for   \
 * k < BLOCK(T); the sums over channels and over taps stay in vector registers. */                 \
static inline void block_tap_grads_##SUFFIX(const T *g, long gs, const T *x, long cs, long xs,     \
                                            long C, long kh, long kw, const T *e, long es, T *d,   \
                                            long ds, T *restrict s) {                              \
    const long L = LANES(T);                                                                       \
    vec_##SUFFIX s0 = {0}, s1 = {0}, s2 = {0}, s3 = {0};                                           \
    for (long u = 0; u < kh; ++u)                                                                  \
        for (long v = 0; v < kw; ++v) {                                                            \
            vec_##SUFFIX d0 = {0}, d1 = {0}, d2 = {0}, d3 = {0};                                   \
            for (long c = 0; c < C; ++c) {                                                         \
                const T *pg = g + c * gs, *px = x + c * cs + u * xs + v;                           \
                d0 += load_##SUFFIX(pg) * load_##SUFFIX(px);                                       \
                d1 += load_##SUFFIX(pg + L) * load_##SUFFIX(px + L);                               \
                d2 += load_##SUFFIX(pg + 2 * L) * load_##SUFFIX(px + 2 * L);                       \
                d3 += load_##SUFFIX(pg + 3 * L) * load_##SUFFIX(px + 3 * L);                       \
            }                                                                                      \
            T *dt = d + (u * kw + v) * ds;                                                         \
            const T *et = e + (u * kw + v) * es;                                                   \
            memcpy(dt, &d0, sizeof d0); memcpy(dt + L, &d1, sizeof d1);                            \
            memcpy(dt + 2 * L, &d2, sizeof d2); memcpy(dt + 3 * L, &d3, sizeof d3);                \
            s0 += load_##SUFFIX(et) * d0; s1 += load_##SUFFIX(et + L) * d1;                        \
            s2 += load_##SUFFIX(et + 2 * L) * d2; s3 += load_##SUFFIX(et + 3 * L) * d3;            \
        }                                                                                          \
    memcpy(s, &s0, sizeof s0); memcpy(s + L, &s1, sizeof s1);                                      \
    memcpy(s + 2 * L, &s2, sizeof s2); memcpy(s + 3 * L, &s3, sizeof s3);                          \
}

/* The softmax kernels with logits (and their gradient) stored as LT, read through logit_##LS and
 * written through dlogit_row_##LS, computed in T with T's helpers (suffix S): dlf_softmax_*_##NAME */
#define DEFINE_SOFTMAX_KERNELS(T, S, LT, LS, NAME)                                                 \
/* One image row of logits fr[t * fst + i] (i < W): e[t * es + i] = exp(l - max_t l) and           \
 * r[i] = 1 / sum_t e, so that the softmax is e * r. The logits are read once, into e (the taps'   \
 * rows lie far apart in memory and would evict each other from the cache between two passes),     \
 * and the taps' logits `next` values on (the next row) are fetched while the exps run (hiding     \
 * most of the memory's latency); m: W values of scratch. */                                       \
static void row_exp_##NAME(const LT *fr, long fst, long taps, long W, long es, T *restrict e,      \
                             T *restrict m, T *restrict r, long next) {                            \
    for (long i = 0; i < W; ++i) m[i] = logit_##LS(fr[i]);                                         \
    for (long t = 0; t < taps; ++t) {                                                              \
        const LT *restrict l = fr + t * fst;                                                       \
        T *restrict er = e + t * es;                                                               \
        for (long i = 0; i < W; ++i) {                                                             \
            const T li = logit_##LS(l[i]);                                                         \
            er[i] = li;                                                                            \
            m[i] = li > m[i] ? li : m[i];                                                          \
        }                                                                                          \
    }                                                                                              \
    for (long i = 0; i < W; ++i) r[i] = 0;                                                         \
    for (long t = 0; t < taps; ++t) {                                                              \
        T *restrict er = e + t * es;                                                               \
        for (long i = 0; i < W; i += 64 / (long)sizeof(LT))                                        \
            __builtin_prefetch(fr + t * fst + next + i);                                           \
        for (long i = 0; i < W; ++i) { er[i] = exp_##S(er[i] - m[i]); r[i] += er[i]; }             \
    }                                                                                              \
    for (long i = 0; i < W; ++i) r[i] = 1 / r[i];                                                  \
}                                                                                                  \
                                                                                                   \
/* One image row of the softmax from the forward's statistics m (the taps' maximum) and r (1 /     \
 * sum_t exp(l - m)) per pixel: e[t * es + i] = exp(fr[t * fst + i] - m[i]) * r[i], in one pass    \
 * over the logits (no maximum to find, no sum to take), the next row's fetched meanwhile. */      \
static void row_probs_##NAME(const LT *fr, long fst, long taps, long W, long es, T *restrict e,    \
                               const T *restrict m, const T *restrict r, long next) {              \
    for (long t = 0; t < taps; ++t) {                                                              \
        const LT *restrict l = fr + t * fst;                                                       \
        T *restrict er = e + t * es;                                                               \
        for (long i = 0; i < W; i += 64 / (long)sizeof(LT))                                        \
            __builtin_prefetch(l + next + i);                                                      \
        for (long i = 0; i < W; ++i) er[i] = exp_##S(logit_##LS(l[i]) - m[i]) * r[i];              \
    }                                                                                              \
}                                                                                                  \
                                                                                                   \
/* out[b, c, y, :] = sum_t softmax(f)[b, t, y, :] * (x + bias)pad[b, c, y + u, : + v]: per row,    \
 * BLOCK(T) pixels at a time summed over the taps in registers. stats (B, 2, H, W) receives each   \
 * pixel's softmax statistics for the backward: m, the taps' maximum, and r, 1 / sum of            \
 * exp(l - m). */                                                                                  \
int dlf_softmax_forward_##NAME(const T *x, const LT *f, const T *bias, long bc, T *out,            \
                                 T *stats, long C, long H, long W, long kh, long kw, long oy,      \
                                 long ox, long fsb, long fst, long fsh, long B, int threads) {     \
    const long Hp = H + kh - 1, Wp = W + kw - 1, taps = kh * kw, n = BLOCK(T);                     \
    const long es = round_up(W, n);                                                                \
    int failed = 0;                                                                                \
    _Pragma("omp parallel num_threads(threads) reduction(|:failed)")                               \
    {                                                                                              \
    /* zeroed, with room for a last block read past the image: its lanes are never stored */       \
    T *xp = calloc(C * Hp * Wp + n + kw, sizeof(T)), *e = calloc((taps + 2) * es, sizeof(T));      \
    failed |= !xp || !e;                                                                           \
    _Pragma("omp for schedule(static)")                                                            \
    for (long b = 0; b < B; ++b) {                                                                 \
        if (!xp || !e) continue;                                                                   \
        T *restrict r = e + taps * es, *restrict acc = r + es;                                     \
        biased_region_##S(xp, x + b * C * H * W, bias ? bias + b * bc * H * W : NULL, bc,          \
                               C, H, W, kh, kw, oy, ox);                                           \
        for (long y = 0; y < H; ++y) {                                                             \
            row_exp_##NAME(f + b * fsb + y * fsh, fst, taps, W, es, e, acc, r,                     \
                             y + 1 < H ? fsh : 0);                                                 \
            memcpy(stats + (2 * b * H + y) * W, acc, W * sizeof(T));                               \
            memcpy(stats + ((2 * b + 1) * H + y) * W, r, W * sizeof(T));                           \
            for (long c = 0; c < C; ++c) {                                                         \
                T *restrict o = out + ((b * C + c) * H + y) * W;                                   \
                for (long i0 = 0; i0 < W; i0 += n) {                                               \
                    block_dot_##S(e + i0, xp + (c * Hp + y) * Wp + i0, kh, kw * es, Wp, kw,        \
                                       es, 1, 4, acc);                                             \
                    for (long j = 0; j < min_l(n, W - i0); ++j) o[i0 + j] = acc[j] * r[i0 + j];    \
                }                                                                                  \
            }                                                                                      \
        }                                                                                          \
    }                                                                                              \
    free(xp); free(e);                                                                             \
    }                                                                                              \
    return failed ? -1 : 0;                                                                        \
}                                                                                                  \
                                                                                                   \
/* The softmax forward's gradients from g = dout: dx (of x, and so of x + bias) and df (of the     \
 * logits, contiguous (B, taps, H, W)), recomputing the softmax p row by row from the forward's    \
 * stats (one exp per tap and pixel, in one pass over the logits):                                 \
 *   d[t] = sum_c g[c] * shift_t(x + bias)[c]   (the gradient of p[t]),                            \
 *   df[t] = p[t] * (d[t] - sum_t' p[t'] d[t'])   (the softmax's backward, streamed out),          \
 *   dxpad[c, y + u, X] += sum_v p[t][X - v] * g[c][X - v]   (gathered, a block of columns at a    \
 *   time, from rows of p and g padded with kw - 1 zeros on the left). */                          \
int dlf_softmax_backward_##NAME(const T *x, const LT *f, const T *bias, long bc, const T *stats,   \
                                  const T *g, T *dx, LT *df, long C, long H, long W, long kh,      \
                                  long kw, long oy, long ox, long fsb, long fst, long fsh, long B, \
                                  int threads) {                                                   \
    const long Hp = H + kh - 1, Wp = W + kw - 1, taps = kh * kw, n = BLOCK(T);                     \
    const long es = round_up(W, n), lead = kw - 1, rs = lead + round_up(Wp, n);                    \
    int failed = 0;                                                                                \
    _Pragma("omp parallel num_threads(threads) reduction(|:failed)")                               \
    {                                                                                              \
    T *xp = calloc(C * Hp * Wp + n + kw, sizeof(T)), *dxp = malloc(C * Hp * Wp * sizeof(T));       \
    T *e = calloc((taps + C) * rs + taps * es + 2 * es, sizeof(T));  /* p, g: padded rows */       \
    failed |= !xp || !dxp || !e;                                                                   \
    _Pragma("omp for schedule(static)")                                                            \
    for (long b = 0; b < B; ++b) {                                                                 \
        if (!xp || !dxp || !e) continue;                                                           \
        T *restrict gr = e + taps * rs, *restrict d = gr + C * rs, *restrict s = d + taps * es;    \
        T *restrict acc = s + es;                                                                  \
        biased_region_##S(xp, x + b * C * H * W, bias ? bias + b * bc * H * W : NULL, bc,          \
                               C, H, W, kh, kw, oy, ox);                                           \
        memset(dxp, 0, C * Hp * Wp * sizeof(T));                                                   \
        for (long y = 0; y < H; ++y) {                                                             \
            row_probs_##NAME(f + b * fsb + y * fsh, fst, taps, W, rs, e + lead,                    \
                               stats + (2 * b * H + y) * W, stats + ((2 * b + 1) * H + y) * W,     \
                               y + 1 < H ? fsh : 0);                                               \
            for (long c = 0; c < C; ++c)                                                           \
                memcpy(gr + c * rs + lead, g + ((b * C + c) * H + y) * W, W * sizeof(T));          \
            for (long i0 = 0; i0 < W; i0 += n)                                                     \
                block_tap_grads_##S(gr + lead + i0, rs, xp + y * Wp + i0, Hp * Wp, Wp, C, kh,      \
                                         kw, e + lead + i0, rs, d + i0, es, s + i0);               \
            for (long t = 0; t < taps; ++t) {                                                      \
                dlogit_row_##LS(df + ((b * taps + t) * H + y) * W, e + t * rs + lead, d + t * es,  \
                                s, W);                                                             \
            }                                                                                      \
            for (long c = 0; c < C; ++c)                                                           \
                for (long u = 0; u < kh; ++u) {                                                    \
                    T *restrict row = dxp + (c * Hp + y + u) * Wp;                                 \
                    const T *pu = e + u * kw * rs + lead, *gc = gr + c * rs + lead;                \
                    for (long i0 = 0, len; i0 < Wp; i0 += len) {  /* the tail a vector at a time */ \
                        len = Wp - i0 > n - LANES(T) ? n : LANES(T);                               \
                        if (len == n)                                                              \
                            block_dot_##S(pu + i0, gc + i0, 1, 0, 0, kw, rs - 1, -1, 4, acc);      \
                        else                                                                       \
                            block_dot_##S(pu + i0, gc + i0, 1, 0, 0, kw, rs - 1, -1, 1, acc);      \
                        for (long j = 0; j < min_l(len, Wp - i0); ++j) row[i0 + j] += acc[j];      \
                    }                                                                              \
                }                                                                                  \
        }                                                                                          \
        FROM_REGION(T, dx + b * C * H * W, dxp, C, H, W, kh, kw, oy, ox);                          \
    }                                                                                              \
    stream_fence();                                                                                \
    free(xp); free(dxp); free(e);                                                                  \
    }                                                                                              \
    return failed ? -1 : 0;                                                                        \
}

DEFINE_KERNELS(float, f32)
DEFINE_KERNELS(double, f64)
DEFINE_SOFTMAX_HELPERS(float, f32)
DEFINE_SOFTMAX_HELPERS(double, f64)

/* dlogit_row_f32 for bfloat16 logits: each vector rounded, and streamed as the float rows are
 * (with plain stores, the taps' rows, H * W * 2 bytes apart, thrashed the cache: the backward took
 * 2.4x as long as with float32 logits) */
static void dlogit_row_bf16(uint16_t *restrict dst, const float *restrict e, const float *restrict d,
                            const float *restrict s, long W) {
    long i = 0;
    if (STREAMS && (uintptr_t)dst % sizeof(vec_u16) == 0)
        for (; i + LANES(float) <= W; i += LANES(float))
            stream_u16(dst + i, store_bf16_vec(load_f32(e + i) * (load_f32(d + i) - load_f32(s + i))));
    for (; i < W; ++i) dst[i] = store_bf16(e[i] * (d[i] - s[i]));
}

DEFINE_SOFTMAX_KERNELS(float, f32, float, f32, f32)
DEFINE_SOFTMAX_KERNELS(double, f64, double, f64, f64)
DEFINE_SOFTMAX_KERNELS(float, f32, uint16_t, bf16, f32_bf16)   /* bfloat16 logits (bf16-mixed) */
