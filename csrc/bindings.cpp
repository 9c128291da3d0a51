// pybind11 bindings of the INT8 decision engine. Every argument is validated (type, dtype, shape,
// contiguity, finiteness) before any compute; errors name the argument and what was expected.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <new>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "engine.h"

namespace py = pybind11;
using fastctrl::KernelTable;
using fastctrl::Model;
using fastctrl::PackedMatrix;
using fastctrl::RunStatus;

namespace {

using F32Array = py::array_t<float, py::array::c_style | py::array::forcecast>;

std::string shape_str(const py::array& a) {
  std::ostringstream s;
  s << "[";
  for (py::ssize_t i = 0; i < a.ndim(); ++i) s << (i ? ", " : "") << a.shape(i);
  s << "]";
  return s.str();
}

std::string type_name(py::handle h) { return Py_TYPE(h.ptr())->tp_name; }

std::string dtype_str(const py::array& a) { return py::str(a.dtype()).cast<std::string>(); }

// dtype checks and output allocation straight through numpy's C API: the pybind11 helpers
// (array_t::check_, array_t(shape)) cost several hundred ns at B = 1.
bool is_float32(const py::array& a) {
  const auto* d = py::detail::array_descriptor_proxy(py::detail::array_proxy(a.ptr())->descr);
  if (d->type_num != py::detail::npy_api::NPY_FLOAT_) return false;
  return d->byteorder == '=' || py::array_t<float>::check_(a);
}

template <class T>
py::array_t<T> new_matrix(int64_t rows, int64_t cols) {
  auto& api = py::detail::npy_api::get();
  const Py_intptr_t dims[2] = {Py_intptr_t(rows), Py_intptr_t(cols)};
  PyObject* o = api.PyArray_NewFromDescr_(api.PyArray_Type_, py::dtype::of<T>().release().ptr(),
                                          2, dims, nullptr, nullptr, 0, nullptr);
  if (o == nullptr) throw py::error_already_set();
  return py::reinterpret_steal<py::array_t<T>>(o);
}

py::array as_array(py::handle obj, const std::string& name) {
  if (!py::isinstance<py::array>(obj))
    throw py::type_error(name + " must be a numpy array, got " + type_name(obj));
  return py::reinterpret_borrow<py::array>(obj);
}

// A float32 view need not be 4-byte aligned: np.frombuffer(buf, np.float32, offset=1) is a
// valid C-contiguous float32 array, and reading it as float* is undefined behaviour. The raw
// binding refuses such a call-time argument (it never converts); Int8Engine copies it.
struct MisalignedError : std::invalid_argument {
  using std::invalid_argument::invalid_argument;
};

bool aligned4(const void* p) { return reinterpret_cast<uintptr_t>(p) % alignof(float) == 0; }

void check_aligned(const py::array& a, const std::string& name) {
  if (!aligned4(a.data()))
    throw MisalignedError(name + " is a float32 view whose data is not 4-byte aligned (e.g. "
                          "np.frombuffer(..., offset=1)); pass an aligned copy (np.array(x)); "
                          "Int8Engine.decide copies it for you");
}

// A float32, C-contiguous [B >= 1, dim] matrix (the raw binding never converts).
py::array check_features(py::handle obj, const std::string& name, int64_t dim) {
  py::array a = as_array(obj, name);
  if (!is_float32(a))
    throw py::type_error(name + " must be float32 (the raw fastctrl._C binding does not "
                                "convert; Int8Engine.decide does), got " + dtype_str(a));
  if (a.ndim() != 2)
    throw py::value_error(name + " must be 2-D [B, " + std::to_string(dim) + "], got shape " +
                          shape_str(a));
  if (a.shape(0) == 0)
    throw py::value_error(name + " is an empty batch (shape " + shape_str(a) + "); need B >= 1");
  if (a.shape(1) != dim)
    throw py::value_error(name + " must have " + std::to_string(dim) +
                          " features per row, got shape " + shape_str(a));
  if (!(a.flags() & py::array::c_style))
    throw py::value_error(name + " must be C-contiguous (use np.ascontiguousarray / "
                                 "tensor.contiguous())");
  check_aligned(a, name);
  return a;
}

struct Budget {
  py::array keep;  // the caller's float32 array, or our float32 copy of it
  float scalar = 0.0f;
  const float* ptr = nullptr;  // into keep (heap: survives moves), or null for the scalar
  int64_t stride = 0;
  const float* data() const { return ptr != nullptr ? ptr : &scalar; }
};

// A positive number of ms, or a numeric numpy array with 1 or `batch` entries.
Budget parse_budget(py::handle obj, int64_t batch) {
  Budget b;
  if (PyBool_Check(obj.ptr()))
    throw py::type_error("budget_ms must be a number of milliseconds, got a bool");
  if (PyFloat_Check(obj.ptr()) || PyLong_Check(obj.ptr())) {
    const double v = PyFloat_AsDouble(obj.ptr());
    if (v == -1.0 && PyErr_Occurred()) throw py::error_already_set();
    b.scalar = float(v);
    if (!(std::isfinite(b.scalar) && b.scalar > 0.0f))
      throw py::value_error("budget_ms must be finite and > 0 ms, got " +
                            py::repr(obj).cast<std::string>());
    b.ptr = nullptr;  // data(): a pointer into b itself would not survive the return
    return b;
  }
  if (!py::isinstance<py::array>(obj))
    throw py::type_error("budget_ms must be a number or numpy array, got " + type_name(obj));
  py::array a = py::reinterpret_borrow<py::array>(obj);
  const char kind = a.dtype().kind();
  if (kind != 'f' && kind != 'i' && kind != 'u')
    throw py::type_error("budget_ms must be numeric, got dtype " + dtype_str(a));
  if (is_float32(a) && (a.flags() & py::array::c_style)) {
    b.keep = a;
  } else {
    b.keep = F32Array::ensure(a);
    if (!b.keep) throw py::error_already_set();
  }
  const int64_t n = b.keep.size();
  if (n != 1 && n != batch)
    throw py::value_error("budget_ms must be a scalar or have one entry per request (" +
                          std::to_string(batch) + "), got shape " + shape_str(a));
  check_aligned(b.keep, "budget_ms");
  const float* p = static_cast<const float*>(b.keep.data());
  for (int64_t i = 0; i < n; ++i)
    if (!(std::isfinite(p[i]) && p[i] > 0.0f))
      throw py::value_error("budget_ms must be finite and > 0 ms for every request");
  b.ptr = p;
  b.stride = n == 1 ? 0 : 1;
  return b;
}

const KernelTable& kernels_or_throw(const std::string& isa) {
  const KernelTable* kt = fastctrl::find_kernels(isa);
  if (kt == nullptr) {
    std::string avail;
    for (const auto& s : fastctrl::available_isas()) avail += (avail.empty() ? "" : ", ") + s;
    throw py::value_error("isa '" + isa + "' is not available here (compiled in and supported "
                          "by this CPU: " + avail + ")");
  }
  return *kt;
}

// A finite float32 weight array of the given shape (converted from any float dtype at load).
F32Array weight(py::handle obj, const std::string& name, std::vector<int64_t> shape) {
  F32Array a = F32Array::ensure(obj);
  if (!a) {
    PyErr_Clear();
    throw py::type_error(name + " must be convertible to a float32 array, got " +
                         type_name(obj));
  }
  if (!aligned4(a.data()))  // load time converts anyway: an aligned copy (see MisalignedError)
    a = F32Array::ensure(py::module_::import("numpy").attr("array")(a, py::arg("copy") = true));
  bool ok = a.ndim() == py::ssize_t(shape.size());
  for (size_t i = 0; ok && i < shape.size(); ++i) ok = a.shape(py::ssize_t(i)) == shape[i];
  if (!ok) {
    std::string want = "[";
    for (size_t i = 0; i < shape.size(); ++i) want += (i ? ", " : "") + std::to_string(shape[i]);
    throw py::value_error(name + " must have shape " + want + "], got " + shape_str(a));
  }
  const float* p = a.data();
  for (py::ssize_t i = 0; i < a.size(); ++i)
    if (!std::isfinite(p[i])) throw py::value_error(name + " contains NaN or inf");
  return a;
}

class PyModel {
 public:
  PyModel(py::handle img_w, py::handle img_b, py::handle txt_w, py::handle txt_b,
          const std::vector<py::handle>& trunk_w, const std::vector<py::handle>& trunk_b,
          py::handle head_w, py::handle head_b, const std::vector<int64_t>& head_sizes,
          int encoding, py::handle budget_freqs, double inv_ref_latency,
          const std::string& isa) {
    const KernelTable& kt = kernels_or_throw(isa);
    if (encoding != 0 && encoding != 1)
      throw py::value_error("encoding must be 0 (sinusoidal) or 1 (linear), got " +
                            std::to_string(encoding));
    if (trunk_w.empty() || trunk_w.size() != trunk_b.size())
      throw py::value_error("trunk_w and trunk_b must be non-empty lists of the same length");
    if (head_sizes.empty())
      throw py::value_error("head_sizes must list at least one head");
    for (int64_t h : head_sizes)
      if (h <= 0) throw py::value_error("head_sizes must be positive");
    if (!(std::isfinite(inv_ref_latency) && inv_ref_latency > 0))
      throw py::value_error("inv_ref_latency must be finite and > 0");
    py::array iw = as_array(img_w, "img_w"), tw = as_array(txt_w, "txt_w"),
              t0 = as_array(trunk_w[0], "trunk_w[0]");
    if (iw.ndim() != 2 || tw.ndim() != 2 || t0.ndim() != 2)
      throw py::value_error("img_w, txt_w and trunk_w[0] must be 2-D [out, in]");
    fastctrl::ModelSpec s;
    s.img_out = iw.shape(0);
    s.image_dim = iw.shape(1);
    s.txt_out = tw.shape(0);
    s.text_dim = tw.shape(1);
    s.hidden = t0.shape(0);
    s.encoding = encoding;
    F32Array freqs = F32Array::ensure(budget_freqs);
    if (!freqs) throw py::error_already_set();
    s.n_freqs = encoding == 0 ? int64_t(freqs.size()) : 0;
    if (encoding == 0 && s.n_freqs == 0)
      throw py::value_error("budget_freqs must be non-empty for the sinusoidal encoding");
    const int64_t enc = encoding == 0 ? 2 * s.n_freqs : 1;
    if (s.img_out <= 0 || s.image_dim <= 0 || s.txt_out <= 0 || s.text_dim <= 0 || s.hidden <= 0)
      throw py::value_error("weight matrices must have positive sizes");
    int64_t total = 0;
    for (int64_t h : head_sizes) total += h;
    std::vector<F32Array> keep;
    auto add = [&](py::handle o, const std::string& n, std::vector<int64_t> shape) {
      keep.push_back(weight(o, n, std::move(shape)));
      return keep.back().data();
    };
    s.img_w = add(img_w, "img_w", {s.img_out, s.image_dim});
    s.img_b = add(img_b, "img_b", {s.img_out});
    s.txt_w = add(txt_w, "txt_w", {s.txt_out, s.text_dim});
    s.txt_b = add(txt_b, "txt_b", {s.txt_out});
    for (size_t i = 0; i < trunk_w.size(); ++i) {
      const int64_t in = i == 0 ? s.img_out + s.txt_out + enc : s.hidden;
      s.trunk_w.push_back(add(trunk_w[i], "trunk_w[" + std::to_string(i) + "]", {s.hidden, in}));
      s.trunk_b.push_back(add(trunk_b[i], "trunk_b[" + std::to_string(i) + "]", {s.hidden}));
    }
    s.head_w = add(head_w, "head_w", {total, s.hidden});
    s.head_b = add(head_b, "head_b", {total});
    s.freqs = add(freqs, "budget_freqs", {int64_t(freqs.size())});
    s.head_sizes = head_sizes;
    s.inv_ref_latency = float(inv_ref_latency);
    model_ = std::make_unique<Model>(s, kt);
  }

