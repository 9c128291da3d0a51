#include <pybind11/pybind11.h>
#include <pybind11/stl.h>
#include <string>
#include <vector>

namespace py = pybind11;

PYBIND11_MODULE(_C, m) {
  m.doc() = "fastctrl INT8 decision engine";
  m.def("available_isas", []() { return std::vector<std::string>{"scalar"}; });
}
