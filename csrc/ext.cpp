// pybind11 bindings of the CPU kernels (augpaint_fast._C). Bindings only: the kernels live in fused_step_cpu.cpp
// and group_norm_silu_cpu.cpp.
//
// The kernels take torch.Tensor arguments, read through their Python attributes (device, dtype, shape, strides,
// data_ptr): zero-copy, no libtorch, and bfloat16 works (the buffer protocol / numpy has no bfloat16). Every
// binding checks its own arguments before any pointer reaches a kernel (the Python wrappers in
// augpaint_fast/fused.py and augpaint_fast/fused_norm.py are not the only callers): a bad argument raises
// ValueError (IndexError for a step outside the table) with the binding's name and the argument's, never a crash.
// Sizes (batch, channels, table rows) come from the tensors themselves, so they cannot disagree with the memory.
// An empty batch returns at once. The GIL is released while the kernels run.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cmath>
#include <cstdint>
#include <initializer_list>
#include <numeric>
#include <string>
#include <utility>
#include <vector>

#include "fused_step.h"
#include "group_norm_silu.h"

#ifdef _OPENMP
#include <omp.h>
#endif

namespace py = pybind11;
using augpaint::DType;

namespace {

const std::vector<int> kNCHW{0, 1, 2, 3}, kNHWC{0, 2, 3, 1};  // memory order of the dims, outermost first
constexpr int kMaxThreads = 1024;  // num_threads above this is a caller's mistake (OpenMP would try to spawn them)

[[noreturn]] void fail(const char* fn, const std::string& msg) { throw py::value_error(std::string(fn) + ": " + msg); }

std::string shape_str(const std::vector<int64_t>& shape) {
    std::string s = "(";
    for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
    return s + (shape.size() == 1 ? ",)" : ")");
}

// A CPU torch.Tensor argument as the kernels see it. `dtype` is torch's name without "torch." ("float32", ...).
struct Tensor {
    const char* fn;
    const char* name;
    std::string dtype;
    std::vector<int64_t> shape, strides;
    std::uintptr_t data = 0;
    int64_t itemsize = 0;  // 0 for a dtype no kernel takes (refused before any overlap check)