  py::array_t<int64_t> decide(py::handle img, py::handle txt, py::handle budget) const {
    py::array_t<int64_t> out;
    run(img, txt, budget, &out, nullptr);
    return out;
  }

  // The same decisions as a list of B lists (the hook's path: it reads the config on the
  // host anyway; building the list here skips a numpy array + torch.from_numpy + tolist, ~1.3
  // us of a ~7 us B = 1 call, measured warm).
  py::list decide_list(py::handle img, py::handle txt, py::handle budget) const {
    py::array_t<int64_t> out;
    run(img, txt, budget, &out, nullptr);
    const int64_t rows = out.shape(0), cols = out.shape(1);
    const int64_t* p = out.data();
    py::list result(rows);
    for (int64_t r = 0; r < rows; ++r) {
      py::list row(cols);
      for (int64_t j = 0; j < cols; ++j) {
        PyObject* v = PyLong_FromLongLong(p[r * cols + j]);
        if (v == nullptr) throw py::error_already_set();
        PyList_SET_ITEM(row.ptr(), j, v);  // steals the reference
      }
      PyList_SET_ITEM(result.ptr(), r, row.release().ptr());
    }
    return result;
  }

  py::array_t<float> logits(py::handle img, py::handle txt, py::handle budget) const {
    py::array_t<float> out;
    run(img, txt, budget, nullptr, &out);
    return out;
  }

