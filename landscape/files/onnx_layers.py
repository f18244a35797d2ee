"""The ONNX interpreter's layers: linear maps, convolutions, normalisations, attention, pooling.

``Gemm``/``MatMul`` with a 2-D weight initializer become ``nn.Linear`` and ``Conv`` with
initializer weights ``nn.ConvNd`` (`weight_layer`), which the surface engine hoists like any
built-in layer; a ``Conv`` whose weights are computed (an ``Identity`` of a shared tensor, a
product), ``ConvTranspose`` and the normalisations are `Node`\\ s whose weights are inputs. A
convolution's bounds, from the shapes before it runs: its output, its multiply-adds
``output values * (C_in / groups) * prod(kernel)``, and the unfolded input one sample needs
(``output positions * (C_in / groups) * prod(kernel)``; for a transposed convolution the same
with input and output swapped), each at most the limits, whatever the file declares.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import cast

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from landscape.files.onnx_nodes import (
    Builder,
    Node,
    Tensor,
    broadcast_size,
    numel,
    refuse_size,
    refuse_unfolded,
    refuse_work,
    static,
)

_CONV: tuple[Callable[..., Tensor], ...] = (F.conv1d, F.conv2d, F.conv3d)
_CONV_TRANSPOSE: tuple[Callable[..., Tensor], ...] = (
    F.conv_transpose1d,
    F.conv_transpose2d,
    F.conv_transpose3d,
)


def conv_bounds(
    x_shape: Sequence[int],
    weight_shape: Sequence[int],
    geometry: dict,
    transposed: bool = False,
) -> tuple[int, int, int]:
    """``(output values, multiply-adds, unfolded values per sample)`` of a (transposed)
    convolution of an input (N, C_in, *spatial) by weights (C_out, C_in / g, *kernel) or, when
    ``transposed``, (C_in, C_out / g, *kernel); ``geometry``: strides, pads, dilations, groups,
    output_padding. ``ValueError`` when the shapes do not fit."""
    dims = len(weight_shape) - 2
    kernel = list(weight_shape[2:])
    if len(x_shape) != dims + 2:
        raise ValueError(f"model's convolution takes a {dims + 2}-D input, got {list(x_shape)}")
    groups = int(geometry["groups"])
    strides, dilations = geometry["strides"], geometry["dilations"]
    pads, extra = geometry["pads"], geometry.get("output_padding", [0] * dims)
    spatial = []
    for k in range(dims):
        reach = dilations[k] * (kernel[k] - 1) + 1
        size = int(x_shape[2 + k])
        if transposed:
            spatial.append((size - 1) * strides[k] - 2 * pads[k] + reach + extra[k])
        else:
            spatial.append((size + 2 * pads[k] - reach) // strides[k] + 1)
    if any(s < 1 for s in spatial):
        raise ValueError(f"model's convolution gives an empty output {spatial}")
    out_channels = weight_shape[1] * groups if transposed else weight_shape[0]
    per_output = (weight_shape[0] // groups if transposed else weight_shape[1]) * numel(kernel)
    output = int(x_shape[0]) * out_channels * numel(spatial)
    positions = numel(x_shape[2:]) if transposed else numel(spatial)
    if transposed:  # each input value meets C_out / g * prod(kernel) weights
        work = numel(x_shape) * weight_shape[1] * numel(kernel)
        unfolded = positions * weight_shape[1] * numel(kernel) * groups
    else:
        work = output * per_output
        unfolded = positions * per_output * groups
    return output, work, unfolded


def check_conv(
    what: str, bounds: tuple[int, int, int], max_elements: int, spent: int, max_work: int
) -> int:
    """A convolution's multiply-adds; ``ValueError`` when its output or unfolded input is past
    ``max_elements`` or its work brings the call's ``spent`` past ``max_work``."""
    output, work, unfolded = bounds
    refuse_size(what, output, max_elements)
    refuse_unfolded(what, unfolded, max_elements)
    refuse_work(what, work, spent, max_work)
    return work


