// AVX-512 VNNI kernels (compiled with -mavx512f/bw/vl/vnni for this file only; chosen at run
// time by CPUID + XGETBV). vpdpbusd multiplies u8 x s8 and adds groups of 4 into int32 with no
// intermediate saturation. Activations are shifted by +128 to u8, so
//   sum (a + 128) * w = sum a * w + 128 * sum w,
// and the packed per-channel compensation 128 * sum_k w[n, k] is subtracted at the end.
#include <immintrin.h>

#include <cstring>

#include "kernels.h"

namespace fastctrl {
namespace {

// 6 rows x 64 channels = 24 zmm accumulators + 4 weight registers + 1 broadcast (of 32).
constexpr int kRows = 6;

// Accumulators are named variables, not an array: GCC 12 spilled an __m512i acc[6][4] array to
// the stack on every k step (24 stores per 24 vpdpbusd); named registers took a 256x2048x128
// GEMM from 112 to 220 GMAC/s (measured, same session).
#define FC_ROW_DECL(r)                                                             \
  __m512i c##r##0 = _mm512_setzero_si512(), c##r##1 = _mm512_setzero_si512(),      \
          c##r##2 = _mm512_setzero_si512(), c##r##3 = _mm512_setzero_si512();
#define FC_ROW_STEP(r)                                                             \
  if constexpr (R > r) {                                                           \
    int32_t av;                                                                    \
    std::memcpy(&av, a + r * lda + 4 * g, 4);                                      \
    const __m512i x = _mm512_set1_epi32(av);                                       \
    c##r##0 = _mm512_dpbusd_epi32(c##r##0, x, w0);                                 \
    c##r##1 = _mm512_dpbusd_epi32(c##r##1, x, w1);                                 \
    c##r##2 = _mm512_dpbusd_epi32(c##r##2, x, w2);                                 \
    c##r##3 = _mm512_dpbusd_epi32(c##r##3, x, w3);                                 \
  }
#define FC_ROW_STORE(r)                                                            \
  if constexpr (R > r) {                                                           \
    const __m512i acc[4] = {c##r##0, c##r##1, c##r##2, c##r##3};                   \
    store_row(acc, comp, c + r * ldc, cols);                                       \
  }

inline void store_row(const __m512i* acc, const int32_t* comp, int32_t* c, int64_t cols) {
  for (int j = 0; j < 4; ++j) {
    const int64_t left = cols - 16 * j;
    if (left <= 0) break;
    const __mmask16 m = left >= 16 ? __mmask16(0xffff) : __mmask16((1u << left) - 1u);
    _mm512_mask_storeu_epi32(c + 16 * j, m,
                             _mm512_sub_epi32(acc[j], _mm512_loadu_si512(comp + 16 * j)));
  }
}

template <int R>
void tile_vnni(const uint8_t* a, int64_t lda, const int8_t* panel, int64_t groups,
               const int32_t* comp, int32_t* c, int64_t ldc, int64_t cols) {
  FC_ROW_DECL(0) FC_ROW_DECL(1) FC_ROW_DECL(2) FC_ROW_DECL(3) FC_ROW_DECL(4) FC_ROW_DECL(5)
  for (int64_t g = 0; g < groups; ++g) {
    const int8_t* wp = panel + g * (4 * kPanel);
    const __m512i w0 = _mm512_loadu_si512(wp);
    const __m512i w1 = _mm512_loadu_si512(wp + 64);
    const __m512i w2 = _mm512_loadu_si512(wp + 128);
    const __m512i w3 = _mm512_loadu_si512(wp + 192);
    FC_ROW_STEP(0) FC_ROW_STEP(1) FC_ROW_STEP(2) FC_ROW_STEP(3) FC_ROW_STEP(4) FC_ROW_STEP(5)
  }
  FC_ROW_STORE(0) FC_ROW_STORE(1) FC_ROW_STORE(2) FC_ROW_STORE(3) FC_ROW_STORE(4)
  FC_ROW_STORE(5)
}

// One row (B = 1, latency-bound): two independent accumulator sets over even/odd k-groups give
// 8 vpdpbusd chains instead of 4 (latency 5). Not measurably faster on the shared bench host
// (B = 1 is L2-bandwidth bound), kept because it cannot be slower.
void tile_vnni_1(const uint8_t* a, const int8_t* panel, int64_t groups, const int32_t* comp,
                 int32_t* c, int64_t cols) {
  __m512i e0 = _mm512_setzero_si512(), e1 = _mm512_setzero_si512(),
          e2 = _mm512_setzero_si512(), e3 = _mm512_setzero_si512();
  __m512i o0 = _mm512_setzero_si512(), o1 = _mm512_setzero_si512(),
          o2 = _mm512_setzero_si512(), o3 = _mm512_setzero_si512();
  int64_t g = 0;
  for (; g + 2 <= groups; g += 2) {
    const int8_t* wp = panel + g * (4 * kPanel);
    int32_t av[2];
    std::memcpy(av, a + 4 * g, 8);
    const __m512i x = _mm512_set1_epi32(av[0]), y = _mm512_set1_epi32(av[1]);
    e0 = _mm512_dpbusd_epi32(e0, x, _mm512_loadu_si512(wp));
    e1 = _mm512_dpbusd_epi32(e1, x, _mm512_loadu_si512(wp + 64));
    e2 = _mm512_dpbusd_epi32(e2, x, _mm512_loadu_si512(wp + 128));
    e3 = _mm512_dpbusd_epi32(e3, x, _mm512_loadu_si512(wp + 192));
    o0 = _mm512_dpbusd_epi32(o0, y, _mm512_loadu_si512(wp + 256));
    o1 = _mm512_dpbusd_epi32(o1, y, _mm512_loadu_si512(wp + 320));
    o2 = _mm512_dpbusd_epi32(o2, y, _mm512_loadu_si512(wp + 384));
    o3 = _mm512_dpbusd_epi32(o3, y, _mm512_loadu_si512(wp + 448));
  }
  if (g < groups) {
    const int8_t* wp = panel + g * (4 * kPanel);
    int32_t av;
    std::memcpy(&av, a + 4 * g, 4);
    const __m512i x = _mm512_set1_epi32(av);
    e0 = _mm512_dpbusd_epi32(e0, x, _mm512_loadu_si512(wp));
    e1 = _mm512_dpbusd_epi32(e1, x, _mm512_loadu_si512(wp + 64));
    e2 = _mm512_dpbusd_epi32(e2, x, _mm512_loadu_si512(wp + 128));
    e3 = _mm512_dpbusd_epi32(e3, x, _mm512_loadu_si512(wp + 192));
  }
  const __m512i acc[4] = {_mm512_add_epi32(e0, o0), _mm512_add_epi32(e1, o1),
                          _mm512_add_epi32(e2, o2), _mm512_add_epi32(e3, o3)};
  store_row(acc, comp, c, cols);
}

template <int R>
void rows_vnni(const uint8_t* a, int64_t lda, const PackedView& w, int32_t* c, int64_t ldc) {
  const int64_t groups = w.kp / 4;
  for (int64_t n0 = 0; n0 < w.n; n0 += kPanel) {
    if constexpr (R == 1) {
      tile_vnni_1(a, w.data + (n0 / kPanel) * groups * (4 * kPanel), groups, w.comp + n0,
                  c + n0, w.n - n0);
      continue;
    }
    tile_vnni<R>(a, lda, w.data + (n0 / kPanel) * groups * (4 * kPanel), groups, w.comp + n0,
                 c + n0, ldc, w.n - n0);
  }
}

void gemm_vnni(const int8_t* a, int64_t m, int64_t lda, const PackedView& w, int32_t* c,
               int64_t ldc, uint8_t* scratch) {
  // Shift the activations to u8 once per call (m * kp bytes), not once per weight tile.
  const __m512i flip = _mm512_set1_epi8(char(0x80));
  for (int64_t r = 0; r < m; ++r) {
    const int8_t* src = a + r * lda;
    uint8_t* dst = scratch + r * lda;
    for (int64_t k = 0; k < w.kp; k += 64) {
      const int64_t left = w.kp - k;
      const __mmask64 mk = left >= 64 ? ~__mmask64(0) : ((__mmask64(1) << left) - 1);
      const __m512i v = _mm512_maskz_loadu_epi8(mk, src + k);
      _mm512_mask_storeu_epi8(dst + k, mk, _mm512_xor_si512(v, flip));
    }
  }
  const uint8_t* u = scratch;
  int64_t r = 0;
  for (; r + kRows <= m; r += kRows) rows_vnni<kRows>(u + r * lda, lda, w, c + r * ldc, ldc);
  switch (m - r) {
    case 5: rows_vnni<5>(u + r * lda, lda, w, c + r * ldc, ldc); break;
    case 4: rows_vnni<4>(u + r * lda, lda, w, c + r * ldc, ldc); break;
    case 3: rows_vnni<3>(u + r * lda, lda, w, c + r * ldc, ldc); break;
    case 2: rows_vnni<2>(u + r * lda, lda, w, c + r * ldc, ldc); break;
    case 1: rows_vnni<1>(u + r * lda, lda, w, c + r * ldc, ldc); break;
    default: break;
  }
}

uint32_t absmax_bits_avx512(const float* x, int64_t n) {
  const __m512i mask = _mm512_set1_epi32(0x7fffffff);
  __m512i m = _mm512_setzero_si512();
  for (int64_t i = 0; i < n; i += 16) {
    const int64_t left = n - i;
    const __mmask16 mk = left >= 16 ? __mmask16(0xffff) : __mmask16((1u << left) - 1u);
    m = _mm512_max_epu32(m, _mm512_and_si512(_mm512_maskz_loadu_epi32(mk, x + i), mask));
  }
  return _mm512_reduce_max_epu32(m);
}

void quantize_avx512(const float* x, int64_t n, float inv, int8_t* q) {
  const __m512 vinv = _mm512_set1_ps(inv);
  const __m512i lo = _mm512_set1_epi32(-127), hi = _mm512_set1_epi32(127);
  for (int64_t i = 0; i < n; i += 16) {
    const int64_t left = n - i;
    const __mmask16 mk = left >= 16 ? __mmask16(0xffff) : __mmask16((1u << left) - 1u);
    const __m512 v = _mm512_mul_ps(_mm512_maskz_loadu_ps(mk, x + i), vinv);
    __m512i r = _mm512_cvt_roundps_epi32(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    r = _mm512_min_epi32(_mm512_max_epi32(r, lo), hi);
    _mm512_mask_cvtsepi32_storeu_epi8(q + i, mk, r);
  }
}

}  // namespace

// gemm_nonneg: the +128 shift is kept for non-negative A as well (a u8 path without the
// compensation would be faster, but it cannot be run or measured on an AVX2-only dev host).
const KernelTable kAvx512VnniKernels = {"avx512_vnni", gemm_vnni, gemm_vnni, absmax_bits_avx512,
                                        quantize_avx512};

}  // namespace fastctrl
