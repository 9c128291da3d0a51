// AVX2 kernels (compiled with -mavx2 for this file only; chosen at run time by CPUID).
//
// vpmaddubsw multiplies u8 x s8 and adds adjacent pairs into a *saturating* int16, so the
// operands must keep every pair sum within int16:
// - signed activations (the input layers and the budget encoding): the compensation trick
//   (a + 128 as u8) can reach 2 * 255 * 127 = 64770 and would saturate, so we use the sign
//   trick: |a| as u8 times sign(a) * w as s8. Weights are in [-127, 127] and |a| <= 128, so a
//   pair sum is at most 2 * 128 * 127 = 32512 < 32767. |a| is computed once per call into the
//   scratch buffer (not once per (row, k group, channel tile)); the sign goes onto each weight
//   vector (vpsignb), one op per vpmaddubsw.
// - non-negative activations (quantised ReLU outputs, gemm_nonneg): a in [0, 127] is already
//   a u8 operand, pair sums <= 2 * 127 * 127 = 32258: no vpsignb, no vpabsb. On Zen 3 vpsignb
//   competes with vpmaddubsw / vpmaddwd for execution ports: the sign-trick instruction mix
//   runs at 0.74-0.82x the rate of the plain one (72-79 vs 95-97 GMAC/s,
//   csrc/tools/avx2_peak.cpp), and the trunk layer went from 47-56 to 80-83 GMAC/s at 64 rows
//   (csrc/tools/gemm_layers.cpp, this kernel vs the previous one, 2 runs).
// Every int32 accumulator is exact whatever the instruction order, so results equal scalar.
//
// Blocking: a micro-tile is R rows x 8V channels (R * V ymm accumulators), weights read from
// the packed panels (32 bytes = 8 channels x 4 k per load, no register copy kept); channel
// tiles are the outer loop so one tile's weights stay cached while every row streams past.
// R x V = 5 x 2 (signed: two broadcasts per row) and 3 x 4 (non-negative), 1 x 8 for one row
// (the GEMV of B = 1 reads whole 256-byte panel groups). All layers in turn at 64 rows (as
// csrc/tools/gemm_layers.cpp's "in turn" line; each shape built with -DFC_SIGNED_R / _V and
// timed interleaved in one process on a quiet host, 2 runs): 424-426 us (5 x 2), 423-426
// (2 x 4), 437 (4 x 2), 436 (3 x 2) vs 519-523 us for the previous 4-row x 16-channel
// rows-outer kernel.
#include <immintrin.h>

#include <cstring>

#include "kernels.h"

namespace fastctrl {
namespace {

// Micro-tile shapes (see the header); overridable at compile time for the microbenchmark.
#ifndef FC_SIGNED_R
#define FC_SIGNED_R 5
#define FC_SIGNED_V 2
#define FC_NONNEG_R 3
#define FC_NONNEG_V 4
#define FC_ONE_V 8
#endif

inline __m256i bcast4(const void* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return _mm256_set1_epi32(v);
}

// One micro-tile: rows [0, R) x channels [0, 8V) of c, summed over every k group.
// u: the u8 operand (|a|, or a itself when non-negative); a: the signed activations whose signs
// go onto the weights (Signed only). Weights are read straight from the packed panel (32 bytes =
// 8 channels x 4 k per load).
template <int R, int V, bool Signed>
void tile(const int8_t* a, const uint8_t* u, int64_t lda, const int8_t* wsub, int64_t groups,
          int32_t* c, int64_t ldc, int cols) {
  const __m256i ones = _mm256_set1_epi16(1);
  __m256i acc[R][V];
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 16
    for (int v = 0; v < V; ++v) acc[r][v] = _mm256_setzero_si256();
  for (int64_t g = 0; g < groups; ++g) {
    const int8_t* wp = wsub + g * (4 * kPanel);
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r) {
      const __m256i ur = bcast4(u + r * lda + 4 * g);
      __m256i xr;
      if constexpr (Signed) xr = bcast4(a + r * lda + 4 * g);
#pragma GCC unroll 16
      for (int v = 0; v < V; ++v) {
        __m256i w = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(wp + 32 * v));
        if constexpr (Signed) w = _mm256_sign_epi8(w, xr);
        acc[r][v] = _mm256_add_epi32(acc[r][v],
                                     _mm256_madd_epi16(_mm256_maddubs_epi16(ur, w), ones));
      }
    }
  }
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r) {
    if (cols >= 8 * V) {
#pragma GCC unroll 16
      for (int v = 0; v < V; ++v)
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(c + r * ldc + 8 * v), acc[r][v]);
    } else {
      alignas(32) int32_t tmp[8 * V];
#pragma GCC unroll 16
      for (int v = 0; v < V; ++v)
        _mm256_store_si256(reinterpret_cast<__m256i*>(tmp + 8 * v), acc[r][v]);
      for (int j = 0; j < cols; ++j) c[r * ldc + j] = tmp[j];
    }
  }
}

