"""augpaint-fast: AugPaint data augmentation (latent-diffusion inpainting) with a fast sampling engine.

Install torch first, pinned (``pip install torch==2.13.0``): the dependency below is a floor, so an
already-installed CPU build satisfies it and pip pulls nothing else. The torch floor is the version CI runs
(no older torch is tested); ``constraints.txt`` pins every package at the version CI tested
(``pip install -c constraints.txt -e '.[test]'``).
"""
from setuptools import find_packages, setup

# The package is augpaint_fast/ plus two top-level folders installed inside it (kernels/ -> augpaint_fast.kernels,
# export/ -> augpaint_fast.export). Sub-packages are discovered, never listed by hand: a listing once left
# augpaint_fast.engines and augpaint_fast.training out of the wheel.
_PACKAGE_DIRS = {"augpaint_fast": "augpaint_fast", "augpaint_fast.kernels": "kernels", "augpaint_fast.export": "export"}
_PACKAGES = [p for root, folder in _PACKAGE_DIRS.items()
             for p in [root] + [f"{root}.{sub}" for sub in find_packages(folder)]]

# --- optional C++ extension augpaint_fast._C (csrc/): fused step + fused GroupNorm/SiLU for CPU tensors ----
# Plain pybind11 + OpenMP, no libtorch. -ffp-contract=off keeps the float32 arithmetic operation-for-operation the
# PyTorch reference's (no FMA contraction); -fno-math-errno lets sqrt vectorise; no -march=native (portable wheels): the kernel uses target_clones
# (x86-64-v4 / v3 / baseline) picked at load time. A compiler failure is a warning: the package then runs on the
# reference path (augpaint_fast.ops.fused.kernel_status() says why).
try:
    from pybind11.setup_helpers import Pybind11Extension, build_ext as _pybind11_build_ext
except ImportError:  # pybind11 missing: install without the extension
    Pybind11Extension = None
    _pybind11_build_ext = None

_ext_modules = []
_cmdclass = {}
if Pybind11Extension is not None:
    _ext_modules.append(
        Pybind11Extension(
            "augpaint_fast._C",
            ["csrc/ext.cpp", "csrc/fused_step_cpu.cpp", "csrc/group_norm_silu_cpu.cpp"],
            include_dirs=["csrc"],
            cxx_std=17,
            extra_compile_args=["-O3", "-fopenmp", "-ffp-contract=off", "-fno-math-errno"],
            extra_link_args=["-fopenmp"],
        )
    )

    class _OptionalBuildExt(_pybind11_build_ext):
        """build_ext that turns a failed C++ build into a warning (the extension is optional)."""

        def run(self):
            try:
                super().run()
            except Exception as exc:  # noqa: BLE001 - any compiler/linker failure
                print(f"WARNING: augpaint_fast._C not built ({exc}); the reference kernels will be used")

        def build_extension(self, ext):
            try:
                super().build_extension(ext)
            except Exception as exc:  # noqa: BLE001
                print(f"WARNING: {ext.name} not built ({exc}); the reference kernels will be used")

    _cmdclass["build_ext"] = _OptionalBuildExt

setup(
    name="augpaint-fast",
    version="0.1.0",
    description="AugPaint: inpainting-based augmentation for few-label medical image segmentation, fast.",
    python_requires=">=3.10",
    packages=_PACKAGES,
    package_dir=_PACKAGE_DIRS,
    package_data={"augpaint_fast": ["assets/weights/tiny/*/*", "assets/*.png"]},
    install_requires=[
        "torch>=2.13",  # what CI runs (constraints.txt); older versions are untested
        "numpy>=1.24",
        "pillow>=9.0",
        "safetensors>=0.4",
        "tqdm>=4.60",
        "nibabel>=5.0",
        "scipy>=1.10",
    ],
    extras_require={
        "test": [
            "pytest>=7",
            "hypothesis>=6",
            "pytest-benchmark>=4",
            "onnx>=1.15",
            "onnxruntime>=1.17",
            "triton>=3.0; platform_system == 'Linux' and platform_machine == 'x86_64'",
            "matplotlib>=3.7",
            "openvino>=2024.0",
            "nncf>=2.10",  # the [int8] extra: the int8 U-Net tests
            "monai>=1.4",  # the [interop] extra's floor (MONAI's generative networks)
            # service and Ray tests (the [serve] and [distributed] extras, plus httpx as the HTTP client)
            "fastapi>=0.110", "uvicorn>=0.29", "python-multipart>=0.0.9", "prometheus-client>=0.17", "httpx>=0.27",
            "ray>=2.9",
            "diffusers>=0.30", "einops>=0.7",  # the [interop] extra: import-weights and the scheduler parity tests
        ],
        "seg": ["monai>=1.3", "matplotlib>=3.7"],  # train-seg, evaluate, filter, rand-aug (MONAI U-Net, losses, metrics, transforms)
        "serve": ["fastapi>=0.110", "uvicorn>=0.29", "python-multipart>=0.0.9",  # augpaint-fast serve
                  "prometheus-client>=0.17"],
        "distributed": ["ray>=2.9"],  # augpaint-fast sample --ray
        "onnx": ["onnx>=1.15", "onnxruntime>=1.17"],
        "trt": ["onnx>=1.15", "tensorrt"],
        "openvino": ["onnx>=1.15", "openvino>=2024.0"],
        "int8": ["onnx>=1.15", "openvino>=2024.0", "nncf>=2.10"],  # export --int8, --engine openvino --dtype int8
        "triton": ["triton>=3.0"],
        # augpaint-fast bench's plot; pytest-benchmark for benchmarks/ (make bench-compare)
        "bench": ["matplotlib>=3.7", "pytest>=7", "pytest-benchmark>=4"],
        # import-weights --from diffusers, and --from monai: MONAI >= 1.4's generative networks, whose attention
        # blocks need einops
        "interop": ["diffusers>=0.30", "monai>=1.4", "einops>=0.7"],
    },
    entry_points={"console_scripts": ["augpaint-fast=augpaint_fast.cli.main:main"]},
    ext_modules=_ext_modules,
    cmdclass=_cmdclass,
)