    int64_t numel() const {
        int64_t n = 1;
        for (int64_t d : shape) n *= d;
        return n;
    }
    // Dense with dims laid out outermost-to-innermost in `order` (size-1 dims' strides ignored, as
    // torch.Tensor.is_contiguous): NCHW = kNCHW, channels_last = kNHWC.
    bool dense(const std::vector<int>& order) const {
        if (numel() == 0) return true;
        int64_t expected = 1;
        for (auto it = order.rbegin(); it != order.rend(); ++it) {
            if (shape[*it] != 1 && strides[*it] != expected) return false;
            expected *= shape[*it];
        }
        return true;
    }
    void need_dtype(std::initializer_list<const char*> ok) const {
        std::string names;
        for (const char* d : ok) {
            if (dtype == d) return;
            names += (names.empty() ? "" : " or ") + std::string(d);
        }
        fail(fn, std::string(name) + " is " + dtype + ", expected " + names);
    }
    void need_shape(const std::vector<int64_t>& want) const {
        if (shape != want) fail(fn, std::string(name) + " has shape " + shape_str(shape) + ", expected " + shape_str(want));
    }
    void need_rank(size_t rank, const char* what) const {
        if (shape.size() != rank)
            fail(fn, std::string(name) + " must be " + what + ", got shape " + shape_str(shape));
    }
    void need_contiguous() const {
        std::vector<int> order(shape.size());
        std::iota(order.begin(), order.end(), 0);
        if (!dense(order)) fail(fn, std::string(name) + " is not contiguous (strides " + shape_str(strides) + ")");
    }
    // Byte ranges [data, data + numel * itemsize) share a byte.
    bool overlaps(const Tensor& o) const {
        const int64_t n = numel() * itemsize, m = o.numel() * o.itemsize;
        return n > 0 && m > 0 && data < o.data + m && o.data < data + n;
    }
};

// torch objects the checks compare against by identity, and interned attribute names: reading a tensor costs a
// few attribute lookups (about 1 us), no str() and no name allocation per call. Kept for the process's life.
struct TorchObjects {
    struct Known {
        PyObject* dtype;
        const char* name;
        int64_t itemsize;
    };
    PyObject* tensor_type;
    PyObject* strided;
    std::vector<Known> dtypes;  // the dtypes the kernels know
    PyObject *layout, *is_cpu, *dtype, *shape, *stride, *data_ptr, *device;
};

const TorchObjects& torch_objects() {
    static const TorchObjects objs = [] {
        const py::module_ torch = py::module_::import("torch");
        TorchObjects o{torch.attr("Tensor").ptr(), torch.attr("strided").ptr(), {}};
        for (const auto& [name, size] : {std::pair<const char*, int64_t>{"float32", 4}, {"float16", 2},
                                         {"bfloat16", 2}, {"uint8", 1}, {"bool", 1}, {"int64", 8}})
            o.dtypes.push_back({torch.attr(name).ptr(), name, size});
        o.layout = PyUnicode_InternFromString("layout");
        o.is_cpu = PyUnicode_InternFromString("is_cpu");
        o.dtype = PyUnicode_InternFromString("dtype");
        o.shape = PyUnicode_InternFromString("shape");
        o.stride = PyUnicode_InternFromString("stride");
        o.data_ptr = PyUnicode_InternFromString("data_ptr");
        o.device = PyUnicode_InternFromString("device");
        return o;  // torch's module attributes live while torch is imported, i.e. for the process
    }();
    return objs;
}

py::object get_attr(py::handle obj, PyObject* name) {
    PyObject* r = PyObject_GetAttr(obj.ptr(), name);
    if (!r) throw py::error_already_set();
    return py::reinterpret_steal<py::object>(r);
}

py::object call_method(py::handle obj, PyObject* name) {
    PyObject* r = PyObject_CallMethodNoArgs(obj.ptr(), name);
    if (!r) throw py::error_already_set();
    return py::reinterpret_steal<py::object>(r);
}

std::vector<int64_t> int_tuple(const py::object& obj) {  // torch.Size or a tuple of ints
    if (!PyTuple_Check(obj.ptr())) throw py::type_error("expected a tuple of ints");
    std::vector<int64_t> v(PyTuple_GET_SIZE(obj.ptr()));
    for (size_t i = 0; i < v.size(); ++i) {
        v[i] = PyLong_AsLongLong(PyTuple_GET_ITEM(obj.ptr(), i));
        if (v[i] == -1 && PyErr_Occurred()) throw py::error_already_set();
    }
    return v;
}

Tensor read_tensor(const char* fn, const char* name, py::handle obj) {
    const TorchObjects& torch = torch_objects();
    const int is_tensor = PyObject_IsInstance(obj.ptr(), torch.tensor_type);
    if (is_tensor < 0) throw py::error_already_set();
    if (!is_tensor)
        fail(fn, std::string(name) + " must be a torch.Tensor, got " +
                     py::type::of(obj).attr("__name__").cast<std::string>());
    if (get_attr(obj, torch.layout).ptr() != torch.strided)
        fail(fn, std::string(name) + " must be a dense (strided) tensor");
    if (get_attr(obj, torch.is_cpu).ptr() != Py_True)
        fail(fn, std::string(name) + " is on " + py::str(get_attr(obj, torch.device)).cast<std::string>() +
                     "; the C++ kernels read CPU memory only");
    Tensor t{fn, name};
    const py::object dtype = get_attr(obj, torch.dtype);
    for (const TorchObjects::Known& k : torch.dtypes)
        if (dtype.ptr() == k.dtype) {
            t.dtype = k.name;
            t.itemsize = k.itemsize;
        }
    if (t.dtype.empty()) t.dtype = py::str(dtype).cast<std::string>().substr(6);  // "torch.float64" -> "float64"
    t.shape = int_tuple(get_attr(obj, torch.shape));
    t.strides = int_tuple(call_method(obj, torch.stride));
    t.data = call_method(obj, torch.data_ptr).cast<std::uintptr_t>();
    return t;
}

DType dtype_code(const Tensor& t) {
    if (t.dtype == "float32") return DType::F32;
    if (t.dtype == "float16") return DType::F16;
    if (t.dtype == "bfloat16") return DType::BF16;
    return DType::U8;  // uint8 or bool: the only others a caller's need_dtype lets through
}

void check_threads(const char* fn, int num_threads) {
    if (num_threads < 0 || num_threads > kMaxThreads)
        fail(fn, "num_threads must be 0 (OpenMP default) .. " + std::to_string(kMaxThreads) + ", got " +
                     std::to_string(num_threads));
}

// out [B, C, h, w] = the step of call `step` (fused_step.h) for z_in, eps, z0 (one latent dtype, NCHW
// contiguous), mask [B, 1, h, w] or [B, C, h, w] (float32/16, bfloat16, uint8 or bool), table float32 [S, 8]
// (DDIMSchedule.table()), uids int64 [B] (taken mod 2**32, as rng.philox4x32 does). out may be z_in, eps or z0
// itself, but must not overlap any input otherwise.
void fused_step(py::handle out_, py::handle z_in_, py::handle eps_, py::handle z0_, py::handle mask_,
                py::handle table_, py::handle uids_, int64_t step, uint32_t seed, int num_threads) {
    const char* fn = "fused_step";
    const Tensor out = read_tensor(fn, "out", out_), z = read_tensor(fn, "z_in", z_in_),
                 eps = read_tensor(fn, "eps", eps_), z0 = read_tensor(fn, "z0", z0_),
                 mask = read_tensor(fn, "mask", mask_), table = read_tensor(fn, "table", table_),
                 uids = read_tensor(fn, "uids", uids_);
    z.need_rank(4, "[B, C, h, w]");
    z.need_dtype({"float32", "float16", "bfloat16"});
    const int64_t B = z.shape[0], C = z.shape[1], h = z.shape[2], w = z.shape[3];
    for (const Tensor* t : {&out, &eps, &z0}) {
        t->need_shape(z.shape);
        t->need_dtype({z.dtype.c_str()});
    }
    if (mask.shape != std::vector<int64_t>{B, 1, h, w} && mask.shape != z.shape)
        fail(fn, "mask has shape " + shape_str(mask.shape) + ", expected " + shape_str({B, 1, h, w}) + " or " +
                     shape_str(z.shape));
    mask.need_dtype({"float32", "float16", "bfloat16", "uint8", "bool"});
    table.need_rank(2, "[S, 8] (DDIMSchedule.table())");
    table.need_shape({table.shape[0], 8});
    table.need_dtype({"float32"});
    uids.need_shape({B});
    uids.need_dtype({"int64"});
    for (const Tensor* t : {&out, &z, &eps, &z0, &mask, &table, &uids}) t->need_contiguous();
    if (step < 0 || step >= table.shape[0])
        throw py::index_error("fused_step: step " + std::to_string(step) + " outside the table's " +
                              std::to_string(table.shape[0]) + " rows");
    for (const Tensor* t : {&z, &eps, &z0, &mask, &table, &uids}) {
        const bool elementwise = t == &z || t == &eps || t == &z0;  // same shape and dtype as out: may be out
        if (out.overlaps(*t) && !(elementwise && out.data == t->data))
            fail(fn, std::string("out overlaps ") + t->name + " (it may only be z_in, eps or z0 itself)");
    }
    check_threads(fn, num_threads);
    if (z.numel() == 0) return;  // an empty batch (or empty latent): nothing to compute
    augpaint::FusedStepArgs a{};
    a.out = reinterpret_cast<void*>(out.data);
    a.z_in = reinterpret_cast<const void*>(z.data);
    a.eps = reinterpret_cast<const void*>(eps.data);
    a.z0 = reinterpret_cast<const void*>(z0.data);
    a.mask = reinterpret_cast<const void*>(mask.data);
    a.uids = reinterpret_cast<const int64_t*>(uids.data);
    a.batch = B;
    a.channels = C;
    a.plane = h * w;
    a.mask_per_element = mask.shape[1] == C;
    a.dtype = dtype_code(z);
    a.mask_dtype = dtype_code(mask);
    const float* row = reinterpret_cast<const float*>(table.data) + 8 * step;  // table row j
    a.coef = augpaint::StepCoef{row[0], row[1], row[2], row[3], row[4], row[5], row[6], row[7]};
    a.step = step;
    a.seed = seed;
    a.num_threads = num_threads;
    py::gil_scoped_release release;
    augpaint::fused_step_cpu(a);
}

py::array_t<uint32_t> philox(uint32_t seed, uint32_t uid, uint32_t stream, uint32_t index0, int64_t n) {
    if (n < 0) fail("philox", "n must be >= 0, got " + std::to_string(n));
    py::array_t<uint32_t> out({n, static_cast<int64_t>(4)});
    augpaint::philox_cpu(seed, uid, stream, index0, n, out.mutable_data());
    return out;
}

py::tuple philox4x32(py::tuple ctr, py::tuple key) {
    if (ctr.size() != 4 || key.size() != 2)
        fail("philox4x32", "counter must have 4 words and key 2, got " + std::to_string(ctr.size()) + " and " +
                               std::to_string(key.size()));
    uint32_t c[4], o[4];
    for (int i = 0; i < 4; ++i) c[i] = ctr[i].cast<uint32_t>();
    augpaint::philox4x32_one(c, key[0].cast<uint32_t>(), key[1].cast<uint32_t>(), o);
    return py::make_tuple(o[0], o[1], o[2], o[3]);
}

py::array_t<float> normal(uint32_t seed, uint32_t uid, uint32_t stream, uint32_t index0, int64_t n) {
    if (n < 0) fail("normal", "n must be >= 0, got " + std::to_string(n));
    py::array_t<float> out(n);
    augpaint::normal_cpu(seed, uid, stream, index0, n, out.mutable_data());
    return out;
}

// out = GroupNorm(x; groups, weight, bias, eps), then SiLU if `silu` (group_norm_silu.h): x float32 or bfloat16
// [B, C, H, W], NCHW or channels_last contiguous; out x's dtype, shape and layout, not overlapping x, weight or
// bias; weight and bias float32 [C]; groups divides C.
void group_norm_silu(py::handle out_, py::handle x_, py::handle weight_, py::handle bias_, int64_t groups,
                     double eps, bool silu, int num_threads) {
    const char* fn = "group_norm_silu";
    const Tensor out = read_tensor(fn, "out", out_), x = read_tensor(fn, "x", x_),
                 weight = read_tensor(fn, "weight", weight_), bias = read_tensor(fn, "bias", bias_);
    x.need_rank(4, "[B, C, H, W]");
    x.need_dtype({"float32", "bfloat16"});
    out.need_shape(x.shape);
    out.need_dtype({x.dtype.c_str()});
    const int64_t B = x.shape[0], C = x.shape[1], H = x.shape[2], W = x.shape[3];
    for (const Tensor* t : {&weight, &bias}) {
        t->need_shape({C});
        t->need_dtype({"float32"});
        t->need_contiguous();
    }
    if (groups < 1 || C % groups)
        fail(fn, std::to_string(C) + " channels do not split into " + std::to_string(groups) + " groups");
    const float eps_f = static_cast<float>(eps);  // the kernel's precision
    if (!(std::isfinite(eps_f) && eps_f >= 0.0f)) fail(fn, "eps must be finite and >= 0, got " + std::to_string(eps));
    const bool channels_last = !x.dense(kNCHW);
    if (channels_last && !x.dense(kNHWC))
        fail(fn, "x is not contiguous (NCHW) or channels_last contiguous (strides " + shape_str(x.strides) + ")");
    if (channels_last ? !out.dense(kNHWC) : !out.dense(kNCHW))
        fail(fn, std::string("out must have x's layout (") + (channels_last ? "channels_last" : "NCHW") +
                     " contiguous), got strides " + shape_str(out.strides));
    for (const Tensor* t : {&x, &weight, &bias})
        if (out.overlaps(*t)) fail(fn, std::string("out overlaps ") + t->name);
    check_threads(fn, num_threads);
    if (x.numel() == 0) return;  // an empty batch: nothing to compute
    augpaint::GroupNormArgs a{};
    a.out = reinterpret_cast<void*>(out.data);
    a.x = reinterpret_cast<const void*>(x.data);
    a.weight = reinterpret_cast<const float*>(weight.data);
    a.bias = reinterpret_cast<const float*>(bias.data);
    a.batch = B;
    a.channels = C;
    a.plane = H * W;
    a.groups = groups;
    a.eps = eps_f;
    a.silu = silu;
    a.channels_last = channels_last;
    a.dtype = dtype_code(x);
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
    m.def("fused_step", &fused_step, "Fused step of call `step` into out (contiguous CPU tensors, checked)",
          py::arg("out"), py::arg("z_in"), py::arg("eps"), py::arg("z0"), py::arg("mask"), py::arg("table"),
          py::arg("uids"), py::arg("step"), py::arg("seed"), py::arg("num_threads") = 0);
    m.def("philox", &philox, "uint32 [n, 4]: Philox4x32-10 of counter (index0 + i, stream, 0, 0), key (seed, uid)",
          py::arg("seed"), py::arg("uid"), py::arg("stream"), py::arg("index0"), py::arg("n"));
    m.def("philox4x32", &philox4x32, "One Philox4x32-10 block: (c0, c1, c2, c3), (k0, k1) -> 4 uint32",
          py::arg("counter"), py::arg("key"));
    m.def("normal", &normal, "float32 [n]: the kernel's normal deviates for elements index0 .. index0 + n - 1",
          py::arg("seed"), py::arg("uid"), py::arg("stream"), py::arg("index0"), py::arg("n"));
    m.def("group_norm_silu", &group_norm_silu,
          "Fused GroupNorm (+ SiLU) into out (NCHW or channels_last contiguous CPU tensors, checked)",
          py::arg("out"), py::arg("x"), py::arg("weight"), py::arg("bias"), py::arg("groups"), py::arg("eps"),
          py::arg("silu"), py::arg("num_threads") = 0);
    m.def("simd_level", &augpaint::simd_level, "ISA clone selected at load time");
    m.def("max_threads", &max_threads, "OpenMP threads a call uses by default");
    m.attr("DTYPE_F32") = 0;
    m.attr("DTYPE_F16") = 1;
    m.attr("DTYPE_BF16") = 2;
    m.attr("DTYPE_U8") = 3;
    m.attr("ABI_VERSION") = 2;  // 2: tensor arguments, checked by the bindings
}