// One 8V-channel tile (a narrower one for a tail of <= 16 channels, e.g. the 15-logit head)
// against rows [0, m): R rows at a time, then one call for the last m % R rows.
template <int R, int V, bool Signed>
void column(const int8_t* a, const uint8_t* u, int64_t m, int64_t lda, const int8_t* wsub,
            int64_t groups, int32_t* c, int64_t ldc, int cols) {
  if constexpr (V > 2) {
    if (cols <= 16) return column<R, 2, Signed>(a, u, m, lda, wsub, groups, c, ldc, cols);
  }
  int64_t r = 0;
  for (; r + R <= m; r += R)
    tile<R, V, Signed>(a + r * lda, u + r * lda, lda, wsub, groups, c + r * ldc, ldc, cols);
  const int64_t left = m - r;
  a += r * lda;
  u += r * lda;
  c += r * ldc;
#define FC_TAIL(n)                                                                        \
  if constexpr (R > n)                                                                    \
    if (left == n) return tile<n, V, Signed>(a, u, lda, wsub, groups, c, ldc, cols);
  FC_TAIL(5) FC_TAIL(4) FC_TAIL(3) FC_TAIL(2) FC_TAIL(1)
#undef FC_TAIL
}

// Channel tiles outermost: one tile's weights (K x 8V bytes) stay cached while every row
// streams past them; rows outermost re-read the whole matrix (262 KB for the text layer) per
// row tile. Chunking K as well (256-k chunks, partial sums through c) was slower in the
// sequential-layer microbenchmark at 64 rows: 534-545 vs 469-512 us per block, 3 runs.
template <int R, int V, bool Signed>
void gemm_tiles(const int8_t* a, const uint8_t* u, int64_t m, int64_t lda, const PackedView& w,
                int32_t* c, int64_t ldc) {
  const int64_t panel_groups = w.kp / 4;
  // Groups past K hold zero weights only: skipped (the 32-wide budget encoding is packed to
  // Kp = 64, so half of its layer's groups).
  const int64_t groups = (w.k + 3) / 4;
  for (int64_t n0 = 0; n0 < w.n; n0 += 8 * V) {
    const int8_t* wsub =
        w.data + (n0 / kPanel) * panel_groups * (4 * kPanel) + (n0 % kPanel) * 4;
    const int64_t left = w.n - n0;
    column<R, V, Signed>(a, u, m, lda, wsub, groups, c + n0, ldc,
                         int(left < 8 * V ? left : 8 * V));
  }
}

void gemm_avx2(const int8_t* a, int64_t m, int64_t lda, const PackedView& w, int32_t* c,
               int64_t ldc, uint8_t* scratch) {
  // |a| once per call into scratch (m * kp bytes), not once per (row, group, channel tile).
  for (int64_t r = 0; r < m; ++r)
    for (int64_t k = 0; k < w.k; k += 32)
      _mm256_storeu_si256(
          reinterpret_cast<__m256i*>(scratch + r * lda + k),
          _mm256_abs_epi8(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(a + r * lda + k))));
  if (m == 1) return gemm_tiles<1, FC_ONE_V, true>(a, scratch, m, lda, w, c, ldc);
  gemm_tiles<FC_SIGNED_R, FC_SIGNED_V, true>(a, scratch, m, lda, w, c, ldc);
}

void gemm_nonneg_avx2(const int8_t* a, int64_t m, int64_t lda, const PackedView& w, int32_t* c,
                      int64_t ldc, uint8_t* /*scratch*/) {
  const uint8_t* u = reinterpret_cast<const uint8_t*>(a);
  if (m == 1) return gemm_tiles<1, FC_ONE_V, false>(a, u, m, lda, w, c, ldc);
  gemm_tiles<FC_NONNEG_R, FC_NONNEG_V, false>(a, u, m, lda, w, c, ldc);
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
  uint32_t r = kScalarKernels.absmax_bits(x + i, n - i);  // the tail of < 8 floats
  for (int j = 0; j < 8; ++j) r = t[j] > r ? t[j] : r;
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
  kScalarKernels.quantize(x + i, n - i, inv, q + i);  // the tail (< 32 floats), same rounding
}

}  // namespace

const KernelTable kAvx2Kernels = {"avx2", gemm_avx2, gemm_nonneg_avx2, absmax_bits_avx2,
                                  quantize_avx2};

}  // namespace fastctrl
