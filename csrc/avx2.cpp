// AVX2 kernels (compiled with -mavx2 for this file only; chosen at run time by CPUID).
//
// vpmaddubsw multiplies u8 x s8 and adds adjacent pairs into a *saturating* int16. The
// compensation trick (x + 128 as u8) can reach 2 * 255 * 127 = 64770 and would saturate, so we
// use the sign trick instead: |a| as u8 times sign(a) * w as s8. Weights are in [-127, 127] and
// |a| <= 128, so a pair sum is at most 2 * 128 * 127 = 32512 < 32767: never saturates.
#include <immintrin.h>

#include <cstring>

#include "kernels.h"

namespace fastctrl {
namespace {

constexpr int kRows = 4;  // rows per micro-tile: 4 rows x 16 channels = 8 accumulators

// Named accumulators (not an array): GCC 12 spills arrays of vector accumulators every step.
#define FC_ROW_DECL(r) __m256i c##r##0 = _mm256_setzero_si256(), c##r##1 = _mm256_setzero_si256();
#define FC_ROW_STEP(r)                                                                   \
  if constexpr (R > r) {                                                                 \
    int32_t av;                                                                          \
    std::memcpy(&av, a + r * lda + 4 * g, 4);                                            \
    const __m256i x = _mm256_set1_epi32(av);                                             \
    const __m256i ax = _mm256_abs_epi8(x);                                               \
    const __m256i p0 = _mm256_maddubs_epi16(ax, _mm256_sign_epi8(w0, x));                \
    const __m256i p1 = _mm256_maddubs_epi16(ax, _mm256_sign_epi8(w1, x));                \
    c##r##0 = _mm256_add_epi32(c##r##0, _mm256_madd_epi16(p0, ones));                    \
    c##r##1 = _mm256_add_epi32(c##r##1, _mm256_madd_epi16(p1, ones));                    \
  }
#define FC_ROW_STORE(r)                                                                  \
  if constexpr (R > r) {                                                                 \
    alignas(32) int32_t tmp[16];                                                         \
    _mm256_store_si256(reinterpret_cast<__m256i*>(tmp), c##r##0);                        \
    _mm256_store_si256(reinterpret_cast<__m256i*>(tmp + 8), c##r##1);                    \
    for (int j = 0; j < cols; ++j) c[r * ldc + j] = tmp[j];                              \
  }

template <int R>
void tile_avx2(const int8_t* a, int64_t lda, const int8_t* wsub, int64_t groups, int32_t* c,
               int64_t ldc, int cols) {
  const __m256i ones = _mm256_set1_epi16(1);
  FC_ROW_DECL(0) FC_ROW_DECL(1) FC_ROW_DECL(2) FC_ROW_DECL(3)
  for (int64_t g = 0; g < groups; ++g) {
    const int8_t* wp = wsub + g * (4 * kPanel);
    const __m256i w0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(wp));
    const __m256i w1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(wp + 32));
    FC_ROW_STEP(0) FC_ROW_STEP(1) FC_ROW_STEP(2) FC_ROW_STEP(3)
  }
  FC_ROW_STORE(0) FC_ROW_STORE(1) FC_ROW_STORE(2) FC_ROW_STORE(3)
}

template <int R>
void rows_avx2(const int8_t* a, int64_t lda, const PackedView& w, int32_t* c, int64_t ldc) {
  const int64_t groups = w.kp / 4;
  for (int64_t n0 = 0; n0 < w.n; n0 += 16) {
    const int8_t* wsub = w.data + (n0 / kPanel) * groups * (4 * kPanel) + (n0 % kPanel) * 4;
    const int cols = int(w.n - n0 < 16 ? w.n - n0 : 16);
    tile_avx2<R>(a, lda, wsub, groups, c + n0, ldc, cols);
  }
}

void gemm_avx2(const int8_t* a, int64_t m, int64_t lda, const PackedView& w, int32_t* c,
               int64_t ldc, uint8_t* /*scratch*/) {
  int64_t r = 0;
  for (; r + kRows <= m; r += kRows) rows_avx2<kRows>(a + r * lda, lda, w, c + r * ldc, ldc);
  switch (m - r) {
    case 3: rows_avx2<3>(a + r * lda, lda, w, c + r * ldc, ldc); break;
    case 2: rows_avx2<2>(a + r * lda, lda, w, c + r * ldc, ldc); break;
    case 1: rows_avx2<1>(a + r * lda, lda, w, c + r * ldc, ldc); break;
    default: break;
  }
}

uint32_t absmax_bits_avx2(const float* x, int64_t n) {
  const __m256i mask = _mm256_set1_epi32(0x7fffffff);
  __m256i m = _mm256_setzero_si256();
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256i b = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x + i));
    m = _mm256_max_epu32(m, _mm256_and_si256(b, mask));
  }
  alignas(32) uint32_t t[8];
  _mm256_store_si256(reinterpret_cast<__m256i*>(t), m);
  uint32_t r = 0;
  for (int j = 0; j < 8; ++j) r = t[j] > r ? t[j] : r;
  for (; i < n; ++i) {
    uint32_t b;
    std::memcpy(&b, x + i, 4);
    b &= 0x7fffffffu;
    r = b > r ? b : r;
  }
  return r;
}

void quantize_avx2(const float* x, int64_t n, float inv, int8_t* q) {
  const __m256 vinv = _mm256_set1_ps(inv);
  const __m256i lo = _mm256_set1_epi32(-127), hi = _mm256_set1_epi32(127);
  const __m256i perm = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
  auto conv = [&](const float* p) {
    const __m256 v = _mm256_mul_ps(_mm256_loadu_ps(p), vinv);
    const __m256i r =
        _mm256_cvtps_epi32(_mm256_round_ps(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    return _mm256_min_epi32(_mm256_max_epi32(r, lo), hi);
  };
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    const __m256i ab = _mm256_packs_epi32(conv(x + i), conv(x + i + 8));
    const __m256i cd = _mm256_packs_epi32(conv(x + i + 16), conv(x + i + 24));
    const __m256i bytes = _mm256_permutevar8x32_epi32(_mm256_packs_epi16(ab, cd), perm);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(q + i), bytes);
  }
  const float magic = 12582912.0f;  // same rounding as quantize_scalar
  for (; i < n; ++i) {
    float v = x[i] * inv;
    v = (v + magic) - magic;
    int32_t iv = int32_t(v);
    iv = iv > 127 ? 127 : (iv < -127 ? -127 : iv);
    q[i] = int8_t(iv);
  }
}

}  // namespace

const KernelTable kAvx2Kernels = {"avx2", gemm_avx2, absmax_bits_avx2, quantize_avx2};

}  // namespace fastctrl