  const Model& model() const { return *model_; }

 private:
  void run(py::handle img, py::handle txt, py::handle budget, py::array_t<int64_t>* dec,
           py::array_t<float>* lg) const {
    const Model& m = *model_;
    py::array a = check_features(img, "image_feat", m.image_dim());
    py::array t = check_features(txt, "lang_feat", m.text_dim());
    const int64_t batch = a.shape(0);
    if (t.shape(0) != batch)
      throw py::value_error("image_feat and lang_feat must have the same batch size, got " +
                            std::to_string(batch) + " and " + std::to_string(t.shape(0)));
    Budget b = parse_budget(budget, batch);
    int64_t* dptr = nullptr;
    float* lptr = nullptr;
    if (dec != nullptr) {
      *dec = new_matrix<int64_t>(batch, int64_t(m.head_sizes().size()));
      dptr = dec->mutable_data();
    }
    if (lg != nullptr) {
      *lg = new_matrix<float>(batch, m.total_logits());
      lptr = lg->mutable_data();
    }
    const float* ip = static_cast<const float*>(a.data());
    const float* tp = static_cast<const float*>(t.data());
    // Raw PyEval_SaveThread/RestoreThread: py::gil_scoped_release also looks up pybind11's
    // internals on every call. With the numpy C-API output below this took the fixed cost
    // (8-wide controller, B = 1) from 2.7 to 1.6 us (measured).
    PyThreadState* ts = PyEval_SaveThread();
    RunStatus st = RunStatus::kOk;
    bool out_of_memory = false;
    try {
      st = m.run(ip, tp, b.data(), b.stride, batch, dptr, lptr);
    } catch (const std::bad_alloc&) {  // workspace growth; nothing else in run() throws
      out_of_memory = true;
    }
    PyEval_RestoreThread(ts);
    if (out_of_memory) throw std::bad_alloc();
    if (st == RunStatus::kImageNonFinite) throw py::value_error("image_feat contains NaN or inf");
    if (st == RunStatus::kTextNonFinite) throw py::value_error("lang_feat contains NaN or inf");
  }

