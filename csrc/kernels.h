// Per-ISA kernel interface. Plain C-style declarations only: the ISA files are compiled with
// their own -m flags, so they must not share inline functions or templates with the rest of the
// library (the linker could pick an AVX-512 copy of a shared inline function for baseline code).
#pragma once

#include <cstdint>

namespace fastctrl {

// Weights of one [N, K] int8 matrix packed for every kernel (PackedMatrix, engine.cpp):
// panels of kPanel output channels; inside a panel, groups of 4 consecutive k; inside a group,
// the 4 bytes of each output channel are contiguous:
//   byte(n, k) = data[(n / 64) * (Kp / 4) * 256 + (k / 4) * 256 + (n % 64) * 4 + k % 4]
// This is the vpdpbusd operand layout (16 channels x 4 k per zmm), and 16 consecutive groups of
// one 16-channel slice form an AMX B tile (16 rows x 64 bytes, row stride 256). Kp = K rounded
// up to 64 (one AMX tile of k), Np = N rounded up to 64; the padding is zero so it adds nothing
// to any dot product.
constexpr int kPanel = 64;
constexpr int kKAlign = 64;
constexpr int64_t pad_k(int64_t k) { return (k + kKAlign - 1) / kKAlign * kKAlign; }

struct PackedView {
  const int8_t* data;
  const int32_t* comp;  // 128 * sum_k w[n, k] (VNNI's +128 activation shift), length Np
  int64_t n, k, kp, np;
};

// C[m, n] = sum_k A[m, k] * W[n, k] for m < M, n < W.n, exactly, in int32.
// A: int8 [M, lda], lda >= W.kp, columns K..Kp-1 must be readable (any value: weights are 0).
// scratch: at least round_up(M, 32) * lda bytes the kernel may use (VNNI stores the u8-shifted
// A there, AMX a zero-padded copy of the last partial 32-row block).
using GemmFn = void (*)(const int8_t* a, int64_t m, int64_t lda, const PackedView& w,
                        int32_t* c, int64_t ldc, uint8_t* scratch);
// The same product when every A value is in [0, 127] (quantised ReLU outputs): an ISA may skip
// its sign handling (AVX2's vpsignb / vpabsb). Same contract otherwise; same exact result.
// max over i of (bits(x[i]) & 0x7fffffff): for finite x this is the bit pattern of max|x|;
// a result >= 0x7f800000 means x holds NaN or inf.
using AbsMaxBitsFn = uint32_t (*)(const float* x, int64_t n);
// q[i] = clamp(round_half_even(x[i] * inv), -127, 127). Every ISA performs exactly these IEEE
// operations (one fp32 multiply, one rounding), so the result is bit-identical to scalar.
using QuantizeFn = void (*)(const float* x, int64_t n, float inv, int8_t* q);

struct KernelTable {
  const char* name;
  GemmFn gemm;
  GemmFn gemm_nonneg;  // A in [0, 127]; may be the same function as gemm
  AbsMaxBitsFn absmax_bits;
  QuantizeFn quantize;
};

extern const KernelTable kScalarKernels;
#ifdef FASTCTRL_HAVE_AVX2
extern const KernelTable kAvx2Kernels;
#endif
#ifdef FASTCTRL_HAVE_AVX512_VNNI
extern const KernelTable kAvx512VnniKernels;
#endif
#ifdef FASTCTRL_HAVE_AMX
extern const KernelTable kAmxKernels;  // AMX-INT8 tiles; rows < 16 go to the VNNI kernel
#endif

}  // namespace fastctrl
