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
/* What else a build for one CPU (-march=native) lets the compiler emit anywhere, checked so
 * that a binary made on a newer x86-64 CPU stops with a message on an older one. */
#define TFQ_CPU_AVX512DQ 64u
#define TFQ_CPU_AVX512CD 128u
#define TFQ_CPU_AVX512VL 256u
#define TFQ_CPU_AVX512IFMA 512u
#define TFQ_CPU_AVX512VBMI 1024u
#define TFQ_CPU_AVX512VBMI2 2048u
#define TFQ_CPU_AVX512BITALG 4096u
#define TFQ_CPU_AVX512VPOPCNTDQ 8192u
#define TFQ_CPU_AVX512BF16 16384u
#define TFQ_CPU_GFNI 32768u
#define TFQ_CPU_VAES 65536u
#define TFQ_CPU_VPCLMULQDQ 131072u
#define TFQ_CPU_F16C 262144u
#define TFQ_CPU_BMI2 524288u

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
    if (((c >> 29) & 1) && avxState) features |= TFQ_CPU_F16C;
    if (__get_cpuid_count(7, 1, &a, &b, &c, &d) && ((a >> 5) & 1) && avx512State) features |= TFQ_CPU_AVX512BF16;
    if (__get_cpuid_count(7, 0, &a, &b, &c, &d)) {
        if ((b >> 8) & 1) features |= TFQ_CPU_BMI2;
        if ((c >> 8) & 1) features |= TFQ_CPU_GFNI;
        if (((c >> 9) & 1) && avxState) features |= TFQ_CPU_VAES;
        if (((c >> 10) & 1) && avxState) features |= TFQ_CPU_VPCLMULQDQ;
        if (avx512State) {
            static const struct { int reg, bit; unsigned feature; } avx512[] = {
                {0, 17, TFQ_CPU_AVX512DQ}, {0, 28, TFQ_CPU_AVX512CD}, {0, 31, TFQ_CPU_AVX512VL}, {0, 21, TFQ_CPU_AVX512IFMA},
                {1, 1, TFQ_CPU_AVX512VBMI}, {1, 6, TFQ_CPU_AVX512VBMI2}, {1, 12, TFQ_CPU_AVX512BITALG}, {1, 14, TFQ_CPU_AVX512VPOPCNTDQ},
            };
            for (unsigned i = 0; i < sizeof avx512 / sizeof avx512[0]; i++)
                if ((((avx512[i].reg == 0 ? b : c) >> avx512[i].bit) & 1)) features |= avx512[i].feature;
        }
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
#if defined(__x86_64__)
#define TFQ_NEEDS(bit, name) if (!(features & (bit))) return name;
#if defined(__AVX512DQ__)
    TFQ_NEEDS(TFQ_CPU_AVX512DQ, "AVX-512DQ")
#endif
#if defined(__AVX512CD__)
    TFQ_NEEDS(TFQ_CPU_AVX512CD, "AVX-512CD")
#endif
#if defined(__AVX512VL__)
    TFQ_NEEDS(TFQ_CPU_AVX512VL, "AVX-512VL")
#endif
#if defined(__AVX512IFMA__)
    TFQ_NEEDS(TFQ_CPU_AVX512IFMA, "AVX-512 IFMA")
#endif
#if defined(__AVX512VBMI__)
    TFQ_NEEDS(TFQ_CPU_AVX512VBMI, "AVX-512 VBMI")
#endif
#if defined(__AVX512VBMI2__)
    TFQ_NEEDS(TFQ_CPU_AVX512VBMI2, "AVX-512 VBMI2")
#endif
#if defined(__AVX512BITALG__)
    TFQ_NEEDS(TFQ_CPU_AVX512BITALG, "AVX-512 BITALG")
#endif
#if defined(__AVX512VPOPCNTDQ__)
    TFQ_NEEDS(TFQ_CPU_AVX512VPOPCNTDQ, "AVX-512 VPOPCNTDQ")
#endif
#if defined(__AVX512BF16__)
    TFQ_NEEDS(TFQ_CPU_AVX512BF16, "AVX-512 BF16")
#endif
#if defined(__GFNI__)
    TFQ_NEEDS(TFQ_CPU_GFNI, "GFNI")
#endif
#if defined(__VAES__)
    TFQ_NEEDS(TFQ_CPU_VAES, "VAES")
#endif
#if defined(__VPCLMULQDQ__)
    TFQ_NEEDS(TFQ_CPU_VPCLMULQDQ, "VPCLMULQDQ")
#endif
#if defined(__F16C__)
    TFQ_NEEDS(TFQ_CPU_F16C, "F16C")
#endif
#if defined(__BMI2__)
    TFQ_NEEDS(TFQ_CPU_BMI2, "BMI2")
#endif
#undef TFQ_NEEDS
#endif
#if defined(__aarch64__) && defined(__ARM_FEATURE_DOTPROD)
    if (!(features & TFQ_CPU_DOTPROD)) return "the dot product (ARMv8.2 sdot)";
#endif
    (void)features;
    return 0;
}

#endif