  std::unique_ptr<Model> model_;
};

py::array check_int8_matrix(py::handle obj, const std::string& name) {
  py::array a = as_array(obj, name);
  if (!py::array_t<int8_t>::check_(a))
    throw py::type_error(name + " must be int8, got " + dtype_str(a));
  if (a.ndim() != 2)
    throw py::value_error(name + " must be 2-D, got shape " + shape_str(a));
  if (a.shape(0) == 0 || a.shape(1) == 0)
    throw py::value_error(name + " must be non-empty, got shape " + shape_str(a));
  if (!(a.flags() & py::array::c_style))
    throw py::value_error(name + " must be C-contiguous (use np.ascontiguousarray)");
  return a;
}

py::array check_f32_matrix(py::handle obj, const std::string& name) {
  py::array a = as_array(obj, name);
  if (!py::array_t<float>::check_(a))
    throw py::type_error(name + " must be float32, got " + dtype_str(a));
  if (a.ndim() != 2 || a.shape(0) == 0 || a.shape(1) == 0)
    throw py::value_error(name + " must be a non-empty 2-D array, got shape " + shape_str(a));
  if (!(a.flags() & py::array::c_style))
    throw py::value_error(name + " must be C-contiguous (use np.ascontiguousarray)");
  check_aligned(a, name);
  const float* p = static_cast<const float*>(a.data());
  for (py::ssize_t i = 0; i < a.size(); ++i)
    if (!std::isfinite(p[i])) throw py::value_error(name + " contains NaN or inf");
  return a;
}

}  // namespace

