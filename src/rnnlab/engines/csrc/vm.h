// Vectorisable math and build helpers shared by rnnlab's compiled loops (lstm.cpp,
// reservoir.cpp): branch-free exp, sigmoid and tanh that the compiler vectorises at -O3,
// the x86-64 multiversioning attribute and a scoped flush-to-zero of denormals.
#pragma once

#include <cstdint>
#include <cstring>
#if defined(__x86_64__) || defined(__SSE2__)
#include <xmmintrin.h>
#endif

namespace {

#define RNNLAB_AI inline __attribute__((always_inline))

// ------------------------------------------------------------------ vectorisable math
namespace vm {

// Cephes' exp: x = n ln2 + r (ln2 split in two for exactness), exp(r) by a Pade form
// (double, ~1 ulp) or a degree-6 polynomial (float, ~1 ulp), 2^n put into the exponent
// bits. n is found with the 1.5 * 2^52 (2^23) rounding trick, so that the whole function
// is branch-free arithmetic the compiler vectorises.
RNNLAB_AI double exp_(double x) {
  x = x < -708.0 ? -708.0 : (x > 709.0 ? 709.0 : x);
  const double magic = 6755399441055744.0;  // 1.5 * 2^52
  double t = x * 1.4426950408889634073599 + magic;
  double n = t - magic;  // round(x / ln 2)
  int64_t tb, mb;
  std::memcpy(&tb, &t, 8);
  std::memcpy(&mb, &magic, 8);
  double r = x - n * 6.93145751953125E-1;
  r = r - n * 1.42860682030941723212E-6;
  double z = r * r;
  double px = r * ((1.26177193074810590878E-4 * z + 3.02994407707441961300E-2) * z +
                   9.99999999999999999910E-1);
  double qx = ((3.00198505138664455042E-6 * z + 2.52448340349684104192E-3) * z +
               2.27265548208155028766E-1) * z + 2.00000000000000000009E0;
  double e = 1.0 + 2.0 * px / (qx - px);
  int64_t sb = (tb - mb + 1023) << 52;
  double s;
  std::memcpy(&s, &sb, 8);
  return e * s;
}

RNNLAB_AI float exp_(float x) {
  x = x < -87.0f ? -87.0f : (x > 88.0f ? 88.0f : x);
  const float magic = 12582912.0f;  // 1.5 * 2^23
  float t = x * 1.44269504088896341f + magic;
  float n = t - magic;
  int32_t tb, mb;
  std::memcpy(&tb, &t, 4);
  std::memcpy(&mb, &magic, 4);
  float r = x - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  float z = r * r;
  float e = (((((1.9875691500E-4f * r + 1.3981999507E-3f) * r + 8.3334519073E-3f) * r +
              4.1665795894E-2f) * r + 1.6666665459E-1f) * r + 5.0000001201E-1f) * z + r + 1.0f;
  int32_t sb = (tb - mb + 127) << 23;
  float s;
  std::memcpy(&s, &sb, 4);
  return e * s;
}

template <typename T>
RNNLAB_AI T sigmoid_(T x) {
  return T(1) / (T(1) + exp_(-x));
}

// Cephes' tanh: a rational (double) or polynomial (float) form for |x| < 0.625, where
// 1 - 2 / (exp(2x) + 1) would lose relative precision, and that form elsewhere; both are
// computed and one selected, which keeps the loop branch-free.
RNNLAB_AI double tanh_(double x) {
  double ax = x < 0 ? -x : x;
  double z = x * x;
  double small = x + x * z *
      (((-9.64399179425052238628E-1 * z - 9.92877231001918586564E1) * z -
        1.61468768441708447952E3) /
       (((z + 1.12811678491632931402E2) * z + 2.23548839060100448583E3) * z +
        4.84406305325125486048E3));
  double big = 1.0 - 2.0 / (exp_(2.0 * ax) + 1.0);
  big = x < 0 ? -big : big;
  return ax < 0.625 ? small : big;
}

RNNLAB_AI float tanh_(float x) {
  float ax = x < 0 ? -x : x;
  float z = x * x;
  float small = ((((-5.70498872745E-3f * z + 2.06390887954E-2f) * z - 5.37397155531E-2f) * z +
                  1.33314422036E-1f) * z - 3.33332819422E-1f) * z * x + x;
  float big = 1.0f - 2.0f / (exp_(2.0f * ax) + 1.0f);
  big = x < 0 ? -big : big;
  return ax < 0.625f ? small : big;
}

}  // namespace vm

// Built for SSE2 (x86-64's baseline), AVX2 + FMA and AVX-512; the loader picks one (GCC's
// function multiversioning, an ifunc). Elsewhere one build for the compiler's baseline.
#if defined(__x86_64__) && defined(__linux__) && defined(__GNUC__) && !defined(__clang__)
#define RNNLAB_CLONES \
  __attribute__((target_clones("default", "arch=x86-64-v3", "arch=x86-64-v4")))
#else
#define RNNLAB_CLONES
#endif

// Denormals flushed to zero (MXCSR's FTZ and DAZ) while a step runs, then the caller's mode
// restored: the vectorised code evaluates every lane of both sides of its selects, and a
// lane that underflows there (its result unused) costs a microcode assist of ~100 cycles
// per instruction; measured 2.5x slower steps on realistic data without this. Values below
// 1.2e-38 (float) or 2.2e-308 (double) become 0 in these steps.
#if defined(__x86_64__) || defined(__SSE2__)
struct FlushDenormals {
  unsigned saved = _mm_getcsr();
  FlushDenormals() { _mm_setcsr(saved | 0x8040); }
  ~FlushDenormals() { _mm_setcsr(saved); }
};
#else
struct FlushDenormals {};
#endif

}  // namespace