def check_layer(
    layer: nn.Module, x: Tensor | None, max_elements: int, spent: int, max_work: int
) -> int:
    """The multiply-adds of an ``nn.Linear`` or ``nn.ConvNd`` layer on input ``x``, after
    checking its bounds (`check_conv`) before it runs."""
    if x is None:
        raise ValueError(f"model's {type(layer).__name__} layer has no input")
    what = f"{type(layer).__name__} layer"
    if isinstance(layer, nn.Linear):
        output = numel(x.shape[:-1]) * layer.out_features
        refuse_size(what, output, max_elements)
        refuse_work(what, output * layer.in_features, spent, max_work)
        return output * layer.in_features
    if not isinstance(layer, nn.Conv1d | nn.Conv2d | nn.Conv3d):
        return 0
    geometry = {
        "groups": layer.groups,
        "strides": layer.stride,
        "dilations": layer.dilation,
        "pads": cast(tuple[int, ...], layer.padding),
    }
    bounds = conv_bounds(x.shape, layer.weight.shape, geometry)
    return check_conv(what, bounds, max_elements, spent, max_work)


def _geometry(op: str, attrs: dict, dims: int) -> dict:
    """A convolution's strides, symmetric pads, dilations, groups and output padding; ``ValueError``
    for ``auto_pad`` other than NOTSET/VALID, asymmetric pads or an ``output_shape``."""
    if attrs.get("auto_pad", b"NOTSET") not in (b"NOTSET", b"VALID", "NOTSET", "VALID"):
        raise ValueError(f"model's {op} uses auto_pad SAME: export it with explicit pads")
    pads = [int(p) for p in attrs.get("pads", [0] * 2 * dims)]
    if len(pads) != 2 * dims or pads[:dims] != pads[dims:] or min(pads, default=0) < 0:
        raise ValueError(f"model's {op} has pads {pads}; symmetric, non-negative pads only")
    if "output_shape" in attrs:
        raise ValueError(f"model's {op} sets output_shape; export it with explicit pads")
    groups = int(attrs.get("group", 1))
    strides = [int(s) for s in attrs.get("strides", [1] * dims)]
    dilations = [int(d) for d in attrs.get("dilations", [1] * dims)]
    if min([*strides, *dilations, groups]) < 1 or len(strides) != dims or len(dilations) != dims:
        raise ValueError(f"model's {op} has strides, dilations or groups below 1 or of wrong rank")
    return {
        "strides": strides,
        "dilations": dilations,
        "pads": pads[:dims],
        "groups": groups,
        "output_padding": [int(p) for p in attrs.get("output_padding", [0] * dims)],
    }


def weight_layer(
    op: str, inputs: Sequence[str], attrs: dict, arrays: dict[str, np.ndarray]
) -> nn.Module | None:
    """``Gemm``/``MatMul`` with a 2-D weight initializer -> ``nn.Linear``; ``Conv`` with weight
    (and bias) initializers and symmetric pads -> ``nn.ConvNd``; None for any other node."""
    weight = static(inputs[1], arrays) if len(inputs) > 1 else None
    if weight is None or weight.dtype.kind != "f":
        return None
    bias = static(inputs[2], arrays) if len(inputs) > 2 else None
    has_bias = len(inputs) > 2 and bool(inputs[2])
    if has_bias and bias is None:
        return None
    if op == "MatMul" and weight.ndim == 2:
        linear = nn.Linear(weight.shape[0], weight.shape[1], bias=False)
        linear.weight.data = torch.as_tensor(weight.T.astype(np.float32)).contiguous()
        return linear
    if op == "Gemm" and weight.ndim == 2 and not attrs.get("transA", 0):
        return _gemm_linear(attrs, weight, bias)
    if op == "Conv" and 3 <= weight.ndim <= 5:
        pads = list(attrs.get("pads", []))
        half = len(pads) // 2
        if pads[:half] != pads[half:]:
            return None  # asymmetric pads: the generic node pads first
        return _conv_layer(attrs, weight, bias)
    return None


def _gemm_linear(attrs: dict, weight: np.ndarray, bias: np.ndarray | None) -> nn.Linear | None:
    alpha, beta = attrs.get("alpha", 1.0), attrs.get("beta", 1.0)
    W = weight if attrs.get("transB", 0) else weight.T
    if alpha != 1.0 or (bias is not None and (beta != 1.0 or bias.ndim > 1)):
        return None
    if bias is not None and bias.size not in (1, W.shape[0]):
        return None
    linear = nn.Linear(W.shape[1], W.shape[0], bias=bias is not None)
    linear.weight.data = torch.as_tensor(np.ascontiguousarray(W).astype(np.float32))
    if bias is not None:
        b = np.broadcast_to(bias, (W.shape[0],)).astype(np.float32)
        linear.bias.data = torch.as_tensor(b.copy())
    return linear


