// AMX-INT8 kernel (compiled with -mamx-tile -mamx-int8 for this file only; chosen at run time by
// CPUID + XGETBV + the Linux arch_prctl permission for tile data). tdpbssd multiplies s8 x s8
// tiles into int32 exactly, so no activation shift or compensation is needed. A 32x32 output
// block uses 4 accumulator tiles, 2 A tiles (16 rows x 64 k) and 2 B tiles (64 k x 16 channels,
// read straight from the packed panels: 16 groups of 4 k at a 256-byte stride).
// Fewer than 16 rows (B = 1 is weight-bandwidth bound either way) go to the VNNI kernel.
#include <immintrin.h>

#include <cstring>

#include "kernels.h"

namespace fastctrl {
namespace {

struct alignas(64) TileConfig {
  uint8_t palette_id;
  uint8_t start_row;
  uint8_t reserved[14];
  uint16_t colsb[16];
  uint8_t rows[16];
};

void configure_tiles() {
  TileConfig cfg;
  std::memset(&cfg, 0, sizeof(cfg));
  cfg.palette_id = 1;
  for (int t = 0; t < 8; ++t) {
    cfg.rows[t] = 16;
    cfg.colsb[t] = 64;
  }
  _tile_loadconfig(&cfg);
}

void store_tile_block(const int32_t* tile, int32_t* c, int64_t ldc, int64_t rows, int64_t cols) {
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t j = 0; j < cols; ++j) c[r * ldc + j] = tile[r * 16 + j];
}

void gemm_amx(const int8_t* a, int64_t m, int64_t lda, const PackedView& w, int32_t* c,
              int64_t ldc, uint8_t* scratch) {
  if (m < 16) {
    kAvx512VnniKernels.gemm(a, m, lda, w, c, ldc, scratch);
    return;
  }
  // Whole 32-row blocks read A in place; a tail of 1..31 rows is copied into zero-padded scratch.
  const int64_t m32 = m / 32 * 32;
  const int64_t tail = m - m32;
  int8_t* padded = reinterpret_cast<int8_t*>(scratch);
  if (tail > 0) {
    std::memset(padded, 0, size_t(32 * lda));
    std::memcpy(padded, a + m32 * lda, size_t(tail * lda));
  }
  const int64_t groups = w.kp / 4, ksteps = w.kp / 64;
  alignas(64) int32_t out[4][16 * 16];
  configure_tiles();
  for (int64_t r0 = 0; r0 < m; r0 += 32) {
    const int8_t* ab = r0 < m32 ? a + r0 * lda : padded;
    const int64_t rows = r0 < m32 ? 32 : tail;
    for (int64_t n0 = 0; n0 < w.n; n0 += 32) {
      const int8_t* b0 = w.data + (n0 / kPanel) * groups * (4 * kPanel) + (n0 % kPanel) * 4;
      const int8_t* b1 = w.data + ((n0 + 16) / kPanel) * groups * (4 * kPanel) +
                         ((n0 + 16) % kPanel) * 4;
      _tile_zero(0);
      _tile_zero(1);
      _tile_zero(2);
      _tile_zero(3);
      for (int64_t ks = 0; ks < ksteps; ++ks) {
        _tile_loadd(4, ab + ks * 64, lda);
        _tile_loadd(5, ab + 16 * lda + ks * 64, lda);
        _tile_loadd(6, b0 + ks * 16 * (4 * kPanel), 4 * kPanel);
        _tile_loadd(7, b1 + ks * 16 * (4 * kPanel), 4 * kPanel);
        _tile_dpbssd(0, 4, 6);
        _tile_dpbssd(1, 4, 7);
        _tile_dpbssd(2, 5, 6);
        _tile_dpbssd(3, 5, 7);
      }
      _tile_stored(0, out[0], 64);
      _tile_stored(1, out[1], 64);
      _tile_stored(2, out[2], 64);
      _tile_stored(3, out[3], 64);
      const int64_t c0 = w.n - n0 < 16 ? w.n - n0 : 16;
      const int64_t c1 = w.n - n0 - 16 < 16 ? w.n - n0 - 16 : 16;
      const int64_t r_top = rows < 16 ? rows : 16, r_bot = rows - 16;
      int32_t* cb = c + r0 * ldc + n0;
      store_tile_block(out[0], cb, ldc, r_top, c0);
      if (c1 > 0) store_tile_block(out[1], cb + 16, ldc, r_top, c1);
      if (r_bot > 0) {
        store_tile_block(out[2], cb + 16 * ldc, ldc, r_bot, c0);
        if (c1 > 0) store_tile_block(out[3], cb + 16 * ldc + 16, ldc, r_bot, c1);
      }
    }
  }
  _tile_release();
}

// Quantisation is plain AVX-512 work: the VNNI file's kernels (called through its table, so no
// code is shared between files compiled with different flags).
uint32_t absmax_bits_amx(const float* x, int64_t n) {
  return kAvx512VnniKernels.absmax_bits(x, n);
}

void quantize_amx(const float* x, int64_t n, float inv, int8_t* q) {
  kAvx512VnniKernels.quantize(x, n, inv, q);
}

}  // namespace

const KernelTable kAmxKernels = {"amx", gemm_amx, gemm_amx, absmax_bits_amx, quantize_amx};

}  // namespace fastctrl
