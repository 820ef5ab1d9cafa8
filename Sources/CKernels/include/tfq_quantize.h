#ifndef TFQ_QUANTIZE_H
#define TFQ_QUANTIZE_H

/* The activation quantizer of formats/tfq.md §11.4 for ARM64 and AVX2, one group at a time:
 * m = max|x| (NaN ignored), s = m / 127, inv = s == 0 ? 0 : 1 / s, and
 * q = round(x · inv) half away from zero, clamped to ±127, NaN giving 0. ARMv8.0 has that
 * rounding in one instruction (fcvtas, which also saturates ±inf), so each value costs a
 * multiply, a conversion, a clamp and a share of two narrowing moves. The Swift quantizer
 * (ActivationQuantizer) computes the same values with portable vector arithmetic for the
 * other builds; compiled, it stores one byte at a time and takes the group maximum lane by
 * lane (on ARM64 it took 20% of a small model's instructions per token).
 * Groups are multiples of 4 values (the format's rule for int8 groups). */

#include <stdint.h>

/* 1/s, or 0 for a zero scale (every value of such a group is 0). */
static inline float tfq_quantize_inverse(float scale) { return scale == 0 ? 0 : 1 / scale; }

#if defined(__aarch64__)
#include <arm_neon.h>

/* m where it is not below a: a NaN (quiet or signalling) loses, as the Swift quantizer's
 * `>` has it. (fmaxnm would not do: a signalling NaN wins there.) */
static inline float32x4_t tfq_quantize_larger_neon(float32x4_t m, float32x4_t a) {
    return vbslq_f32(vcgtq_f32(a, m), a, m);
}

static inline float tfq_quantize_max_neon(const float *x, long n) {
    float32x4_t m = vdupq_n_f32(0);
    for (long i = 0; i < n; i += 4) m = tfq_quantize_larger_neon(m, vabsq_f32(vld1q_f32(x + i)));
    return vmaxvq_f32(m);
}

/* round(v · inv), clamped to ±127 (fcvtas gives 0 for NaN and saturates ±inf). */
static inline int32x4_t tfq_quantize_lanes_neon(float32x4_t v, float32x4_t inv) {
    int32x4_t q = vcvtaq_s32_f32(vmulq_f32(v, inv));
    return vmaxq_s32(vminq_s32(q, vdupq_n_s32(127)), vdupq_n_s32(-127));
}

/* Writes q[0..<n] from INPUT(i), the 4 input values at i (x itself in the first pass, the
 * residual x − float(q₁)·s₁ in the second), scaled by `inv`: 8 bytes a step, 4 in the tail. */
#define TFQ_QUANTIZE_LOOP(INPUT)                                                                  \
    do {                                                                                          \
        long i = 0;                                                                               \
        for (; i + 8 <= n; i += 8) {                                                              \
            int16x8_t h = vcombine_s16(vmovn_s32(tfq_quantize_lanes_neon(INPUT(i), inv)),       \
                                       vmovn_s32(tfq_quantize_lanes_neon(INPUT(i + 4), inv)));  \
            vst1_s8(q + i, vmovn_s16(h));                                                         \
        }                                                                                         \
        if (i < n) {                                                                              \
            int16x8_t h = vcombine_s16(vmovn_s32(tfq_quantize_lanes_neon(INPUT(i), inv)), vdup_n_s16(0)); \
            int8x8_t b = vmovn_s16(h);                                                            \
            vst1_lane_s32((int32_t *)(void *)(q + i), vreinterpret_s32_s8(b), 0);                 \
        }                                                                                         \
    } while (0)

/* One pass over one group: writes q[0..<n], returns the scale. */
static inline float tfq_quantize_group_neon(const float *x, long n, int8_t *q) {
    float scale = tfq_quantize_max_neon(x, n) / 127;
    float32x4_t inv = vdupq_n_f32(tfq_quantize_inverse(scale));
#define TFQ_INPUT_X(at) vld1q_f32(x + (at))
    TFQ_QUANTIZE_LOOP(TFQ_INPUT_X);
#undef TFQ_INPUT_X
    return scale;
}

/* x − float(q₁)·s₁ for 4 values, q₁ as the first pass rounds it (not fused: §11.4's ⊖ and ⊗). */
static inline float32x4_t tfq_quantize_residual_lanes_neon(const float *x, float32x4_t inv1, float32x4_t s1) {
    float32x4_t v = vld1q_f32(x);
    return vsubq_f32(v, vmulq_f32(vcvtq_f32_s32(tfq_quantize_lanes_neon(v, inv1)), s1));
}

/* The second pass over one group whose first pass had scale `first`: quantizes the residual
 * (recomputed, not stored), writes q₂[0..<n], returns s₂. */
static inline float tfq_quantize_residual_group_neon(const float *x, long n, float first, int8_t *q) {
    float32x4_t s1 = vdupq_n_f32(first), inv1 = vdupq_n_f32(tfq_quantize_inverse(first));
    float32x4_t m = vdupq_n_f32(0);
    for (long i = 0; i < n; i += 4) m = tfq_quantize_larger_neon(m, vabsq_f32(tfq_quantize_residual_lanes_neon(x + i, inv1, s1)));
    float scale = vmaxvq_f32(m) / 127;
    float32x4_t inv = vdupq_n_f32(tfq_quantize_inverse(scale));
#define TFQ_INPUT_RESIDUAL(at) tfq_quantize_residual_lanes_neon(x + (at), inv1, s1)
    TFQ_QUANTIZE_LOOP(TFQ_INPUT_RESIDUAL);
#undef TFQ_INPUT_RESIDUAL
    return scale;
}
#undef TFQ_QUANTIZE_LOOP
#endif /* __aarch64__ */

