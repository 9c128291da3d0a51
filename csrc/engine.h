// Shared (ISA-independent) part of the INT8 engine: weight quantisation and packing, CPU
// dispatch, and the fp32 glue of the forward pass (activation quantisation, epilogues, budget
// encoding, argmax). This code is compiled once with baseline flags and -ffp-contract=off, so
// every ISA runs the same float code and only the int8 dot products differ per ISA.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "kernels.h"

namespace fastctrl {

// Rows whose max |x| is below this quantise to zero with scale 0: 127 / max|x| must stay finite.
constexpr float kTinyAbsMax = 1e-30f;
// Activations and logits are clamped to +-kBig (NaN -> 0 or -kBig), so an overflow in one layer
// (possible only with absurd finite inputs such as 1e38) can never feed NaN into the next one.
constexpr float kBig = 1e30f;

class PackedMatrix {
 public:
  // w: int8 [n, k] row-major with every value in [-127, 127] (checked by the caller).
  PackedMatrix(const int8_t* w, int64_t n, int64_t k);
  // data_ points into storage_: moving keeps the buffer, copying would not.
  PackedMatrix(const PackedMatrix&) = delete;
  PackedMatrix& operator=(const PackedMatrix&) = delete;
  PackedMatrix(PackedMatrix&&) = default;
  PackedMatrix& operator=(PackedMatrix&&) = default;
  void unpack(int8_t* out) const;  // back to int8 [n, k]
  PackedView view() const { return {data_, comp_.data(), n_, k_, kp_, np_}; }
  int64_t n() const { return n_; }
  int64_t k() const { return k_; }
  int64_t kp() const { return kp_; }
  int64_t np() const { return np_; }
  const int32_t* comp() const { return comp_.data(); }
  int64_t bytes() const { return np_ * kp_; }

 private:
  int64_t n_, k_, kp_, np_;
  std::vector<int8_t> storage_;  // over-allocated so data_ is 64-byte aligned
  int8_t* data_;
  std::vector<int32_t> comp_;
};

// Symmetric per-output-channel quantisation: scale[o] = max_k |w[o, k]| / 127,
// q = round_half_even(w / scale) in [-127, 127] (a zero row gets scale 0).
void quantize_weights(const float* w, int64_t n, int64_t k, int8_t* q, float* scale);

std::vector<std::string> compiled_isas();
std::vector<std::string> available_isas();  // compiled AND supported by this CPU and OS
const KernelTable* find_kernels(const std::string& isa);  // nullptr unless available

// Quantise one row (shared code around the ISA kernels). Returns false if x has NaN/inf.
// Writes q[0..k) and zeroes q[k..ldq); *scale = max|x| / 127 (0 for an all-tiny row).
bool quantize_row(const KernelTable& kt, const float* x, int64_t k, int8_t* q, int64_t ldq,
                  float* scale);

struct QLinear {  // one int8 [n, k] weight block with its per-channel scales
  QLinear(const float* w, int64_t n, int64_t k, int64_t ldw);
  PackedMatrix packed;
  std::vector<float> scale;
};

struct ModelSpec {  // the arrays of fastctrl.engines.spec.EngineWeights (fp32, row-major)
  const float *img_w, *img_b, *txt_w, *txt_b, *head_w, *head_b, *freqs;
  std::vector<const float*> trunk_w, trunk_b;
  int64_t image_dim, text_dim, img_out, txt_out, hidden, n_freqs;
  std::vector<int64_t> head_sizes;
  int encoding;  // 0 sinusoidal, 1 linear
  float inv_ref_latency;
};

enum class RunStatus { kOk = 0, kImageNonFinite = 1, kTextNonFinite = 2 };

class Model {
 public:
  Model(const ModelSpec& spec, const KernelTable& kernels);
  // decisions: int64 [batch, n_heads] (may be null); logits: fp32 [batch, total] (may be null).
  // budget[r * budget_stride] is row r's budget in ms (stride 0: one budget for all rows).
  RunStatus run(const float* img, const float* txt, const float* budget, int64_t budget_stride,
                int64_t batch, int64_t* decisions, float* logits) const;
  int64_t weight_bytes() const;  // packed int8 weights (Np x Kp per layer)
  int64_t image_dim() const { return image_dim_; }
  int64_t text_dim() const { return text_dim_; }
  int64_t encoding_dim() const { return enc_dim_; }
  const std::vector<int64_t>& head_sizes() const { return head_sizes_; }
  int64_t total_logits() const { return total_logits_; }
  const KernelTable& kernels() const { return *kt_; }

 private:
  struct Workspace;
  void encode_budget(float budget_ms, float* enc) const;
  uint64_t id_;  // unique per Model, never reused (keys the per-thread budget cache)
  const KernelTable* kt_;
  int64_t image_dim_, text_dim_, img_out_, txt_out_, hidden_, enc_dim_, total_logits_;
  int encoding_;
  float inv_ref_;
  std::vector<float> freqs_;
  std::vector<int64_t> head_sizes_;
  std::unique_ptr<QLinear> img_, txt_, t0_img_, t0_txt_, t0_enc_, head_;
  std::vector<std::unique_ptr<QLinear>> trunk_;  // trunk layers 1..
  std::vector<float> img_b_, txt_b_, head_b_;
  std::vector<std::vector<float>> trunk_b_;
};

}  // namespace fastctrl
