// Scalar reference kernels: the test oracle every ISA kernel must match bit for bit.
#include <cstring>

#include "kernels.h"

namespace fastctrl {
namespace {

void gemm_scalar(const int8_t* a, int64_t m, int64_t lda, const PackedView& w, int32_t* c,
                 int64_t ldc, uint8_t* /*scratch*/) {
  const int64_t groups = w.kp / 4;
  for (int64_t r = 0; r < m; ++r) {
    const int8_t* ar = a + r * lda;
    for (int64_t n = 0; n < w.n; ++n) {
      const int8_t* panel = w.data + (n / kPanel) * groups * (4 * kPanel) + (n % kPanel) * 4;
      int32_t acc = 0;
      for (int64_t g = 0; g < groups; ++g) {
        const int8_t* wg = panel + g * (4 * kPanel);
        for (int j = 0; j < 4; ++j) acc += int32_t(ar[4 * g + j]) * int32_t(wg[j]);
      }
      c[r * ldc + n] = acc;
    }
  }
}

uint32_t absmax_bits_scalar(const float* x, int64_t n) {
  uint32_t m = 0;
  for (int64_t i = 0; i < n; ++i) {
    uint32_t b;
    std::memcpy(&b, x + i, 4);
    b &= 0x7fffffffu;
    m = b > m ? b : m;
  }
  return m;
}

void quantize_scalar(const float* x, int64_t n, float inv, int8_t* q) {
  // Adding and subtracting 1.5 * 2^23 rounds half to even for |v| < 2^22 (|v| <= 127 here),
  // the same rounding cvtps2dq applies, without a libm call.
  const float magic = 12582912.0f;
  for (int64_t i = 0; i < n; ++i) {
    float v = x[i] * inv;
    v = (v + magic) - magic;
    int32_t iv = int32_t(v);
    iv = iv > 127 ? 127 : (iv < -127 ? -127 : iv);
    q[i] = int8_t(iv);
  }
}

}  // namespace

const KernelTable kScalarKernels = {"scalar", gemm_scalar, gemm_scalar, absmax_bits_scalar,
                                    quantize_scalar};

}  // namespace fastctrl
