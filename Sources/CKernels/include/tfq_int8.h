#ifndef TFQ_INT8_H
#define TFQ_INT8_H

/* The int8 kernels' inner loop, one quantization group of one 16-row block, in each ISA's
 * instructions: ARMv8.2 dot product (sdot), ARMv8.0 NEON (smull/smlal/sadalp), AVX2
 * (vpmaddubsw/vpmaddwd) and AVX-512 VNNI (vpdpbusd). C with the vendors' intrinsic headers because Swift 6.0's Builtin
 * has no target intrinsics. The Swift side (Int8Dot.swift) picks a path by the build's
 * defines. The AVX2 path exists only when the compiler targets an AVX2 CPU, and the VNNI
 * path's entry points for a TFQ_AVX512VNNI build only when it targets VNNI and VL, so a
 * define without the CPU flag fails to compile. The sdot path is compiled into every ARM64 build
 * (a function-level target), so the tests check it wherever the CPU has the instruction;
 * a TFQ_ARM_DOTPROD build targets such a CPU and inlines it.
 *
 * Layout (formats/tfq.md, q8 layout 1): the weights are 64-byte chunks, one per column quad;
 * in a chunk, bytes 4r..4r+3 are row r's weights for the quad's 4 columns. The activations
 * are int8 in [-127, 127] and the loader refuses the weight -128, so a product is at most
 * 127·127 and the sum of two fits in int16 (the NEON path relies on this; every result is
 * an exact integer sum, identical on every path). */

#include <stdint.h>

typedef int32_t tfq_i32x16 __attribute__((ext_vector_type(16)));
typedef int32_t tfq_i32x4 __attribute__((ext_vector_type(4)));
typedef int32_t tfq_i32x8 __attribute__((ext_vector_type(8)));

#define TFQ_PREFETCH_AHEAD 1024   /* bytes: the weights stream from L3 or memory */

/* The four-token functions write 4 × 16 sums to `out` (Swift imports no pointer to a vector). */
static inline void tfq_store16(int32_t *out, tfq_i32x16 sums) { __builtin_memcpy(out, &sums, sizeof sums); }

#if defined(__aarch64__)
#include <arm_neon.h>

static inline tfq_i32x16 tfq_join4(int32x4_t a, int32x4_t b, int32x4_t c, int32x4_t d) {
    tfq_i32x8 ab = __builtin_shufflevector((tfq_i32x4)a, (tfq_i32x4)b, 0, 1, 2, 3, 4, 5, 6, 7);
    tfq_i32x8 cd = __builtin_shufflevector((tfq_i32x4)c, (tfq_i32x4)d, 0, 1, 2, 3, 4, 5, 6, 7);
    return __builtin_shufflevector(ab, cd, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
}

/* Four tokens' sums for one block of 16 rows: a<token><rows 4i..4i+3>. */
#define TFQ_FOUR_TOKEN_SUMS                                                                                 \
    int32x4_t a00 = vdupq_n_s32(0), a01 = a00, a02 = a00, a03 = a00, a10 = a00, a11 = a00, a12 = a00, a13 = a00, \
              a20 = a00, a21 = a00, a22 = a00, a23 = a00, a30 = a00, a31 = a00, a32 = a00, a33 = a00

#define TFQ_STORE_FOUR_TOKEN_SUMS(out) do {                         \
        tfq_store16((out), tfq_join4(a00, a01, a02, a03));          \
        tfq_store16((out) + 16, tfq_join4(a10, a11, a12, a13));     \
        tfq_store16((out) + 32, tfq_join4(a20, a21, a22, a23));     \
        tfq_store16((out) + 48, tfq_join4(a30, a31, a32, a33));     \
    } while (0)

/* Two tokens' sums (the two passes of one token's activations): a<token><rows 4i..4i+3>. */
#define TFQ_TWO_TOKEN_SUMS                                                                                  \
    int32x4_t a00 = vdupq_n_s32(0), a01 = a00, a02 = a00, a03 = a00, a10 = a00, a11 = a00, a12 = a00, a13 = a00

#define TFQ_STORE_TWO_TOKEN_SUMS(out) do {                          \
        tfq_store16((out), tfq_join4(a00, a01, a02, a03));          \
        tfq_store16((out) + 16, tfq_join4(a10, a11, a12, a13));     \
    } while (0)

