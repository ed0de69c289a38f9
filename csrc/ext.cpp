// pybind11 bindings of the CPU kernels (augpaint_fast._C). Bindings only: the kernels live in fused_step_cpu.cpp
// and group_norm_silu_cpu.cpp.
//
// Tensors cross as raw data pointers (torch's Tensor.data_ptr()) plus shape/dtype codes: zero-copy, no libtorch,
// and bfloat16 works (the buffer protocol / numpy has no bfloat16). The Python side (augpaint_fast/fused.py
// and augpaint_fast/fused_norm.py) validates device, dtype, shape and contiguity before calling; the GIL is
// released while the kernels run.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>

#include "fused_step.h"
#include "group_norm_silu.h"

#ifdef _OPENMP
#include <omp.h>
#endif

namespace py = pybind11;
using augpaint::DType;

namespace {

template <typename T>
T* ptr(std::uintptr_t p) {
    return reinterpret_cast<T*>(p);
}

void fused_step(std::uintptr_t out, std::uintptr_t z_in, std::uintptr_t eps, std::uintptr_t z0, std::uintptr_t mask,
                std::uintptr_t table, int64_t table_rows, std::uintptr_t uids, int64_t batch, int64_t channels,
                int64_t plane, bool mask_per_element, int dtype, int mask_dtype, int64_t step, uint32_t seed,
                int num_threads) {
    if (step < 0 || step >= table_rows) throw py::index_error("step index out of the table's range");
    if (dtype < 0 || dtype > 2 || mask_dtype < 0 || mask_dtype > 3) throw py::value_error("bad dtype code");
    augpaint::FusedStepArgs a{};
    a.out = ptr<void>(out);
    a.z_in = ptr<const void>(z_in);
    a.eps = ptr<const void>(eps);
    a.z0 = ptr<const void>(z0);
    a.mask = ptr<const void>(mask);
    a.uids = ptr<const int64_t>(uids);
    a.batch = batch;
    a.channels = channels;
    a.plane = plane;
    a.mask_per_element = mask_per_element;
    a.dtype = static_cast<DType>(dtype);
    a.mask_dtype = static_cast<DType>(mask_dtype);
    const float* row = ptr<const float>(table) + 8 * step;  // DDIMSchedule.table() row j, float32 [8]
    a.coef = augpaint::StepCoef{row[0], row[1], row[2], row[3], row[4], row[5], row[6], row[7]};
    a.step = step;
    a.seed = seed;
    a.num_threads = num_threads;
    py::gil_scoped_release release;
    augpaint::fused_step_cpu(a);
}

py::array_t<uint32_t> philox(uint32_t seed, uint32_t uid, uint32_t stream, uint32_t index0, int64_t n) {
    py::array_t<uint32_t> out({n, static_cast<int64_t>(4)});
    augpaint::philox_cpu(seed, uid, stream, index0, n, out.mutable_data());
    return out;
}

py::tuple philox4x32(py::tuple ctr, py::tuple key) {
    uint32_t c[4], o[4];
    for (int i = 0; i < 4; ++i) c[i] = ctr[i].cast<uint32_t>();
    augpaint::philox4x32_one(c, key[0].cast<uint32_t>(), key[1].cast<uint32_t>(), o);
    return py::make_tuple(o[0], o[1], o[2], o[3]);
}

py::array_t<float> normal(uint32_t seed, uint32_t uid, uint32_t stream, uint32_t index0, int64_t n) {
    py::array_t<float> out(n);
    augpaint::normal_cpu(seed, uid, stream, index0, n, out.mutable_data());
    return out;
}

void group_norm_silu(std::uintptr_t out, std::uintptr_t x, std::uintptr_t weight, std::uintptr_t bias, int64_t batch,
                     int64_t channels, int64_t plane, int64_t groups, double eps, bool silu, bool channels_last,
                     int dtype, int num_threads) {
    if (dtype != 0 && dtype != 2) throw py::value_error("group_norm_silu: dtype code must be 0 (f32) or 2 (bf16)");
    augpaint::GroupNormArgs a{};
    a.out = ptr<void>(out);
    a.x = ptr<const void>(x);
    a.weight = ptr<const float>(weight);
    a.bias = ptr<const float>(bias);
    a.batch = batch;
    a.channels = channels;
    a.plane = plane;
    a.groups = groups;
    a.eps = static_cast<float>(eps);
    a.silu = silu;
    a.channels_last = channels_last;
    a.dtype = static_cast<DType>(dtype);
    a.num_threads = num_threads;
    py::gil_scoped_release release;
    augpaint::group_norm_silu_cpu(a);
}

int max_threads() {
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

}  // namespace

PYBIND11_MODULE(_C, m) {
    m.doc() = "augpaint-fast CPU kernels (fused DDIM/AugPaint step with in-register Philox noise, fused GroupNorm+SiLU)";
    m.def("fused_step", &fused_step, "Fused step on contiguous CPU buffers given by data pointers",
          py::arg("out"), py::arg("z_in"), py::arg("eps"), py::arg("z0"), py::arg("mask"), py::arg("table"),
          py::arg("table_rows"), py::arg("uids"), py::arg("batch"), py::arg("channels"), py::arg("plane"),
          py::arg("mask_per_element"), py::arg("dtype"), py::arg("mask_dtype"), py::arg("step"), py::arg("seed"),
          py::arg("num_threads") = 0);
    m.def("philox", &philox, "uint32 [n, 4]: Philox4x32-10 of counter (index0 + i, stream, 0, 0), key (seed, uid)",
          py::arg("seed"), py::arg("uid"), py::arg("stream"), py::arg("index0"), py::arg("n"));
    m.def("philox4x32", &philox4x32, "One Philox4x32-10 block: (c0, c1, c2, c3), (k0, k1) -> 4 uint32",
          py::arg("counter"), py::arg("key"));
    m.def("normal", &normal, "float32 [n]: the kernel's normal deviates for elements index0 .. index0 + n - 1",
          py::arg("seed"), py::arg("uid"), py::arg("stream"), py::arg("index0"), py::arg("n"));
    m.def("group_norm_silu", &group_norm_silu,
          "Fused GroupNorm (+ SiLU) on contiguous (NCHW or NHWC) CPU buffers given by data pointers",
          py::arg("out"), py::arg("x"), py::arg("weight"), py::arg("bias"), py::arg("batch"), py::arg("channels"),
          py::arg("plane"), py::arg("groups"), py::arg("eps"), py::arg("silu"), py::arg("channels_last"),
          py::arg("dtype"), py::arg("num_threads") = 0);
    m.def("simd_level", &augpaint::simd_level, "ISA clone selected at load time");
    m.def("max_threads", &max_threads, "OpenMP threads a call uses by default");
    m.attr("DTYPE_F32") = 0;
    m.attr("DTYPE_F16") = 1;
    m.attr("DTYPE_BF16") = 2;
    m.attr("DTYPE_U8") = 3;
    m.attr("ABI_VERSION") = 1;
}
