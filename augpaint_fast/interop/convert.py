"""Tensor-by-tensor conversion of a foreign state dict onto one of the project's models.

A conversion is a list of ``(kind, source prefix, target prefix)`` rules; each rule moves the tensors under its
source prefix to the target's names (and layouts). ``apply_rules`` then checks the result against the target
model: every target tensor filled with its exact shape, and every source tensor used (zero unconverted
tensors), so a model that only looks alike is never imported half-converted.

Kinds:
- ``"copy"``: ``<src>.<rest>`` -> ``<dst>.<rest>`` unchanged (convolutions, norms, linears, embeddings).
- ``"res"``: a diffusers/MONAI ResnetBlock -> ``layers.ResnetBlock`` (``time_emb_proj`` -> ``temb_proj``,
  ``conv_shortcut`` -> ``shortcut``, the rest by name).
- ``"attn"``: a diffusers ``Attention`` (``group_norm``, ``to_q``/``to_k``/``to_v``/``to_out.0`` linears) ->
  ``layers.AttnBlock``: the three projections become one 1x1 ``qkv`` convolution laid out per head as (q, k, v)
  (heads = channels // ``head_dim``), ``to_out.0`` becomes the 1x1 ``proj_out``.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

RES_NAMES = {"norm1": "norm1", "conv1": "conv1", "time_emb_proj": "temb_proj", "norm2": "norm2",
             "conv2": "conv2", "conv_shortcut": "shortcut"}


class Unmappable(Exception):
    """The foreign model does not map onto the project's architecture (the message says why, in one line)."""


@dataclass(frozen=True)
class Rule:
    kind: str  # "copy", "res" or "attn"
    src: str
    dst: str
    head_dim: int = 0  # "attn" only


def _under(state: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """{rest: tensor} for the keys ``prefix.rest``."""
    cut = len(prefix) + 1
    return {k[cut:]: v for k, v in state.items() if k.startswith(prefix + ".")}


def _attn(src: dict[str, torch.Tensor], head_dim: int, where: str) -> dict[str, torch.Tensor]:
    channels = src["to_q.weight"].shape[0]
    if channels % head_dim:
        raise Unmappable(f"{where}: {channels} channels do not split into heads of {head_dim}")
    heads = channels // head_dim

    def per_head(name: str) -> torch.Tensor:  # [3C, ...] ordered head by head as (q, k, v)
        parts = [src[f"to_{p}.{name}"].reshape(heads, head_dim, *src[f"to_{p}.{name}"].shape[1:]) for p in "qkv"]
        return torch.stack(parts, dim=1).reshape(3 * channels, *parts[0].shape[2:])

    return {"norm.weight": src["group_norm.weight"], "norm.bias": src["group_norm.bias"],
            "qkv.weight": per_head("weight")[:, :, None, None], "qkv.bias": per_head("bias"),
            "proj_out.weight": src["to_out.0.weight"][:, :, None, None], "proj_out.bias": src["to_out.0.bias"]}


def _convert(rule: Rule, src: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    if rule.kind == "copy":
        return dict(src)
    if rule.kind == "res":
        out = {}
        for rest, tensor in src.items():
            module, _, param = rest.partition(".")
            if module not in RES_NAMES:
                raise Unmappable(f"{rule.src}: unknown ResnetBlock tensor {rest}")
            out[f"{RES_NAMES[module]}.{param}"] = tensor
        return out
    if rule.kind == "attn":
        return _attn(src, rule.head_dim, rule.src)
    raise ValueError(f"unknown rule kind {rule.kind!r}")


def apply_rules(state: dict[str, torch.Tensor], rules: list[Rule],
                target: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Convert ``state`` with ``rules`` into a state dict for a model whose ``state_dict()`` is ``target``
    (only names and shapes are read). Raises Unmappable naming the first tensor left over, missing or
    mis-shaped."""
    out: dict[str, torch.Tensor] = {}
    used: set[str] = set()
    for rule in rules:
        src = _under(state, rule.src)
        if not src:
            raise Unmappable(f"no tensors under {rule.src}")
        used.update(f"{rule.src}.{rest}" for rest in src)
        for rest, tensor in _convert(rule, src).items():
            out[f"{rule.dst}.{rest}"] = tensor.detach().to(torch.float32).contiguous()
    left = sorted(set(state) - used)
    if left:
        raise Unmappable(f"{len(left)} tensor(s) have no counterpart, e.g. {left[0]}")
    missing = sorted(set(target) - set(out))
    if missing:
        raise Unmappable(f"nothing converts to {missing[0]}")
    extra = sorted(set(out) - set(target))
    if extra:
        raise Unmappable(f"converted tensor {extra[0]} has no place in the model")
    for name, tensor in out.items():
        if tuple(tensor.shape) != tuple(target[name].shape):
            raise Unmappable(f"{name}: shape {list(tensor.shape)} where the model has {list(target[name].shape)}")
    return out