/* The 4 activation bytes at x repeated across a register. */
static inline int8x16_t tfq_quad(const int8_t *x) {
    uint32_t word;
    __builtin_memcpy(&word, x, 4);
    return vreinterpretq_s8_u32(vdupq_n_u32(word));
}

/* tfq_quad as a register the compiler cannot see into. Knowing both halves are equal, LLVM
 * turns vmull_high_s8(w, x) into an ext of w plus a smull of the low halves: two
 * instructions where smull2 is one (the one-token loop took 46 instructions per 2 chunks, now 40).
 * The empty asm emits nothing. */
static inline int8x16_t tfq_quad_opaque(const int8_t *x) {
    int8x16_t v = tfq_quad(x);
    __asm__("" : "+w"(v));
    return v;
}

/* The kernels below name every accumulator: with arrays and inner loops, Swift's optimizer
 * (which compiles these inline functions) kept the accumulators in memory. */

/* sdot: per 32-bit lane, the sum of 4 byte products, which is one row's quad. 4 per chunk.
 * Runs only on a CPU with the dot product (the CLI checks a build that selects it; the
 * tests call it where CPUFeatures.hasDotProduct). */
__attribute__((target("dotprod")))
static inline tfq_i32x16 tfq_int8_group_sdot(const int8_t *w, const int8_t *x, long quads) {
    int32x4_t a0 = vdupq_n_s32(0), a1 = a0, a2 = a0, a3 = a0;
    for (long q = 0; q < quads; q++, w += 64, x += 4) {
        __builtin_prefetch(w + TFQ_PREFETCH_AHEAD, 0, 3);
        int8x16_t xv = tfq_quad(x);
        a0 = vdotq_s32(a0, vld1q_s8(w), xv);
        a1 = vdotq_s32(a1, vld1q_s8(w + 16), xv);
        a2 = vdotq_s32(a2, vld1q_s8(w + 32), xv);
        a3 = vdotq_s32(a3, vld1q_s8(w + 48), xv);
    }
    return tfq_join4(a0, a1, a2, a3);
}

#define TFQ_SDOT_TOKEN(t) do {                                   \
        int8x16_t xv = tfq_quad(x + (t) * stride);               \
        a##t##0 = vdotq_s32(a##t##0, w0, xv);                    \
        a##t##1 = vdotq_s32(a##t##1, w1, xv);                    \
        a##t##2 = vdotq_s32(a##t##2, w2, xv);                    \
        a##t##3 = vdotq_s32(a##t##3, w3, xv);                    \
    } while (0)

__attribute__((target("dotprod")))
static inline void tfq_int8_group4_sdot(const int8_t *w, const int8_t *x, long stride, long quads, int32_t *out) {
    TFQ_FOUR_TOKEN_SUMS;
    for (long q = 0; q < quads; q++, w += 64, x += 4) {
        __builtin_prefetch(w + TFQ_PREFETCH_AHEAD, 0, 3);
        int8x16_t w0 = vld1q_s8(w), w1 = vld1q_s8(w + 16), w2 = vld1q_s8(w + 32), w3 = vld1q_s8(w + 48);
        TFQ_SDOT_TOKEN(0); TFQ_SDOT_TOKEN(1); TFQ_SDOT_TOKEN(2); TFQ_SDOT_TOKEN(3);
    }
    TFQ_STORE_FOUR_TOKEN_SUMS(out);
}

/* Two tokens (a two-pass activation's q₁ and q₂), each chunk loaded once. */
__attribute__((target("dotprod")))
static inline void tfq_int8_group2_sdot(const int8_t *w, const int8_t *x, long stride, long quads, int32_t *out) {
    TFQ_TWO_TOKEN_SUMS;
    for (long q = 0; q < quads; q++, w += 64, x += 4) {
        __builtin_prefetch(w + TFQ_PREFETCH_AHEAD, 0, 3);
        int8x16_t w0 = vld1q_s8(w), w1 = vld1q_s8(w + 16), w2 = vld1q_s8(w + 32), w3 = vld1q_s8(w + 48);
        TFQ_SDOT_TOKEN(0); TFQ_SDOT_TOKEN(1);
    }
    TFQ_STORE_TWO_TOKEN_SUMS(out);
}

