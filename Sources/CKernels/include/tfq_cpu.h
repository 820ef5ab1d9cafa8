#ifndef TFQ_CPU_H
#define TFQ_CPU_H

/* What the CPU running this code has, and what this build was compiled to need. A build for
 * one CPU (tools/build.sh) run on a CPU without the features would die of an illegal
 * instruction somewhere in a kernel; the CLI checks first and says which feature is missing. */

#define TFQ_CPU_FMA 1u
#define TFQ_CPU_AVX2 2u
#define TFQ_CPU_AVX512F 4u
#define TFQ_CPU_AVX512BW 8u
#define TFQ_CPU_DOTPROD 16u
#define TFQ_CPU_AVX512VNNI 32u   /* AVX-512 VNNI with AVX-512VL: vpdpbusd on 256-bit vectors */

#if defined(__x86_64__)
#include <cpuid.h>

static inline unsigned tfq_cpu_features(void) {
    unsigned a, b, c, d, features = 0;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return 0;
    int osxsave = (c >> 27) & 1, fma = (c >> 12) & 1;
    unsigned long long xcr0 = 0;
    if (osxsave) { unsigned lo, hi; __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0)); xcr0 = ((unsigned long long)hi << 32) | lo; }
    int avxState = (xcr0 & 0x6) == 0x6, avx512State = (xcr0 & 0xE6) == 0xE6;   /* the OS saves the registers */
    if (fma && avxState) features |= TFQ_CPU_FMA;
    if (__get_cpuid_count(7, 0, &a, &b, &c, &d)) {
        if (((b >> 5) & 1) && avxState) features |= TFQ_CPU_AVX2;
        if (((b >> 16) & 1) && avx512State) features |= TFQ_CPU_AVX512F;
        if (((b >> 30) & 1) && avx512State) features |= TFQ_CPU_AVX512BW;
        if (((c >> 11) & 1) && ((b >> 31) & 1) && avx512State) features |= TFQ_CPU_AVX512VNNI;
    }
    return features;
}
#elif defined(__aarch64__) && defined(__linux__)
#include <sys/auxv.h>

static inline unsigned tfq_cpu_features(void) {
    unsigned long hwcap = getauxval(AT_HWCAP);
    unsigned features = TFQ_CPU_FMA;                 /* every ARMv8-A core has NEON with FMA */
    if (hwcap & (1ul << 20)) features |= TFQ_CPU_DOTPROD;   /* HWCAP_ASIMDDP */
    return features;
}
#else
static inline unsigned tfq_cpu_features(void) { return 0; }
#endif

/* The first feature this build's C code was compiled to use that `features` lacks, or NULL.
 * tools/build.sh gives Swift and C the same CPU, so this speaks for the whole build. */
static inline const char *tfq_cpu_missing_feature(unsigned features) {
#if defined(__x86_64__) && defined(__FMA__)
    if (!(features & TFQ_CPU_FMA)) return "FMA";
#endif
#if defined(__x86_64__) && defined(__AVX2__)
    if (!(features & TFQ_CPU_AVX2)) return "AVX2";
#endif
#if defined(__x86_64__) && defined(__AVX512F__)
    if (!(features & TFQ_CPU_AVX512F)) return "AVX-512F";
#endif
#if defined(__x86_64__) && defined(__AVX512BW__)
    if (!(features & TFQ_CPU_AVX512BW)) return "AVX-512BW";
#endif
#if defined(__x86_64__) && defined(__AVX512VNNI__) && defined(__AVX512VL__)
    if (!(features & TFQ_CPU_AVX512VNNI)) return "AVX-512 VNNI";
#endif
#if defined(__aarch64__) && defined(__ARM_FEATURE_DOTPROD)
    if (!(features & TFQ_CPU_DOTPROD)) return "the dot product (ARMv8.2 sdot)";
#endif
    (void)features;
    return 0;
}

#endif