PYBIND11_MODULE(_C, m) {
  m.doc() = "fastctrl INT8 decision engine (scalar / AVX2 / AVX-512 VNNI, runtime dispatch)";
  py::register_exception<MisalignedError>(m, "MisalignedError", PyExc_ValueError);
  m.def("compiled_isas", &fastctrl::compiled_isas, "ISA kernels built into this extension.");
  m.def("available_isas", &fastctrl::available_isas,
        "ISA kernels built in AND supported by this CPU and OS, slowest first.");

  m.def(
      "quantize_weights",
      [](py::handle w) {
        py::array a = check_f32_matrix(w, "w");
        const int64_t n = a.shape(0), k = a.shape(1);
        py::array_t<int8_t> q({n, k});
        py::array_t<float> scale(n);
        fastctrl::quantize_weights(static_cast<const float*>(a.data()), n, k,
                                   q.mutable_data(), scale.mutable_data());
        return py::make_tuple(q, scale);
      },
      py::arg("w"), "Symmetric per-output-channel int8 quantisation: (q [N, K], scale [N]).");

  m.def(
      "quantize_rows",
      [](py::handle x, const std::string& isa) {
        const KernelTable& kt = kernels_or_throw(isa);
        py::array a = as_array(x, "x");
        if (!py::array_t<float>::check_(a))
          throw py::type_error("x must be float32, got " + dtype_str(a));
        if (a.ndim() != 2 || a.shape(0) == 0 || a.shape(1) == 0)
          throw py::value_error("x must be a non-empty 2-D array, got shape " + shape_str(a));
        if (!(a.flags() & py::array::c_style))
          throw py::value_error("x must be C-contiguous (use np.ascontiguousarray)");
        const int64_t mrows = a.shape(0), k = a.shape(1);
        py::array_t<int8_t> q({mrows, k});
        py::array_t<float> scale(mrows);
        check_aligned(a, "x");
        const float* xp = static_cast<const float*>(a.data());
        for (int64_t r = 0; r < mrows; ++r)
          if (!fastctrl::quantize_row(kt, xp + r * k, k, q.mutable_data() + r * k, k,
                                      scale.mutable_data() + r))
            throw py::value_error("x contains NaN or inf (row " + std::to_string(r) + ")");
        return py::make_tuple(q, scale);
      },
      py::arg("x"), py::arg("isa"),
      "Per-row activation quantisation as the engine does it: (q [M, K], scale [M]).");

  py::class_<PackedMatrix>(m, "PackedMatrix",
                           "int8 [N, K] weights packed once for every kernel (panels of 64 "
                           "channels x groups of 4 k), with VNNI compensation.")
      .def(py::init([](py::handle w) {
             py::array a = check_int8_matrix(w, "w");
             const int8_t* p = static_cast<const int8_t*>(a.data());
             for (py::ssize_t i = 0; i < a.size(); ++i)
               if (p[i] == -128)
                 throw py::value_error("w must be in [-127, 127] (symmetric int8), found -128");
             return std::make_unique<PackedMatrix>(p, a.shape(0), a.shape(1));
           }),
           py::arg("w"))
      .def_property_readonly("n", &PackedMatrix::n)
      .def_property_readonly("k", &PackedMatrix::k)
      .def_property_readonly("kp", &PackedMatrix::kp)
      .def_property_readonly("np", &PackedMatrix::np)
      .def("unpack",
           [](const PackedMatrix& pm) {
             py::array_t<int8_t> out({pm.n(), pm.k()});
             pm.unpack(out.mutable_data());
             return out;
           })
      .def("compensation", [](const PackedMatrix& pm) {
        py::array_t<int32_t> out(pm.n());
        std::memcpy(out.mutable_data(), pm.comp(), size_t(pm.n()) * 4);
        return out;
      });

  m.def(
      "gemm_s8s8_s32",
      [](py::handle a_obj, const PackedMatrix& w, const std::string& isa, bool nonneg) {
        const KernelTable& kt = kernels_or_throw(isa);
        py::array a = check_int8_matrix(a_obj, "a");
        if (a.shape(1) != w.k())
          throw py::value_error("a must have K = " + std::to_string(w.k()) +
                                " columns to match w, got shape " + shape_str(a));
        const int64_t mrows = a.shape(0), k = w.k(), lda = w.kp();
        std::vector<int8_t> padded(size_t(mrows * lda), 0);
        const int8_t* src = static_cast<const int8_t*>(a.data());
        if (nonneg)
          for (py::ssize_t i = 0; i < a.size(); ++i)
            if (src[i] < 0)
              throw py::value_error("nonneg=True needs every value of a in [0, 127], found " +
                                    std::to_string(int(src[i])));
        for (int64_t r = 0; r < mrows; ++r)
          std::memcpy(&padded[size_t(r * lda)], src + r * k, size_t(k));
        std::vector<uint8_t> scratch(size_t((mrows + 31) / 32 * 32 * lda));
        py::array_t<int32_t> c({mrows, w.n()});
        int32_t* cp = c.mutable_data();
        {
          py::gil_scoped_release nogil;
          (nonneg ? kt.gemm_nonneg : kt.gemm)(padded.data(), mrows, lda, w.view(), cp, w.n(),
                                              scratch.data());
        }
        return c;
      },
      py::arg("a"), py::arg("w"), py::arg("isa"), py::arg("nonneg") = false,
      "Exact int32 C[M, N] = a[M, K] @ w[N, K]^T with the given ISA kernel (nonneg=True: the "
      "kernel for A in [0, 127], the engine's ReLU layers).");

  py::class_<PyModel>(m, "Int8Model", "Quantised controller; decide() releases the GIL.")
      .def(py::init<py::handle, py::handle, py::handle, py::handle, const std::vector<py::handle>&,
                    const std::vector<py::handle>&, py::handle, py::handle,
                    const std::vector<int64_t>&, int, py::handle, double, const std::string&>(),
           py::arg("img_w"), py::arg("img_b"), py::arg("txt_w"), py::arg("txt_b"),
           py::arg("trunk_w"), py::arg("trunk_b"), py::arg("head_w"), py::arg("head_b"),
           py::arg("head_sizes"), py::arg("encoding"), py::arg("budget_freqs"),
           py::arg("inv_ref_latency"), py::arg("isa"))
      .def("decide", &PyModel::decide, py::arg("image_feat"), py::arg("lang_feat"),
           py::arg("budget_ms"), "int64 [B, n_heads] argmax decisions.")
      .def("decide_list", &PyModel::decide_list, py::arg("image_feat"), py::arg("lang_feat"),
           py::arg("budget_ms"), "decide() as a list of B lists of ints.")
      .def("logits", &PyModel::logits, py::arg("image_feat"), py::arg("lang_feat"),
           py::arg("budget_ms"), "float32 [B, sum(head_sizes)] dequantised logits.")
      .def_property_readonly("weight_bytes",
                             [](const PyModel& p) { return p.model().weight_bytes(); })
      .def_property_readonly("isa", [](const PyModel& p) { return p.model().kernels().name; })
      .def_property_readonly("image_dim", [](const PyModel& p) { return p.model().image_dim(); })
      .def_property_readonly("text_dim", [](const PyModel& p) { return p.model().text_dim(); })
      .def_property_readonly("head_sizes",
                             [](const PyModel& p) { return p.model().head_sizes(); });
}