/* ARMv8.0 NEON. smull multiplies 8 byte pairs into int16; two chunks' products of the same
 * row and column add in int16 (smlal, at most 2·127·127); sadalp adds neighbouring int16
 * lanes into int32 accumulators that hold [row r: columns 0+1, columns 2+3, row r+1: ...].
 * One addp per row pair at the end makes the row sums: 24 multiply and add instructions
 * per 2 chunks of 16 rows × 4 columns each, 40 with loads and the loop, where the portable
 * path needs ~70 per chunk. */
#define TFQ_NEON_QUARTER(i) do {                                                                          \
        int8x16_t wa = vld1q_s8(w + 16 * (i)), wb = vld1q_s8(w + 64 + 16 * (i));                          \
        p##i##l = vpadalq_s16(p##i##l, vmlal_s8(vmull_s8(vget_low_s8(wa), xal), vget_low_s8(wb), xbl));   \
        p##i##h = vpadalq_s16(p##i##h, vmlal_high_s8(vmull_high_s8(wa, xa), wb, xb));                     \
    } while (0)

#define TFQ_NEON_QUARTER1(i) do {                                                                         \
        int8x16_t wa = vld1q_s8(w + 16 * (i));                                                            \
        p##i##l = vpadalq_s16(p##i##l, vmull_s8(vget_low_s8(wa), vget_low_s8(xa)));                       \
        p##i##h = vpadalq_s16(p##i##h, vmull_high_s8(wa, xa));                                            \
    } while (0)

static inline tfq_i32x16 tfq_int8_group_neon(const int8_t *w, const int8_t *x, long quads) {
    int32x4_t p0l = vdupq_n_s32(0), p0h = p0l, p1l = p0l, p1h = p0l, p2l = p0l, p2h = p0l, p3l = p0l, p3h = p0l;
    long q = 0;
    for (; q + 2 <= quads; q += 2, w += 128, x += 8) {
        __builtin_prefetch(w + TFQ_PREFETCH_AHEAD, 0, 3);
        __builtin_prefetch(w + 64 + TFQ_PREFETCH_AHEAD, 0, 3);
        int8x16_t xa = tfq_quad_opaque(x), xb = tfq_quad_opaque(x + 4);
        int8x8_t xal = vget_low_s8(xa), xbl = vget_low_s8(xb);
        TFQ_NEON_QUARTER(0); TFQ_NEON_QUARTER(1); TFQ_NEON_QUARTER(2); TFQ_NEON_QUARTER(3);
    }
    if (q < quads) {
        __builtin_prefetch(w + TFQ_PREFETCH_AHEAD, 0, 3);
        int8x16_t xa = tfq_quad_opaque(x);
        TFQ_NEON_QUARTER1(0); TFQ_NEON_QUARTER1(1); TFQ_NEON_QUARTER1(2); TFQ_NEON_QUARTER1(3);
    }
    return tfq_join4(vpaddq_s32(p0l, p0h), vpaddq_s32(p1l, p1h), vpaddq_s32(p2l, p2h), vpaddq_s32(p3l, p3h));
}

/* tfq_int8_group_neon for two tokens (x and x + stride: a two-pass activation's q₁ and q₂),
 * each pair of chunks loaded once: 67 instructions per 2 chunks for both, where two calls
 * take 80. p… accumulate token 0, r… token 1. */
#define TFQ_NEON_QUARTER_TWO(i) do {                                                                      \
        int8x16_t wa = vld1q_s8(w + 16 * (i)), wb = vld1q_s8(w + 64 + 16 * (i));                          \
        p##i##l = vpadalq_s16(p##i##l, vmlal_s8(vmull_s8(vget_low_s8(wa), vget_low_s8(xa)), vget_low_s8(wb), vget_low_s8(xb))); \
        p##i##h = vpadalq_s16(p##i##h, vmlal_high_s8(vmull_high_s8(wa, xa), wb, xb));                     \
        r##i##l = vpadalq_s16(r##i##l, vmlal_s8(vmull_s8(vget_low_s8(wa), vget_low_s8(ya)), vget_low_s8(wb), vget_low_s8(yb))); \
        r##i##h = vpadalq_s16(r##i##h, vmlal_high_s8(vmull_high_s8(wa, ya), wb, yb));                     \
    } while (0)