#if defined(__x86_64__) && defined(__AVX2__)
#include <immintrin.h>

/* x86-64 has no rounding half away from zero: q = trunc(v + copysign(0.5 − 2⁻²⁵, v)) is
 * that rounding for every |v| ≤ 127.5 (checked over all such floats), so v is clamped to
 * ±127 first, after NaN is made 0. Eight values a step, four in a group's tail. */
static inline __m256 tfq_quantize_round8(__m256 v) {
    v = _mm256_and_ps(v, _mm256_cmp_ps(v, v, _CMP_ORD_Q));                                    /* NaN → +0 */
    v = _mm256_min_ps(_mm256_max_ps(v, _mm256_set1_ps(-127)), _mm256_set1_ps(127));
    __m256 half = _mm256_or_ps(_mm256_set1_ps(0.49999997f), _mm256_and_ps(v, _mm256_set1_ps(-0.0f)));
    return _mm256_round_ps(_mm256_add_ps(v, half), _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
}

static inline __m128 tfq_quantize_round4(__m128 v) {
    v = _mm_and_ps(v, _mm_cmpord_ps(v, v));
    v = _mm_min_ps(_mm_max_ps(v, _mm_set1_ps(-127)), _mm_set1_ps(127));
    __m128 half = _mm_or_ps(_mm_set1_ps(0.49999997f), _mm_and_ps(v, _mm_set1_ps(-0.0f)));
    return _mm_round_ps(_mm_add_ps(v, half), _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
}

static inline void tfq_quantize_store8(int8_t *q, __m256 rounded) {
    __m256i i = _mm256_cvttps_epi32(rounded);
    __m128i h = _mm_packs_epi32(_mm256_castsi256_si128(i), _mm256_extracti128_si256(i, 1));
    _mm_storel_epi64((__m128i *)(void *)q, _mm_packs_epi16(h, h));
}

static inline void tfq_quantize_store4(int8_t *q, __m128 rounded) {
    __m128i i = _mm_cvttps_epi32(rounded);
    __m128i h = _mm_packs_epi32(i, i);
    int32_t word = _mm_cvtsi128_si32(_mm_packs_epi16(h, h));
    __builtin_memcpy(q, &word, 4);
}

/* max|x| over n values; NaN loses (maxps returns its second operand when one is NaN). */
static inline float tfq_quantize_max_avx2(__m256 m8, __m128 m4) {
    __m128 m = _mm_max_ps(_mm_max_ps(_mm256_castps256_ps128(m8), _mm256_extractf128_ps(m8, 1)), m4);
    m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    m = _mm_max_ss(m, _mm_shuffle_ps(m, m, 1));
    return _mm_cvtss_f32(m);
}

#define TFQ_QUANTIZE_PASS_AVX2(INPUT8, INPUT4)                                                    \
    do {                                                                                          \
        __m256 m8 = _mm256_setzero_ps(), sign = _mm256_set1_ps(-0.0f);                          \
        __m128 m4 = _mm_setzero_ps();                                                             \
        long i = 0;                                                                               \
        for (; i + 8 <= n; i += 8) m8 = _mm256_max_ps(_mm256_andnot_ps(sign, INPUT8(i)), m8);   \
        if (i < n) m4 = _mm_andnot_ps(_mm256_castps256_ps128(sign), INPUT4(i));                  \
        m4 = _mm_max_ps(m4, _mm_setzero_ps());                                                    \
        scale = tfq_quantize_max_avx2(m8, m4) / 127;                                              \
        __m256 inv = _mm256_set1_ps(tfq_quantize_inverse(scale));                          \
        for (i = 0; i + 8 <= n; i += 8) tfq_quantize_store8(q + i, tfq_quantize_round8(_mm256_mul_ps(INPUT8(i), inv))); \
        if (i < n) tfq_quantize_store4(q + i, tfq_quantize_round4(_mm_mul_ps(INPUT4(i), _mm256_castps256_ps128(inv)))); \
    } while (0)

/* One pass over one group: writes q[0..<n], returns the scale. */
static inline float tfq_quantize_group_avx2(const float *x, long n, int8_t *q) {
    float scale;
#define TFQ_X8(at) _mm256_loadu_ps(x + (at))
#define TFQ_X4(at) _mm_loadu_ps(x + (at))
    TFQ_QUANTIZE_PASS_AVX2(TFQ_X8, TFQ_X4);
#undef TFQ_X8
#undef TFQ_X4
    return scale;
}

/* The second pass, as tfq_quantize_residual_group_neon: x − float(q₁)·s₁, not fused. */
static inline float tfq_quantize_residual_group_avx2(const float *x, long n, float first, int8_t *q) {
    float scale;
    __m256 s1 = _mm256_set1_ps(first), inv1 = _mm256_set1_ps(tfq_quantize_inverse(first));
#define TFQ_R8(at) _mm256_sub_ps(_mm256_loadu_ps(x + (at)), _mm256_mul_ps(tfq_quantize_round8(_mm256_mul_ps(_mm256_loadu_ps(x + (at)), inv1)), s1))
#define TFQ_R4(at) _mm_sub_ps(_mm_loadu_ps(x + (at)), _mm_mul_ps(tfq_quantize_round4(_mm_mul_ps(_mm_loadu_ps(x + (at)), _mm256_castps256_ps128(inv1))), _mm256_castps256_ps128(s1)))
    TFQ_QUANTIZE_PASS_AVX2(TFQ_R8, TFQ_R4);
#undef TFQ_R8
#undef TFQ_R4
    return scale;
}
#undef TFQ_QUANTIZE_PASS_AVX2
#endif /* __x86_64__ && __AVX2__ */

#endif
