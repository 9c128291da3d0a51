#include "engine.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <stdexcept>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif
#if defined(__linux__) && defined(__x86_64__)
#include <sys/syscall.h>
#include <unistd.h>
#endif

namespace fastctrl {

// ----------------------------------------------------------------------------- packing
PackedMatrix::PackedMatrix(const int8_t* w, int64_t n, int64_t k)
    : n_(n), k_(k), kp_(pad_k(k)), np_((n + kPanel - 1) / kPanel * kPanel) {
  storage_.assign(size_t(np_ * kp_ + 64), 0);
  const auto addr = reinterpret_cast<uintptr_t>(storage_.data());
  data_ = storage_.data() + ((64 - addr % 64) % 64);
  comp_.assign(size_t(np_), 0);
  const int64_t groups = kp_ / 4;
  for (int64_t o = 0; o < n; ++o) {
    int32_t sum = 0;
    for (int64_t i = 0; i < k; ++i) {
      const int8_t v = w[o * k + i];
      data_[(o / kPanel) * groups * (4 * kPanel) + (i / 4) * (4 * kPanel) + (o % kPanel) * 4 +
            i % 4] = v;
      sum += v;
    }
    comp_[size_t(o)] = 128 * sum;
  }
}

void PackedMatrix::unpack(int8_t* out) const {
  const int64_t groups = kp_ / 4;
  for (int64_t o = 0; o < n_; ++o)
    for (int64_t i = 0; i < k_; ++i)
      out[o * k_ + i] = data_[(o / kPanel) * groups * (4 * kPanel) + (i / 4) * (4 * kPanel) +
                              (o % kPanel) * 4 + i % 4];
}

void quantize_weights(const float* w, int64_t n, int64_t k, int8_t* q, float* scale) {
  for (int64_t o = 0; o < n; ++o) {
    const float* row = w + o * k;
    double amax = 0.0;
    for (int64_t i = 0; i < k; ++i) amax = std::max(amax, double(std::fabs(row[i])));
    scale[o] = float(amax / 127.0);
    // double keeps 127 / amax finite even for subnormal rows; done once at load.
    const double inv = amax > 0.0 ? 127.0 / amax : 0.0;
    for (int64_t i = 0; i < k; ++i) {
      const double v = std::nearbyint(double(row[i]) * inv);
      q[o * k + i] = int8_t(std::clamp(v, -127.0, 127.0));
    }
  }
}

QLinear::QLinear(const float* w, int64_t n, int64_t k, int64_t ldw)
    : packed(nullptr, 0, 0), scale(size_t(n)) {
  std::vector<float> dense(size_t(n * k));
  for (int64_t o = 0; o < n; ++o) std::memcpy(&dense[size_t(o * k)], w + o * ldw, size_t(k) * 4);
  std::vector<int8_t> q(size_t(n * k));
  quantize_weights(dense.data(), n, k, q.data(), scale.data());
  packed = PackedMatrix(q.data(), n, k);
}

// ----------------------------------------------------------------------------- dispatch
namespace {

struct CpuFeatures {
  bool avx2 = false;
  bool avx512_vnni = false;
  bool amx = false;
};

// Linux hands out AMX tile state per process on request (arch_prctl ARCH_REQ_XCOMP_PERM for
// XTILEDATA); without it the first tile instruction faults.
bool request_amx_permission() {
#if defined(__linux__) && defined(__x86_64__) && defined(SYS_arch_prctl)
  constexpr long kArchReqXcompPerm = 0x1023, kXfeatureXtiledata = 18;
  return syscall(SYS_arch_prctl, kArchReqXcompPerm, kXfeatureXtiledata) == 0;
#else
  return false;
#endif
}

CpuFeatures detect_cpu() {
  CpuFeatures f;
#if defined(__x86_64__) || defined(__i386__)
  unsigned a = 0, b = 0, c = 0, d = 0;
  if (!__get_cpuid(1, &a, &b, &c, &d)) return f;
  const bool osxsave = c & (1u << 27), avx = c & (1u << 28);
  if (!osxsave || !avx) return f;
  // XCR0 says which register states the OS saves: ymm needs bits 1-2, zmm also bits 5-7.
  uint32_t lo = 0, hi = 0;
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  const uint64_t xcr0 = (uint64_t(hi) << 32) | lo;
  const bool ymm_os = (xcr0 & 0x6) == 0x6, zmm_os = (xcr0 & 0xe6) == 0xe6;
  if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return f;
  const bool avx2 = b & (1u << 5), avx512f = b & (1u << 16), avx512bw = b & (1u << 30),
             avx512vl = b & (1u << 31), vnni = c & (1u << 11);
  f.avx2 = ymm_os && avx2;
  f.avx512_vnni = ymm_os && zmm_os && avx512f && avx512bw && avx512vl && vnni;
  const bool amx_tile = d & (1u << 24), amx_int8 = d & (1u << 25);
  const bool tiles_os = (xcr0 & (uint64_t(3) << 17)) == (uint64_t(3) << 17);
  f.amx = f.avx512_vnni && amx_tile && amx_int8 && tiles_os && request_amx_permission();
#endif
  return f;
}

struct Entry {
  const KernelTable* table;
  bool supported;
};

std::vector<Entry> registry() {
  const CpuFeatures cpu = detect_cpu();
  std::vector<Entry> r = {{&kScalarKernels, true}};
#ifdef FASTCTRL_HAVE_AVX2
  r.push_back({&kAvx2Kernels, cpu.avx2});
#endif
#ifdef FASTCTRL_HAVE_AVX512_VNNI
  r.push_back({&kAvx512VnniKernels, cpu.avx512_vnni});
#endif
#ifdef FASTCTRL_HAVE_AMX
  r.push_back({&kAmxKernels, cpu.amx});
#endif
  (void)cpu;
  return r;
}

const std::vector<Entry>& entries() {
  static const std::vector<Entry> r = registry();
  return r;
}

}  // namespace

std::vector<std::string> compiled_isas() {
  std::vector<std::string> out;
  for (const auto& e : entries()) out.emplace_back(e.table->name);
  return out;
}

std::vector<std::string> available_isas() {
  std::vector<std::string> out;
  for (const auto& e : entries())
    if (e.supported) out.emplace_back(e.table->name);
  return out;
}

const KernelTable* find_kernels(const std::string& isa) {
  for (const auto& e : entries())
    if (e.supported && isa == e.table->name) return e.table;
  return nullptr;
}

// ----------------------------------------------------------------------------- forward glue
bool quantize_row(const KernelTable& kt, const float* x, int64_t k, int8_t* q, int64_t ldq,
                  float* scale) {
  const uint32_t bits = kt.absmax_bits(x, k);
  if (bits >= 0x7f800000u) return false;
  float amax;
  std::memcpy(&amax, &bits, 4);
  if (amax < kTinyAbsMax) {
    std::memset(q, 0, size_t(k));
    *scale = 0.0f;
  } else {
    kt.quantize(x, k, 127.0f / amax, q);
    *scale = amax / 127.0f;
  }
  if (ldq > k) std::memset(q + k, 0, size_t(ldq - k));
  return true;
}

namespace {

inline float clamp_relu(float y) {
  y = y > 0.0f ? y : 0.0f;  // NaN -> 0
  return y < kBig ? y : kBig;
}

inline float clamp_plain(float y) {
  y = y >= -kBig ? y : -kBig;  // NaN -> -kBig
  return y < kBig ? y : kBig;
}

struct Segment {  // one int8 GEMM's result feeding an epilogue
  const int32_t* acc;
  int64_t ldc;
  const float* sx;  // per row
  const float* sw;  // per output channel
};

// y[r, o] = b[o] + sum_s float(acc_s[r, o]) * (sx_s[r] * sw_s[o]), then ReLU / clamp, in one
// pass per row (the fp32 operations and their order are fixed, so every ISA gets the same bits).
template <int S, bool Relu>
void epilogue(const Segment* segs, const float* bias, int64_t rows, int64_t n, float* y,
                   int64_t ldy) {
  for (int64_t r = 0; r < rows; ++r) {
    const int32_t* a[S];
    float sx[S];
    for (int s = 0; s < S; ++s) {
      a[s] = segs[s].acc + r * segs[s].ldc;
      sx[s] = segs[s].sx[r];
    }
    float* yr = y + r * ldy;
    for (int64_t o = 0; o < n; ++o) {
      float v = bias[o];
      for (int s = 0; s < S; ++s) v = v + float(a[s][o]) * (sx[s] * segs[s].sw[o]);
      yr[o] = Relu ? clamp_relu(v) : clamp_plain(v);
    }
  }
}

// Rows per block: every packed weight panel is reused across this many rows, and the block's
// int8 activations (64 x 2048 = 128 KiB at most) stay in L2. 64 is whole 32-row AMX blocks and
// 10 full 6-row VNNI tiles + 4; 48 vs 96 could not be told apart on the (shared) bench host.
// AVX2 (Zen 3, 512 KB L2), B = 256: 16 / 32 / 64 rows gave 3.27 / 3.44 / 3.10 ms medians,
// and B = 1024 12.9-17.6 / 12.3-13.0 / 11.5-20.1 ms over 3 bursts each: no block size wins on
// this shared host either, so 64 stays.
constexpr int64_t kBlockRows = 64;


}  // namespace

struct Model::Workspace {
  std::vector<int8_t> q;        // quantised activations, up to 3 segments
  std::vector<uint8_t> scratch; // kernel scratch (VNNI u8 copy)
  std::vector<int32_t> acc;     // up to 3 accumulators
  std::vector<float> sx;        // 3 * kBlockRows row scales
  std::vector<float> h_img, h_txt, enc, z0, z1, logits;
  // The last budget this thread encoded, per model: a fixed budget_ms (the hook's case) skips
  // 16 sincosf per call (sincosf was ~3% of a B = 1 profile).
  uint64_t enc_model = 0;
  float enc_budget = 0.0f;
  std::vector<float> enc_cached;
};

namespace {
std::atomic<uint64_t> next_model_id{1};
}  // namespace

Model::Model(const ModelSpec& s, const KernelTable& kernels)
    : id_(next_model_id.fetch_add(1)),
      kt_(&kernels),
      image_dim_(s.image_dim),
      text_dim_(s.text_dim),
      img_out_(s.img_out),
      txt_out_(s.txt_out),
      hidden_(s.hidden),
      enc_dim_(s.encoding == 0 ? 2 * s.n_freqs : 1),
      total_logits_(0),
      encoding_(s.encoding),
      inv_ref_(s.inv_ref_latency),
      freqs_(s.freqs, s.freqs + (s.encoding == 0 ? s.n_freqs : 0)),
      head_sizes_(s.head_sizes) {
  for (int64_t h : head_sizes_) total_logits_ += h;
  img_ = std::make_unique<QLinear>(s.img_w, img_out_, image_dim_, image_dim_);
  txt_ = std::make_unique<QLinear>(s.txt_w, txt_out_, text_dim_, text_dim_);
  img_b_.assign(s.img_b, s.img_b + img_out_);
  txt_b_.assign(s.txt_b, s.txt_b + txt_out_);
  // Trunk layer 0 sees [h_img, h_txt, enc]. Each of the three column blocks is quantised on its
  // own (own per-row activation scale, own per-channel weight scales), so neither a large h_img
  // nor a large h_txt can crush the [-1, 1] budget encoding into a few int8 steps. The encoding
  // block is int8 too (its own scale gives a step of at most 1/127): an fp32 32xH GEMV per row
  // would be 8k fp32 MACs per row in the baseline-ISA glue (estimated ~0.4 us/row, not
  // measured), while as int8 it is 128 vpdpbusd.
  const int64_t k0 = img_out_ + txt_out_ + enc_dim_;
  const float* w0 = s.trunk_w[0];
  t0_img_ = std::make_unique<QLinear>(w0, hidden_, img_out_, k0);
  t0_txt_ = std::make_unique<QLinear>(w0 + img_out_, hidden_, txt_out_, k0);
  t0_enc_ = std::make_unique<QLinear>(w0 + img_out_ + txt_out_, hidden_, enc_dim_, k0);
  trunk_b_.emplace_back(s.trunk_b[0], s.trunk_b[0] + hidden_);
  for (size_t i = 1; i < s.trunk_w.size(); ++i) {
    trunk_.push_back(std::make_unique<QLinear>(s.trunk_w[i], hidden_, hidden_, hidden_));
    trunk_b_.emplace_back(s.trunk_b[i], s.trunk_b[i] + hidden_);
  }
  head_ = std::make_unique<QLinear>(s.head_w, total_logits_, hidden_, hidden_);
  head_b_.assign(s.head_b, s.head_b + total_logits_);
}

int64_t Model::weight_bytes() const {
  int64_t n = img_->packed.bytes() + txt_->packed.bytes() + t0_img_->packed.bytes() +
              t0_txt_->packed.bytes() + t0_enc_->packed.bytes() + head_->packed.bytes();
  for (const auto& t : trunk_) n += t->packed.bytes();
  return n;
}

void Model::encode_budget(float budget_ms, float* enc) const {
  const float b = budget_ms * inv_ref_;
  if (encoding_ != 0) {
    enc[0] = clamp_plain(b);
    return;
  }
  // Sinusoidal features of ln(b) (fastctrl.policy.encode_budget / spec.reference_logits).
  const float lb = std::log(b);
  const int64_t half = int64_t(freqs_.size());
  for (int64_t j = 0; j < half; ++j) {
    const float ang = lb * freqs_[size_t(j)];
    const bool ok = std::isfinite(ang);  // b underflowed to 0 (ln = -inf) or overflowed
    enc[j] = ok ? std::sin(ang) : 0.0f;
    enc[half + j] = ok ? std::cos(ang) : 0.0f;
  }
}

RunStatus Model::run(const float* img, const float* txt, const float* budget,
                     int64_t budget_stride, int64_t batch, int64_t* decisions,
                     float* logits) const {
  const KernelTable& kt = *kt_;
  thread_local Workspace ws;
  const int64_t B = kBlockRows;
  const int64_t ld_img = pad_k(image_dim_), ld_txt = pad_k(text_dim_);
  const int64_t ld_h = pad_k(std::max({img_out_, txt_out_, hidden_, enc_dim_}));
  const int64_t ldq = std::max({ld_img, ld_txt, ld_h});
  const int64_t ldc = std::max({img_out_, txt_out_, hidden_, total_logits_});
  if (ws.q.size() < size_t(3 * B * ldq)) {
    ws.q.resize(size_t(3 * B * ldq));
    ws.scratch.resize(size_t((B + 31) / 32 * 32 * ldq));  // kernels.h scratch contract
  }
  if (ws.acc.size() < size_t(3 * B * ldc)) ws.acc.resize(size_t(3 * B * ldc));
  ws.sx.resize(size_t(3 * B));
  for (auto* v : {&ws.h_img, &ws.h_txt, &ws.z0, &ws.z1, &ws.logits})
    if (v->size() < size_t(B * ldc)) v->resize(size_t(B * ldc));
  if (ws.enc.size() < size_t(B * enc_dim_)) ws.enc.resize(size_t(B * enc_dim_));
  int8_t* q[3] = {ws.q.data(), ws.q.data() + B * ldq, ws.q.data() + 2 * B * ldq};
  int32_t* acc[3] = {ws.acc.data(), ws.acc.data() + B * ldc, ws.acc.data() + 2 * B * ldc};
  float* sx[3] = {ws.sx.data(), ws.sx.data() + B, ws.sx.data() + 2 * B};
  uint8_t* scratch = ws.scratch.data();

  // nonneg: x is a ReLU output, so its int8 codes are in [0, 127] (kernels.h gemm_nonneg).
  auto linear = [&](const float* x, int64_t ldx, int64_t rows, int64_t k, const QLinear& w,
                    int seg, bool nonneg) {
    const int64_t ld = pad_k(k);
    for (int64_t r = 0; r < rows; ++r)
      quantize_row(kt, x + r * ldx, k, q[seg] + r * ld, ld, &sx[seg][r]);
    (nonneg ? kt.gemm_nonneg : kt.gemm)(q[seg], rows, ld, w.packed.view(), acc[seg], ldc,
                                        scratch);
    return Segment{acc[seg], ldc, sx[seg], w.scale.data()};
  };
  // An input layer: false where a row holds NaN or inf (the finiteness check rides on the
  // same pass that finds max|x|), before any GEMM.
  auto input_layer = [&](const float* x, int64_t rows, int64_t k, const QLinear& w, int seg) {
    const int64_t ld = pad_k(k);
    for (int64_t r = 0; r < rows; ++r)
      if (!quantize_row(kt, x + r * k, k, q[seg] + r * ld, ld, &sx[seg][r])) return false;
    kt.gemm(q[seg], rows, ld, w.packed.view(), acc[seg], ldc, scratch);
    return true;
  };

  for (int64_t m0 = 0; m0 < batch; m0 += B) {
    const int64_t rows = std::min(B, batch - m0);
    if (!input_layer(img + m0 * image_dim_, rows, image_dim_, *img_, 0))
      return RunStatus::kImageNonFinite;
    if (!input_layer(txt + m0 * text_dim_, rows, text_dim_, *txt_, 1))
      return RunStatus::kTextNonFinite;
    Segment s_img{acc[0], ldc, sx[0], img_->scale.data()};
    Segment s_txt{acc[1], ldc, sx[1], txt_->scale.data()};
    epilogue<1, true>(&s_img, img_b_.data(), rows, img_out_, ws.h_img.data(), ldc);
    epilogue<1, true>(&s_txt, txt_b_.data(), rows, txt_out_, ws.h_txt.data(), ldc);

    // Budget encoding; consecutive rows with the same budget (a scalar budget) reuse it.
    for (int64_t r = 0; r < rows; ++r) {
      float* e = ws.enc.data() + r * enc_dim_;
      const int64_t row = m0 + r;
      const float bud = budget[row * budget_stride];
      if (r > 0 && bud == budget[(row - 1) * budget_stride]) {
        std::memcpy(e, e - enc_dim_, size_t(enc_dim_) * 4);
      } else if (ws.enc_model == id_ && bud == ws.enc_budget) {
        std::memcpy(e, ws.enc_cached.data(), size_t(enc_dim_) * 4);
      } else {
        encode_budget(bud, e);
        ws.enc_cached.assign(e, e + enc_dim_);
        ws.enc_model = id_;
        ws.enc_budget = bud;
      }
    }
    Segment t0[3] = {linear(ws.h_img.data(), ldc, rows, img_out_, *t0_img_, 0, true),
                     linear(ws.h_txt.data(), ldc, rows, txt_out_, *t0_txt_, 1, true),
                     linear(ws.enc.data(), enc_dim_, rows, enc_dim_, *t0_enc_, 2, false)};
    epilogue<3, true>(t0, trunk_b_[0].data(), rows, hidden_, ws.z0.data(), ldc);
    float* z = ws.z0.data();
    float* z_next = ws.z1.data();
    for (size_t i = 0; i < trunk_.size(); ++i) {
      Segment s = linear(z, ldc, rows, hidden_, *trunk_[i], 0, true);
      epilogue<1, true>(&s, trunk_b_[i + 1].data(), rows, hidden_, z_next, ldc);
      std::swap(z, z_next);
    }
    Segment sh = linear(z, ldc, rows, hidden_, *head_, 0, true);
    float* lg = ws.logits.data();
    epilogue<1, false>(&sh, head_b_.data(), rows, total_logits_, lg, ldc);

    for (int64_t r = 0; r < rows; ++r) {
      const float* l = lg + r * ldc;
      if (logits != nullptr)
        std::memcpy(logits + (m0 + r) * total_logits_, l, size_t(total_logits_) * 4);
      if (decisions == nullptr) continue;
      int64_t off = 0;
      for (size_t h = 0; h < head_sizes_.size(); ++h) {
        int64_t best = 0;  // strict '>' keeps the lowest index on ties, like torch.argmax
        for (int64_t i = 1; i < head_sizes_[h]; ++i)
          if (l[off + i] > l[off + best]) best = i;
        decisions[(m0 + r) * int64_t(head_sizes_.size()) + int64_t(h)] = best;
        off += head_sizes_[h];
      }
    }
  }
  return RunStatus::kOk;
}

}  // namespace fastctrl