#define TFQ_NEON_QUARTER1_TWO(i) do {                                                                     \
        int8x16_t wa = vld1q_s8(w + 16 * (i));                                                            \
        p##i##l = vpadalq_s16(p##i##l, vmull_s8(vget_low_s8(wa), vget_low_s8(xa)));                       \
        p##i##h = vpadalq_s16(p##i##h, vmull_high_s8(wa, xa));                                            \
        r##i##l = vpadalq_s16(r##i##l, vmull_s8(vget_low_s8(wa), vget_low_s8(ya)));                       \
        r##i##h = vpadalq_s16(r##i##h, vmull_high_s8(wa, ya));                                            \
    } while (0)

static inline void tfq_int8_group2_neon(const int8_t *w, const int8_t *x, long stride, long quads, int32_t *out) {
    int32x4_t p0l = vdupq_n_s32(0), p0h = p0l, p1l = p0l, p1h = p0l, p2l = p0l, p2h = p0l, p3l = p0l, p3h = p0l;
    int32x4_t r0l = p0l, r0h = p0l, r1l = p0l, r1h = p0l, r2l = p0l, r2h = p0l, r3l = p0l, r3h = p0l;
    const int8_t *y = x + stride;
    long q = 0;
    for (; q + 2 <= quads; q += 2, w += 128, x += 8, y += 8) {
        __builtin_prefetch(w + TFQ_PREFETCH_AHEAD, 0, 3);
        __builtin_prefetch(w + 64 + TFQ_PREFETCH_AHEAD, 0, 3);
        int8x16_t xa = tfq_quad_opaque(x), xb = tfq_quad_opaque(x + 4), ya = tfq_quad_opaque(y), yb = tfq_quad_opaque(y + 4);
        TFQ_NEON_QUARTER_TWO(0); TFQ_NEON_QUARTER_TWO(1); TFQ_NEON_QUARTER_TWO(2); TFQ_NEON_QUARTER_TWO(3);
    }
    if (q < quads) {
        __builtin_prefetch(w + TFQ_PREFETCH_AHEAD, 0, 3);
        int8x16_t xa = tfq_quad_opaque(x), ya = tfq_quad_opaque(y);
        TFQ_NEON_QUARTER1_TWO(0); TFQ_NEON_QUARTER1_TWO(1); TFQ_NEON_QUARTER1_TWO(2); TFQ_NEON_QUARTER1_TWO(3);
    }
    tfq_store16(out, tfq_join4(vpaddq_s32(p0l, p0h), vpaddq_s32(p1l, p1h), vpaddq_s32(p2l, p2h), vpaddq_s32(p3l, p3h)));
    tfq_store16(out + 16, tfq_join4(vpaddq_s32(r0l, r0h), vpaddq_s32(r1l, r1h), vpaddq_s32(r2l, r2h), vpaddq_s32(r3l, r3h)));
}

/* Four tokens (activations `stride` bytes apart): each chunk is loaded once and multiplied
 * by every token's quad; the row sums come from addp per chunk (4 tokens × 8 pair
 * accumulators would not fit in 32 registers). */
#define TFQ_NEON_ROWS(t, i) \
    a##t##i = vpadalq_s16(a##t##i, vpaddq_s16(vmull_s8(vget_low_s8(w##i), vget_low_s8(xv)), vmull_high_s8(w##i, xv)))

#define TFQ_NEON_TOKEN(t) do {                                                                     \
        int8x16_t xv = tfq_quad_opaque(x + (t) * stride);                                          \
        TFQ_NEON_ROWS(t, 0); TFQ_NEON_ROWS(t, 1); TFQ_NEON_ROWS(t, 2); TFQ_NEON_ROWS(t, 3);        \
    } while (0)

