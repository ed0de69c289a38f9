"""A stand-in for the ``tensorrt`` module, on the CPU: enough of its runtime API for the trt engine's runner.

A "plan" file holds the name of a torch module registered here with ``register_plan``. Contexts read their
inputs from, and write their output to, the raw addresses the runner binds (``set_tensor_address``), through
ctypes: the runner's binding, padding, dtype table and context memory are exercised as with TensorRT, the
arithmetic is the torch module's. ``set_device_memory`` records the scratch each context was given.
"""
from __future__ import annotations

import ctypes
import types

import numpy as np
import torch

float32, float16, int32, int64 = "float32", "float16", "int32", "int64"
_NP = {float32: np.float32, float16: np.float16, int32: np.int32, int64: np.int64}
_TORCH = {torch.float32: float32, torch.float16: float16, torch.int32: int32, torch.int64: int64}
_PLANS: dict[str, tuple] = {}
__version__ = "10.0-fake"
ExecutionContextAllocationStrategy = types.SimpleNamespace(USER_MANAGED="user-managed", STATIC="static")


def register_plan(name: str, module, spec) -> bytes:
    _PLANS[name] = (module, spec)
    return name.encode()


class Logger:
    WARNING = 2

    def __init__(self, level):
        self.level = level


class Runtime:
    def __init__(self, logger):
        self.logger = logger

    def deserialize_cuda_engine(self, data: bytes):
        module, spec = _PLANS[data.decode()]
        return Engine(module, spec)


class Engine:
    device_memory_size_v2 = 1 << 16

    def __init__(self, module, spec):
        self.module, self.spec = module, spec

    def get_tensor_dtype(self, name):
        if name in self.spec.input_shapes:
            return _TORCH[self.spec.input_shapes[name][0]]
        return float32

    def create_execution_context(self, strategy=None):
        if strategy != ExecutionContextAllocationStrategy.USER_MANAGED:
            raise AssertionError("the runner must give contexts the shared scratch (USER_MANAGED)")
        return Context(self)


def _view(ptr: int, dtype, shape) -> np.ndarray:
    n = int(np.prod(shape)) * np.dtype(dtype).itemsize
    return np.frombuffer((ctypes.c_char * n).from_address(ptr), dtype=dtype).reshape(shape)


class Context:
    def __init__(self, engine):
        self.engine, self.shapes, self.addresses, self.device_memory = engine, {}, {}, None

    def set_device_memory(self, ptr, size):
        self.device_memory = (ptr, size)

    def set_input_shape(self, name, shape):
        self.shapes[name] = tuple(shape)

    def set_tensor_address(self, name, ptr):
        self.addresses[name] = ptr

    def get_tensor_shape(self, name):
        spec = self.engine.spec
        inputs = [torch.zeros(self.shapes[n], dtype=spec.input_shapes[n][0]) for n in spec.input_names]
        with torch.no_grad():
            return tuple(self.engine.module(*inputs).shape)

    def execute_async_v3(self, stream):
        spec = self.engine.spec
        assert self.device_memory is not None, "context run without device memory"
        inputs = [torch.from_numpy(_view(self.addresses[n], _NP[_TORCH[spec.input_shapes[n][0]]], self.shapes[n]).copy())
                  for n in spec.input_names]
        with torch.no_grad():
            out = self.engine.module(*inputs).float().numpy()
        _view(self.addresses[spec.output_names[0]], np.float32, out.shape)[...] = out
        return True