def _conv_layer(attrs: dict, weight: np.ndarray, bias: np.ndarray | None) -> nn.Module:
    dims = weight.ndim - 2
    geometry = _geometry("Conv", attrs, dims)
    groups = geometry["groups"]
    conv_class = (nn.Conv1d, nn.Conv2d, nn.Conv3d)[dims - 1]
    conv = conv_class(
        weight.shape[1] * groups,
        weight.shape[0],
        tuple(weight.shape[2:]),
        stride=tuple(geometry["strides"]),
        padding=tuple(geometry["pads"]),
        dilation=tuple(geometry["dilations"]),
        groups=groups,
        bias=bias is not None,
    )
    conv.weight.data = torch.as_tensor(weight.astype(np.float32))
    if bias is not None and conv.bias is not None:
        conv.bias.data = torch.as_tensor(bias.astype(np.float32))
    return conv


def _conv(op: str, attrs: dict, inputs: Sequence[str], arrays: dict, opset: int) -> Node:
    """``Conv`` or ``ConvTranspose`` whose weights are inputs, ``F.conv*``; asymmetric pads of a
    ``Conv`` are applied by ``F.pad`` first."""
    transposed = op == "ConvTranspose"
    kernel = attrs.get("kernel_shape")
    dims = len(kernel) if kernel else None
    pads = [int(p) for p in attrs.get("pads", [])]
    pre_pad: list[int] = []
    if not transposed and pads and pads[: len(pads) // 2] != pads[len(pads) // 2 :]:
        half = len(pads) // 2  # F.pad wants (last dim begin, end, ..., first dim begin, end)
        pre_pad = [p for k in reversed(range(half)) for p in (pads[k], pads[half + k])]
        attrs = {**attrs, "pads": [0] * len(pads)}

    def geometry_of(weight: Tensor) -> dict:
        return _geometry(op, attrs, dims or weight.dim() - 2)

    def conv(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
        g = geometry_of(weight)
        x = F.pad(x, pre_pad) if pre_pad else x
        if transposed:
            up = _CONV_TRANSPOSE[weight.dim() - 3]
            extra = g["output_padding"]
            return up(x, weight, bias, g["strides"], g["pads"], extra, g["groups"], g["dilations"])
        down = _CONV[weight.dim() - 3]
        return down(x, weight, bias, g["strides"], g["pads"], g["dilations"], g["groups"])

    def bounds(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> tuple[int, int, int]:
        shape = list(x.shape)
        for k in range(len(pre_pad) // 2):
            shape[-1 - k] += pre_pad[2 * k] + pre_pad[2 * k + 1]
        return conv_bounds(shape, weight.shape, geometry_of(weight), transposed)

    return Node(
        op, conv, lambda *a: bounds(*a)[0], lambda *a: bounds(*a)[1], lambda *a: bounds(*a)[2]
    )


def _batch_norm(op: str, attrs: dict, inputs: Sequence[str], arrays: dict, opset: int) -> Node:
    if attrs.get("training_mode", 0):
        raise ValueError("model's BatchNormalization is in training mode; export in eval()")
    eps = float(attrs.get("epsilon", 1e-5))

    def batch_norm(x: Tensor, scale: Tensor, bias: Tensor, mean: Tensor, var: Tensor) -> Tensor:
        return F.batch_norm(x, mean, var, scale, bias, training=False, eps=eps)

    return Node(op, batch_norm)


def _layer_norm(op: str, attrs: dict, inputs: Sequence[str], arrays: dict, opset: int) -> Node:
    """``LayerNormalization`` over the axes from ``axis`` on, then ``* scale + bias``."""
    axis, eps = int(attrs.get("axis", -1)), float(attrs.get("epsilon", 1e-5))

    def layer_norm(x: Tensor, scale: Tensor, bias: Tensor | None = None) -> Tensor:
        shape = x.shape[axis % x.dim() :]
        if scale.shape == shape and (bias is None or bias.shape == shape):
            return F.layer_norm(x, shape, scale, bias, eps)
        out = F.layer_norm(x, shape, None, None, eps) * scale
        return out if bias is None else out + bias

    return Node(op, layer_norm, broadcast_size)


def _per_channel(op: str, x: Tensor, scale: Tensor, bias: Tensor) -> None:
    """``ValueError`` unless ``scale`` and ``bias`` hold one value per channel of ``x``."""
    if x.dim() < 2 or scale.numel() != x.shape[1] or bias.numel() != x.shape[1]:
        raise ValueError(
            f"model's {op} needs one scale and bias per channel of its input "
            f"{list(x.shape)}, got {scale.numel()} and {bias.numel()}"
        )


def _instance_norm(op: str, attrs: dict, inputs: Sequence[str], arrays: dict, opset: int) -> Node:
    """``InstanceNormalization``: each (sample, channel) normalised over its positions,
    ``(x - mean) / sqrt(var + eps) * scale_c + B_c`` (biased variance)."""
    eps = float(attrs.get("epsilon", 1e-5))

    def instance_norm(x: Tensor, scale: Tensor, bias: Tensor) -> Tensor:
        _per_channel(op, x, scale, bias)
        dims = tuple(range(2, x.dim()))
        mean = x.mean(dim=dims, keepdim=True)
        var = (x - mean).square().mean(dim=dims, keepdim=True)
        channel = (1, -1) + (1,) * len(dims)
        return (x - mean) * torch.rsqrt(var + eps) * scale.reshape(channel) + bias.reshape(channel)

    return Node(op, instance_norm)


def _group_norm(op: str, attrs: dict, inputs: Sequence[str], arrays: dict, opset: int) -> Node:
    """``GroupNormalization``: the channels in ``num_groups`` groups, each (sample, group)
    normalised over its channels and positions, then ``* scale + bias`` per channel (opset 21)
    or per group (opset 18, a scale of ``num_groups`` values)."""
    groups, eps = int(attrs.get("num_groups", 0)), float(attrs.get("epsilon", 1e-5))
    if groups < 1:
        raise ValueError(f"model's GroupNormalization has num_groups {groups}; at least 1")

    def group_norm(x: Tensor, scale: Tensor, bias: Tensor) -> Tensor:
        channels = x.shape[1]
        if channels % groups:
            raise ValueError(f"model's GroupNormalization splits {channels} channels in {groups}")
        normalised = F.group_norm(x, groups, None, None, eps)
        if scale.numel() == groups and bias.numel() == groups and groups != channels:
            scale = scale.repeat_interleave(channels // groups)  # opset 18: one value per group
            bias = bias.repeat_interleave(channels // groups)
        _per_channel(op, x, scale, bias)
        shape = (1, channels) + (1,) * (x.dim() - 2)
        return normalised * scale.reshape(shape) + bias.reshape(shape)

    return Node(op, group_norm)


def _attention(op: str, attrs: dict, inputs: Sequence[str], arrays: dict, opset: int) -> Node:
    """``Attention`` (opset 23): ``softmax(Q K^T * scale + mask) V`` per head, queries
    (N, heads, L, E) or (N, L, heads E) with ``q_num_heads``; a boolean mask keeps the
    ``True`` places, a float mask is added, ``is_causal`` hides the future. Refused: past keys
    and values, ``softcap``, and outputs other than the first."""
    if any(inputs[4:]) or float(attrs.get("softcap", 0.0)) or attrs.get("qk_matmul_output_mode"):
        raise ValueError("model's Attention uses past keys, softcap or extra outputs: refused")
    causal, scale = bool(attrs.get("is_causal", 0)), attrs.get("scale")
    heads = (int(attrs.get("q_num_heads", 0)), int(attrs.get("kv_num_heads", 0)))

    def split(x: Tensor, count: int) -> Tensor:  # (N, L, heads E) -> (N, heads, L, E)
        return x.reshape(x.shape[0], x.shape[1], count, -1).transpose(1, 2) if count else x

    def attention(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None = None) -> Tensor:
        flat = q.dim() == 3
        q, k, v = split(q, heads[0] * flat), split(k, heads[1] * flat), split(v, heads[1] * flat)
        repeat = q.shape[1] // k.shape[1]  # grouped-query attention shares keys among heads
        k, v = k.repeat_interleave(repeat, dim=1), v.repeat_interleave(repeat, dim=1)
        factor = 1 / math.sqrt(q.shape[-1]) if scale is None else float(scale)
        scores = (q @ k.transpose(-2, -1)) * factor
        if mask is not None:
            scores = (
                scores.masked_fill(~mask, -math.inf) if mask.dtype == torch.bool else scores + mask
            )
        if causal:
            hidden = torch.ones(scores.shape[-2:], dtype=torch.bool, device=q.device).triu(1)
            scores = scores.masked_fill(hidden, -math.inf)
        out = torch.softmax(scores, dim=-1) @ v
        return out.transpose(1, 2).reshape(out.shape[0], out.shape[2], -1) if flat else out

    def head_shape(x: Tensor, count: int) -> tuple[int, ...]:  # (N, heads, L, E)
        if x.dim() == 4 or not count:
            return tuple(x.shape)
        return (x.shape[0], count, x.shape[1], x.shape[2] // count)

    def sizes(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None = None) -> list[int]:
        """Values of the repeated keys and values, the scores (broadcast with the mask) and
        the output, from the shapes alone."""
        qs, ks, vs = head_shape(q, heads[0]), head_shape(k, heads[1]), head_shape(v, heads[1])
        repeat = max(qs[1] // max(ks[1], 1), 1)
        scores = (qs[0], qs[1], qs[2], ks[2])
        if mask is not None:
            scores = tuple(torch.broadcast_shapes(scores, mask.shape))
        return [numel(ks) * repeat, numel(vs) * repeat, numel(scores), numel(scores[:-1]) * vs[-1]]

    def work(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None = None) -> int:
        scores = sizes(q, k, v, mask)[2]
        return scores * (head_shape(q, heads[0])[-1] + head_shape(v, heads[1])[-1])

    def size(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None = None) -> int:
        return max(sizes(q, k, v, mask))

    return Node(op, attention, size, work)


def _pool(op: str, attrs: dict, inputs: Sequence[str], arrays: dict, opset: int) -> Node:
    """``MaxPool``/``AveragePool``: bounded by ``output values * prod(kernel)`` comparisons."""
    kernel = [int(k) for k in attrs["kernel_shape"]]
    dims = len(kernel)
    geometry = _geometry(op, attrs, dims)
    strides, pads = geometry["strides"], geometry["pads"]
    ceil = bool(attrs.get("ceil_mode", 0))
    if op == "MaxPool":
        pool = (F.max_pool1d, F.max_pool2d, F.max_pool3d)[dims - 1]

        def run(x: Tensor) -> Tensor:
            return pool(x, kernel, strides, pads, geometry["dilations"], ceil_mode=ceil)
    else:
        average = (F.avg_pool1d, F.avg_pool2d, F.avg_pool3d)[dims - 1]
        include = bool(attrs.get("count_include_pad", 0))

        def run(x: Tensor) -> Tensor:
            return average(x, kernel, strides, pads, ceil, count_include_pad=include)

    def work(x: Tensor) -> int:
        spatial = [
            (int(s) + 2 * p - k) // st + 1 + int(ceil)
            for s, p, k, st in zip(x.shape[2:], pads, kernel, strides, strict=False)
        ]
        return numel(x.shape[:2]) * numel(spatial) * numel(kernel)

    return Node(op, run, None, work)


def _global_average_pool(
    op: str, attrs: dict, inputs: Sequence[str], arrays: dict, opset: int
) -> Node:
    return Node(op, lambda x: x.mean(dim=tuple(range(2, x.dim())), keepdim=True))


BUILDERS: dict[str, Builder] = {
    "Conv": _conv,
    "ConvTranspose": _conv,
    "BatchNormalization": _batch_norm,
    "LayerNormalization": _layer_norm,
    "InstanceNormalization": _instance_norm,
    "GroupNormalization": _group_norm,
    "Attention": _attention,
    "MaxPool": _pool,
    "AveragePool": _pool,
    "GlobalAveragePool": _global_average_pool,
}