static inline void tfq_int8_group4_neon(const int8_t *w, const int8_t *x, long stride, long quads, int32_t *out) {
    TFQ_FOUR_TOKEN_SUMS;
    for (long q = 0; q < quads; q++, w += 64, x += 4) {
        __builtin_prefetch(w + TFQ_PREFETCH_AHEAD, 0, 3);
        int8x16_t w0 = vld1q_s8(w), w1 = vld1q_s8(w + 16), w2 = vld1q_s8(w + 32), w3 = vld1q_s8(w + 48);
        TFQ_NEON_TOKEN(0); TFQ_NEON_TOKEN(1); TFQ_NEON_TOKEN(2); TFQ_NEON_TOKEN(3);
    }
    TFQ_STORE_FOUR_TOKEN_SUMS(out);
}
#endif /* __aarch64__ */

#if defined(__x86_64__) && defined(__AVX2__)
#include <immintrin.h>

/* Per 32-bit lane, the sum of 4 products of x's bytes with w's bytes: vpmaddubsw needs one
 * unsigned operand, so |x| times w with x's sign (vpsignb), then pair sums (vpmaddwd by 1).
 * The int16 pair sums cannot saturate: at most 2·127·127. */
static inline __m256i tfq_dot4_avx2(__m256i magnitude, __m256i xv, __m256i w) {
    __m256i pairs = _mm256_maddubs_epi16(magnitude, _mm256_sign_epi8(w, xv));
    return _mm256_madd_epi16(pairs, _mm256_set1_epi16(1));
}

static inline tfq_i32x16 tfq_join2(__m256i low, __m256i high) {
    return __builtin_shufflevector((tfq_i32x8)low, (tfq_i32x8)high, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
}

static inline __m256i tfq_quad_avx2(const int8_t *x) {
    int32_t word;
    __builtin_memcpy(&word, x, 4);
    return _mm256_set1_epi32(word);
}

static inline tfq_i32x16 tfq_int8_group_avx2(const int8_t *w, const int8_t *x, long quads) {
    __m256i low = _mm256_setzero_si256(), high = low;
    for (long q = 0; q < quads; q++, w += 64, x += 4) {
        __builtin_prefetch(w + TFQ_PREFETCH_AHEAD, 0, 3);
        __m256i xv = tfq_quad_avx2(x), magnitude = _mm256_sign_epi8(xv, xv);
        low = _mm256_add_epi32(low, tfq_dot4_avx2(magnitude, xv, _mm256_loadu_si256((const __m256i *)w)));
        high = _mm256_add_epi32(high, tfq_dot4_avx2(magnitude, xv, _mm256_loadu_si256((const __m256i *)(w + 32))));
    }
    return tfq_join2(low, high);
}

#define TFQ_AVX2_TOKEN(t) do {                                                           \
        __m256i xv = tfq_quad_avx2(x + (t) * stride), magnitude = _mm256_sign_epi8(xv, xv); \
        low##t = _mm256_add_epi32(low##t, tfq_dot4_avx2(magnitude, xv, w0));             \
        high##t = _mm256_add_epi32(high##t, tfq_dot4_avx2(magnitude, xv, w1));           \
    } while (0)

static inline void tfq_int8_group4_avx2(const int8_t *w, const int8_t *x, long stride, long quads, int32_t *out) {
    __m256i low0 = _mm256_setzero_si256(), high0 = low0, low1 = low0, high1 = low0, low2 = low0, high2 = low0, low3 = low0, high3 = low0;
    for (long q = 0; q < quads; q++, w += 64, x += 4) {
        __builtin_prefetch(w + TFQ_PREFETCH_AHEAD, 0, 3);
        __m256i w0 = _mm256_loadu_si256((const __m256i *)w), w1 = _mm256_loadu_si256((const __m256i *)(w + 32));
        TFQ_AVX2_TOKEN(0); TFQ_AVX2_TOKEN(1); TFQ_AVX2_TOKEN(2); TFQ_AVX2_TOKEN(3);
    }
    tfq_store16(out, tfq_join2(low0, high0));
    tfq_store16(out + 16, tfq_join2(low1, high1));
    tfq_store16(out + 32, tfq_join2(low2, high2));
    tfq_store16(out + 48, tfq_join2(low3, high3));
}

