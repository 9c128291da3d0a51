// AVX2 int8 peak of this core: clock, vpmaddubsw throughput, the int8 MAC rate of the two
// instruction sequences the AVX2 kernels use (csrc/avx2.cpp), and how fast this core can
// stream the ~504 KB of packed weights a B = 1 decision of the default controller reads. Not
// part of the extension; bench/README.md quotes its output.
//
//   g++ -O2 -mavx2 csrc/tools/avx2_peak.cpp -o /tmp/avx2_peak && /tmp/avx2_peak
//
// Each loop runs independent chains (no latency bound); best of many short repeats, so time
// slices lost to other processes on a shared host do not count.
#include <immintrin.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>

namespace {

double now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

template <class F>
double best(F f, int reps) {
  double b = 1e30;
  for (int i = 0; i < reps; ++i) {
    const double t = now();
    f();
    const double dt = now() - t;
    b = dt < b ? dt : b;
  }
  return b;
}

// 4 dependent scalar adds per iteration: 1 add per cycle, so iterations * 4 / time = clock.
__attribute__((noinline)) uint64_t clock_loop(uint64_t n) {
  uint64_t x = 0;
  for (uint64_t i = 0; i < n; ++i)
    asm volatile("add $1, %0\n\tadd $1, %0\n\tadd $1, %0\n\tadd $1, %0" : "+r"(x));
  return x;
}

#define MUB(r) "vpmaddubsw %%ymm0, %%ymm1, %%ymm" #r "\n\t"
__attribute__((noinline)) void maddubs_loop(uint64_t n) {
  for (uint64_t i = 0; i < n; ++i)
    asm volatile(MUB(2) MUB(3) MUB(4) MUB(5) MUB(6) MUB(7) MUB(8) MUB(9)::: "xmm2", "xmm3",
                 "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9");
}

// gemm_nonneg's step: vpmaddubsw (u8 a x s8 w) -> vpmaddwd (x 1: pairs to int32) -> vpaddd
#define USTEP(t, a)                                   \
  "vpmaddubsw %%ymm0, %%ymm14, %%ymm" #t "\n\t"       \
  "vpmaddwd %%ymm" #t ", %%ymm15, %%ymm" #t "\n\t"    \
  "vpaddd %%ymm" #t ", %%ymm" #a ", %%ymm" #a "\n\t"
// gemm's (signed activations) step: vpsignb (sign of a onto w) first
#define SSTEP(t, a)                                   \
  "vpsignb %%ymm0, %%ymm1, %%ymm" #t "\n\t"           \
  "vpmaddubsw %%ymm" #t ", %%ymm14, %%ymm" #t "\n\t"  \
  "vpmaddwd %%ymm" #t ", %%ymm15, %%ymm" #t "\n\t"    \
  "vpaddd %%ymm" #t ", %%ymm" #a ", %%ymm" #a "\n\t"
#define CLOBBER "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", \
                "xmm11", "xmm12", "xmm13"
__attribute__((noinline)) void nonneg_loop(uint64_t n) {
  for (uint64_t i = 0; i < n; ++i)
    asm volatile(USTEP(2, 8) USTEP(3, 9) USTEP(4, 10) USTEP(5, 11) USTEP(6, 12)
                     USTEP(7, 13)::: CLOBBER);
}
__attribute__((noinline)) void signed_loop(uint64_t n) {
  for (uint64_t i = 0; i < n; ++i)
    asm volatile(SSTEP(2, 8) SSTEP(3, 9) SSTEP(4, 10) SSTEP(5, 11) SSTEP(6, 12)
                     SSTEP(7, 13)::: CLOBBER);
}

// Sum a buffer with 4 independent 32-byte load streams: the load bandwidth of re-reading it.
__attribute__((noinline)) __m256i sweep(const char* p, size_t n) {
  __m256i a = _mm256_setzero_si256(), b = a, c = a, d = a;
  for (size_t i = 0; i < n; i += 128) {
    a = _mm256_add_epi32(a, _mm256_load_si256(reinterpret_cast<const __m256i*>(p + i)));
    b = _mm256_add_epi32(b, _mm256_load_si256(reinterpret_cast<const __m256i*>(p + i + 32)));
    c = _mm256_add_epi32(c, _mm256_load_si256(reinterpret_cast<const __m256i*>(p + i + 64)));
    d = _mm256_add_epi32(d, _mm256_load_si256(reinterpret_cast<const __m256i*>(p + i + 96)));
  }
  return _mm256_add_epi32(_mm256_add_epi32(a, b), _mm256_add_epi32(c, d));
}

}  // namespace

int main() {
  const uint64_t n = 300000;
  const double ghz = 4.0 * n / best([&] { clock_loop(n); }, 201) / 1e9;
  const double mub = 8.0 * n / best([&] { maddubs_loop(n); }, 201) / 1e9 / ghz;
  // 6 steps of 32 MACs (one ymm of u8 x s8 pairs) per iteration
  const double unsig = 6 * 32.0 * n / best([&] { nonneg_loop(n); }, 201) / 1e9;
  const double sig = 6 * 32.0 * n / best([&] { signed_loop(n); }, 201) / 1e9;
  std::printf("clock (dependent add chain): %.2f GHz\n", ghz);
  std::printf("vpmaddubsw ymm: %.2f per cycle -> peak %.0f int8 MAC/cycle = %.1f GMAC/s "
              "(each vpmaddubsw is 32 MACs and needs a vpmaddwd on the same ports)\n",
              mub, mub * 32 / 2, mub * 16 * ghz);
  std::printf("non-negative step (vpmaddubsw + vpmaddwd + vpaddd): %.1f GMAC/s (%.1f MAC/cycle)\n",
              unsig, unsig / ghz);
  std::printf("signed step (+ vpsignb): %.1f GMAC/s (%.1f MAC/cycle, %.2fx the non-negative)\n",
              sig, sig / ghz, sig / unsig);
  // img 768x128 + txt 2048x128 + trunk 0 (128 + 128 + 32 of 64 packed) x 256 + 256x256 + the
  // head's 16-channel tile x 256: the bytes the B = 1 GEMVs read
  const size_t bytes = 98304 + 262144 + 32768 + 32768 + 8192 + 65536 + 4096;
  char* buf = static_cast<char*>(std::aligned_alloc(64, (bytes + 127) / 128 * 128));
  for (size_t i = 0; i < bytes; ++i) buf[i] = char(i);
  __m256i sink = _mm256_setzero_si256();
  const double ts = best([&] { sink = _mm256_add_epi32(sink, sweep(buf, bytes / 128 * 128)); },
                         2001);
  std::printf("re-reading %zu bytes (the B = 1 weights): %.2f us, %.1f GB/s (%d)\n", bytes,
              ts * 1e6, double(bytes) / ts / 1e9, _mm256_extract_epi32(sink, 0) & 1);
  std::free(buf);
  return 0;
}
