"""A stand-in accelerator for CPU-only machines: tensors with CPU data that behave as if they lived on another
device, so device-placement bugs fail here the way they fail on a GPU.

Inside ``FakeDevice()`` (a ``TorchFunctionMode``), ``FAKE = torch.device("privateuseone")`` (a device type no
code here uses, and none is registered for) plays the accelerator:

- moving or creating a tensor on ``FAKE`` (``x.to(FAKE)``, ``torch.zeros(..., device=FAKE)``,
  ``torch.as_tensor(..., device=...)``) gives an ``OnFake`` tensor: real CPU data whose ``.device`` is ``FAKE``;
- an op mixing an ``OnFake`` tensor with a CPU tensor of one or more dimensions raises, as CUDA does ("Expected
  all tensors to be on the same device"); 0-dim CPU tensors mix freely (CUDA treats them as scalars), and
  ``copy_`` / indexing may cross, as on CUDA;
- ``.cpu()`` / ``.to("cpu")`` bring data back; ``.numpy()`` and ``.data_ptr()`` on an ``OnFake`` tensor raise
  (a CUDA tensor has no host buffer).

No fused kernel exists for that device type, so the dispatcher runs the reference step on it.
``FakeDeviceEngine`` wraps a CPU engine: its ``device`` is ``FAKE``, it refuses inputs that are not on it, and
it returns its outputs on it. Driven through the whole sampling job, it proves the job owns placement.
"""
from __future__ import annotations

import contextlib

import torch
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_flatten, tree_map

FAKE = torch.device("privateuseone")
_MIXING_OK = {torch.Tensor.copy_, torch.Tensor.__getitem__, torch.Tensor.__setitem__}


class OnFake(torch.Tensor):
    """CPU data on the stand-in device (see the module docstring)."""

    __torch_function__ = torch._C._disabled_torch_function_impl  # the mode does all the work

    @property
    def device(self) -> torch.device:  # type: ignore[override]
        return FAKE

    @property
    def is_cpu(self) -> bool:  # type: ignore[override]
        return False


def _is_fake_device(device) -> bool:
    return device is not None and torch.device(device) == FAKE


def _plain(x):
    return x.as_subclass(torch.Tensor) if isinstance(x, OnFake) else x


def _wrap(x):
    return x.as_subclass(OnFake) if isinstance(x, torch.Tensor) and not isinstance(x, OnFake) else x


class FakeDevice(TorchFunctionMode):
    """Make ``meta`` behave as an accelerator holding real data (see the module docstring)."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = dict(kwargs or {})
        if func is torch.Tensor.device.__get__:
            return FAKE if isinstance(args[0], OnFake) else func(*args)
        if func in (torch.Tensor.numpy, torch.Tensor.data_ptr) and isinstance(args[0], OnFake):
            raise TypeError(f"{func.__name__}() of a tensor on the (fake) accelerator: it has no host buffer; "
                            f"bring it to the host with .cpu() first")
        if func is torch.Tensor.cpu:
            return _plain(args[0]).clone() if isinstance(args[0], OnFake) else func(*args, **kwargs)
        if func is torch.Tensor.to:
            device, dtype, non_blocking, memory_format = torch._C._nn._parse_to(*args[1:], **kwargs)
            src = _plain(args[0])
            out = src.to(dtype=dtype or src.dtype, memory_format=memory_format or torch.preserve_format)
            if device is None:
                return _wrap(out) if isinstance(args[0], OnFake) else out
            if _is_fake_device(device):
                return _wrap(out.clone() if out is src else out)
            return out.clone() if (out is src and isinstance(args[0], OnFake)) else out
        create_on_fake = _is_fake_device(kwargs.get("device"))
        if create_on_fake:
            kwargs["device"] = "cpu"
        tensors = [t for t in tree_flatten((args, kwargs))[0] if isinstance(t, torch.Tensor)]
        fake = create_on_fake or any(isinstance(t, OnFake) for t in tensors)
        if fake and func not in _MIXING_OK:
            host = [t for t in tensors if not isinstance(t, OnFake) and t.dim() > 0]
            if host:
                raise RuntimeError(f"Expected all tensors to be on the same device, but found at least two "
                                   f"devices, privateuseone (fake accelerator) and cpu! ({getattr(func, '__name__', func)}, "
                                   f"host tensor of shape {tuple(host[0].shape)})")
        out = func(*tree_map(_plain, args), **tree_map(_plain, kwargs))
        return tree_map(_wrap, out) if fake else out


@contextlib.contextmanager
def host_only():
    """Suspend the fake device (e.g. while a wrapped CPU engine computes)."""
    with torch._C.DisableTorchFunction():
        yield


class FakeDeviceEngine:
    """A CPU engine seen through the fake accelerator: inputs must be on it, outputs are returned on it."""

    def __init__(self, inner):
        self.inner, self.name, self.device = inner, inner.name, FAKE

    def _call(self, fn, **inputs):
        for name, x in inputs.items():
            if x is not None and not isinstance(x, OnFake):
                raise RuntimeError(f"FakeDeviceEngine got {name} on {x.device}, not on the engine's device")
        with host_only():
            out = fn(**{k: _plain(v) for k, v in inputs.items()})
        return _wrap(out)

    def denoiser(self, z, t, cond=None):
        return self._call(self.inner.denoiser, z=z, t=t, cond=cond)

    def encode(self, x):
        return self._call(self.inner.encode, x=x)

    def decode(self, h):
        return self._call(self.inner.decode, h=h)