/* Two tokens (a two-pass activation's q₁ and q₂), each chunk loaded once. */
static inline void tfq_int8_group2_avx2(const int8_t *w, const int8_t *x, long stride, long quads, int32_t *out) {
    __m256i low0 = _mm256_setzero_si256(), high0 = low0, low1 = low0, high1 = low0;
    for (long q = 0; q < quads; q++, w += 64, x += 4) {
        __builtin_prefetch(w + TFQ_PREFETCH_AHEAD, 0, 3);
        __m256i w0 = _mm256_loadu_si256((const __m256i *)w), w1 = _mm256_loadu_si256((const __m256i *)(w + 32));
        TFQ_AVX2_TOKEN(0); TFQ_AVX2_TOKEN(1);
    }
    tfq_store16(out, tfq_join2(low0, high0));
    tfq_store16(out + 16, tfq_join2(low1, high1));
}
#endif /* __x86_64__ && __AVX2__ */

#if defined(__x86_64__)
#include <immintrin.h>

/* AVX-512 VNNI on 256-bit vectors (with AVX-512VL): vpdpbusd adds the four products of each
 * lane's unsigned bytes and signed bytes into int32 directly, one instruction where AVX2 needs
 * three (vpmaddubsw, vpmaddwd, vpaddd); no int16 step, so nothing to saturate. The weights
 * are the unsigned side: w + 128 (w xor 0x80, in 1..255), times the activations as they are,
 * so the sum is Σ w·x + 128·Σ x, and the caller passes each activation group's 128·Σ x
 * (`offsets`, from tfq_int8_offsets_vnni) to subtract. One xor per weight vector, shared by
 * every token of a call, replaces AVX2's two sign instructions per weight vector per token
 * and the activation's own. Compiled into every x86-64 build (a function-level target), so
 * the tests check it wherever the CPU has it; a TFQ_AVX512VNNI build targets such a CPU and
 * inlines it. */
#define TFQ_VNNI_TARGET __attribute__((target("avx2,avx512f,avx512vl,avx512vnni")))

/* 128·Σ x over each of `groups` groups of `groupSize` bytes (a multiple of 4) at `x`, in order:
 * what the VNNI functions below subtract. */
TFQ_VNNI_TARGET
static inline void tfq_int8_offsets_vnni(const int8_t *x, long groups, long groupSize, int32_t *offsets) {
    const __m256i bias = _mm256_set1_epi8((char)0x80);
    for (long g = 0; g < groups; g++, x += groupSize) {
        __m256i sums = _mm256_setzero_si256();
        long i = 0;
        for (; i + 32 <= groupSize; i += 32) sums = _mm256_dpbusd_epi32(sums, bias, _mm256_loadu_si256((const __m256i *)(x + i)));
        __m128i half = _mm_add_epi32(_mm256_castsi256_si128(sums), _mm256_extracti128_si256(sums, 1));
        half = _mm_add_epi32(half, _mm_shuffle_epi32(half, 0x4e));
        half = _mm_add_epi32(half, _mm_shuffle_epi32(half, 0xb1));
        int32_t offset = _mm_cvtsi128_si32(half);
        for (; i < groupSize; i++) offset += 128 * x[i];
        offsets[g] = offset;
    }
}

/* One quad's two weight vectors, moved to unsigned. */
#define TFQ_VNNI_WEIGHTS                                                                       \
    __m256i w0 = _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)w), bias),               \
            w1 = _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)(w + 32)), bias)

#define TFQ_VNNI_TOKEN(t) do {                                                                 \
        int32_t word;                                                                          \
        __builtin_memcpy(&word, x + (t) * stride, 4);                                          \
        __m256i xv = _mm256_set1_epi32(word);                                                  \
        low##t = _mm256_dpbusd_epi32(low##t, w0, xv);                                          \
        high##t = _mm256_dpbusd_epi32(high##t, w1, xv);                                        \
    } while (0)

#define TFQ_VNNI_STORE(t) do {                                                                 \
        __m256i offset = _mm256_set1_epi32(offsets[(t) * offsetStride]);                       \
        low##t = _mm256_sub_epi32(low##t, offset);                                             \
        high##t = _mm256_sub_epi32(high##t, offset);                                           \
        tfq_i32x16 sums = __builtin_shufflevector((tfq_i32x8)low##t, (tfq_i32x8)high##t,       \
                                                  0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15); \
        __builtin_memcpy(out + 16 * (t), &sums, sizeof sums);                                  \
    } while (0)

