// The int8 GEMM kernels of one ISA on the default controller's layer shapes: GMAC/s per layer
// at 1, 4 and 64 rows (one layer at a time, weights hot), and all layers in sequence the way a
// 64-row block of the engine runs them. Checked bit-exact against the scalar kernel first.
// Not part of the extension; csrc/avx2.cpp quotes it.
//
//   g++ -O3 -std=c++17 -ffp-contract=off -mavx2 -DFASTCTRL_HAVE_AVX2 -Icsrc -c csrc/avx2.cpp
//       -o /tmp/avx2.o
//   g++ -O3 -std=c++17 -ffp-contract=off -DFASTCTRL_HAVE_AVX2 -Icsrc csrc/tools/gemm_layers.cpp
//       csrc/engine.cpp csrc/scalar.cpp /tmp/avx2.o -o /tmp/gemm_layers && /tmp/gemm_layers avx2
#include <chrono>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "engine.h"

using namespace fastctrl;

namespace {

double now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

struct Shape {
  const char* name;
  int64_t n, k;
  bool nonneg;  // a ReLU output: the engine calls gemm_nonneg
};

// image / text projections, trunk layer 0's segments (image, budget encoding), trunk, heads
const Shape kShapes[] = {{"img", 128, 768, false},   {"txt", 128, 2048, false},
                         {"t0_img", 256, 128, true}, {"t0_enc", 256, 32, false},
                         {"trunk", 256, 256, true},  {"head", 17, 256, true}};

}  // namespace

int main(int argc, char** argv) {
  const std::string isa = argc > 1 ? argv[1] : "avx2";
  const KernelTable* kt = find_kernels(isa);
  const KernelTable* ref = find_kernels("scalar");
  if (kt == nullptr) {
    std::printf("isa %s is not available here\n", isa.c_str());
    return 1;
  }
  std::mt19937 rng(1);
  for (int64_t m : {1, 4, 64}) {
    double total_s = 0, total_mac = 0;
    std::vector<PackedMatrix> packed;
    std::vector<std::vector<int8_t>> acts;
    for (const Shape& s : kShapes) {
      std::vector<int8_t> w(size_t(s.n * s.k));
      for (auto& v : w) v = int8_t(int(rng() % 255) - 127);
      packed.emplace_back(w.data(), s.n, s.k);
      const int64_t lda = packed.back().kp();
      std::vector<int8_t> a(size_t(m * lda), 0);
      for (int64_t r = 0; r < m; ++r)
        for (int64_t i = 0; i < s.k; ++i)
          a[size_t(r * lda + i)] = s.nonneg ? int8_t(rng() % 128) : int8_t(int(rng() % 255) - 127);
      acts.push_back(std::move(a));
    }
    std::vector<uint8_t> scratch(size_t((m + 31) / 32 * 32 * 2048));
    std::vector<int32_t> c(size_t(m * 256)), cr(size_t(m * 256));
    for (size_t l = 0; l < packed.size(); ++l) {
      const Shape& s = kShapes[l];
      const PackedMatrix& pm = packed[l];
      const GemmFn g = s.nonneg ? kt->gemm_nonneg : kt->gemm;
      g(acts[l].data(), m, pm.kp(), pm.view(), c.data(), s.n, scratch.data());
      ref->gemm(acts[l].data(), m, pm.kp(), pm.view(), cr.data(), s.n, scratch.data());
      if (c != cr) {
        std::printf("MISMATCH %s m=%ld\n", s.name, long(m));
        return 1;
      }
      const int reps = int(1e8 / double(m * s.n * s.k)) + 1;
      double best = 1e30;
      for (int t = 0; t < 21; ++t) {
        const double t0 = now();
        for (int i = 0; i < reps; ++i)
          g(acts[l].data(), m, pm.kp(), pm.view(), c.data(), s.n, scratch.data());
        const double dt = (now() - t0) / reps;
        best = dt < best ? dt : best;
      }
      const double mac = double(m) * double(s.n) * double(s.k);
      total_s += best;
      total_mac += mac;
      std::printf("%s m=%-3ld %-7s %9.2f us %6.1f GMAC/s\n", isa.c_str(), long(m), s.name,
                  best * 1e6, mac / best / 1e9);
    }
    std::printf("%s m=%-3ld layers  %9.2f us %6.1f GMAC/s (sum of the best per layer)\n",
                isa.c_str(), long(m), total_s * 1e6, total_mac / total_s / 1e9);
    double best = 1e30;
    for (int t = 0; t < 31; ++t) {  // every layer in turn, as one block of the engine
      const double t0 = now();
      for (size_t l = 0; l < packed.size(); ++l)
        (kShapes[l].nonneg ? kt->gemm_nonneg : kt->gemm)(acts[l].data(), m, packed[l].kp(),
                                                         packed[l].view(), c.data(),
                                                         kShapes[l].n, scratch.data());
      const double dt = now() - t0;
      best = dt < best ? dt : best;
    }
    std::printf("%s m=%-3ld in turn %9.2f us %6.1f GMAC/s\n", isa.c_str(), long(m), best * 1e6,
                total_mac / best / 1e9);
  }
  return 0;
}