/* Writes the 16 sums to `out`: a 64-byte vector returned from a function with AVX-512 enabled
 * comes back in a zmm register, which a caller built without AVX-512 does not read.
 * `offsets[0]`: the group's 128·Σ x. */
TFQ_VNNI_TARGET
static inline void tfq_int8_group_vnni(const int8_t *w, const int8_t *x, long quads, const int32_t *offsets, int32_t *out) {
    const __m256i bias = _mm256_set1_epi8((char)0x80);
    const long stride = 0, offsetStride = 0;  /* what the shared macros read, for one token */
    __m256i low0 = _mm256_setzero_si256(), high0 = low0;
    for (long q = 0; q < quads; q++, w += 64, x += 4) {
        __builtin_prefetch(w + TFQ_PREFETCH_AHEAD, 0, 3);
        TFQ_VNNI_WEIGHTS;
        TFQ_VNNI_TOKEN(0);
    }
    TFQ_VNNI_STORE(0);
}

/* Four tokens, their activations `stride` bytes apart and their offsets `offsetStride` apart. */
TFQ_VNNI_TARGET
static inline void tfq_int8_group4_vnni(const int8_t *w, const int8_t *x, long stride, long quads,
                                        const int32_t *offsets, long offsetStride, int32_t *out) {
    const __m256i bias = _mm256_set1_epi8((char)0x80);
    __m256i low0 = _mm256_setzero_si256(), high0 = low0, low1 = low0, high1 = low0, low2 = low0, high2 = low0, low3 = low0, high3 = low0;
    for (long q = 0; q < quads; q++, w += 64, x += 4) {
        __builtin_prefetch(w + TFQ_PREFETCH_AHEAD, 0, 3);
        TFQ_VNNI_WEIGHTS;
        TFQ_VNNI_TOKEN(0); TFQ_VNNI_TOKEN(1); TFQ_VNNI_TOKEN(2); TFQ_VNNI_TOKEN(3);
    }
    TFQ_VNNI_STORE(0); TFQ_VNNI_STORE(1); TFQ_VNNI_STORE(2); TFQ_VNNI_STORE(3);
}

TFQ_VNNI_TARGET
static inline void tfq_int8_group2_vnni(const int8_t *w, const int8_t *x, long stride, long quads,
                                        const int32_t *offsets, long offsetStride, int32_t *out) {
    const __m256i bias = _mm256_set1_epi8((char)0x80);
    __m256i low0 = _mm256_setzero_si256(), high0 = low0, low1 = low0, high1 = low0;
    for (long q = 0; q < quads; q++, w += 64, x += 4) {
        __builtin_prefetch(w + TFQ_PREFETCH_AHEAD, 0, 3);
        TFQ_VNNI_WEIGHTS;
        TFQ_VNNI_TOKEN(0); TFQ_VNNI_TOKEN(1);
    }
    TFQ_VNNI_STORE(0); TFQ_VNNI_STORE(1);
}

#if defined(__AVX512VNNI__) && defined(__AVX512VL__)
/* What a TFQ_AVX512VNNI build calls: defined only when the compiler targets a CPU with VNNI
 * and VL, so that define without the CPU flag fails to compile instead of building a binary
 * whose start-up check (tfq_cpu.h) knows nothing of the instructions it uses. */
static inline void tfq_int8_offsets_vnni_selected(const int8_t *x, long groups, long groupSize, int32_t *offsets) {
    tfq_int8_offsets_vnni(x, groups, groupSize, offsets);
}
static inline void tfq_int8_group_vnni_selected(const int8_t *w, const int8_t *x, long quads, const int32_t *offsets, int32_t *out) {
    tfq_int8_group_vnni(w, x, quads, offsets, out);
}
static inline void tfq_int8_group4_vnni_selected(const int8_t *w, const int8_t *x, long stride, long quads,
                                                 const int32_t *offsets, long offsetStride, int32_t *out) {
    tfq_int8_group4_vnni(w, x, stride, quads, offsets, offsetStride, out);
}
static inline void tfq_int8_group2_vnni_selected(const int8_t *w, const int8_t *x, long stride, long quads,
                                                 const int32_t *offsets, long offsetStride, int32_t *out) {
    tfq_int8_group2_vnni(w, x, stride, quads, offsets, offsetStride, out);
}
#endif
#endif /* __x86_64__ */

#endif
