"""The ONNX interpreter's recurrent operators, ``LSTM`` and ``GRU``, written out step by step.

Each time step is a few matrix products and elementwise gates in plain torch operations, so
that ``vmap`` batches them over grid points (it has no batching rule for ``aten::lstm``) and
forward hooks see the node's outputs. ONNX's layouts: ``X`` (T, N, I) (``layout=1``: (N, T, I)),
weights ``W`` (D, G H, I), ``R`` (D, G H, H), biases ``B`` (D, 2 G H) with ``G = 4`` gates
``i, o, f, c`` for the LSTM and ``G = 3`` gates ``z, r, h`` for the GRU, ``D`` directions.
Outputs ``Y`` (T, D, N, H), ``Y_h`` (D, N, H) and, for the LSTM, ``Y_c`` (D, N, H). Refused:
``sequence_lens``, peepholes, ``clip``, ``input_forget`` and activations other than the default.
The bounds: ``T N D G H (I + H)`` multiply-adds, outputs of ``T N D H`` values.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from landscape.files.onnx_nodes import Builder, Node, Tensor, numel

_DEFAULT_ACTIVATIONS = {"LSTM": ["Sigmoid", "Tanh", "Tanh"], "GRU": ["Sigmoid", "Tanh"]}


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _check_attributes(op: str, attrs: dict, inputs: Sequence[str]) -> None:
    """``ValueError`` for the parts of the ONNX recurrent operators the interpreter refuses."""
    optional = {"LSTM": {4: "sequence_lens", 7: "peepholes P"}, "GRU": {4: "sequence_lens"}}[op]
    for index, what in optional.items():
        if len(inputs) > index and inputs[index]:
            raise ValueError(f"model's {op} uses {what}, which is refused")
    if "clip" in attrs or attrs.get("input_forget", 0):
        raise ValueError(f"model's {op} uses clip or input_forget, which are refused")
    activations = [_text(a) for a in attrs.get("activations", [])]
    directions = 2 if _text(attrs.get("direction", "forward")) == "bidirectional" else 1
    if activations and activations != _DEFAULT_ACTIVATIONS[op] * directions:
        raise ValueError(f"model's {op} uses the activations {activations}; defaults only")


def _steps(direction: str, d: int, length: int) -> range:
    backwards = direction == "reverse" or (direction == "bidirectional" and d == 1)
    return range(length - 1, -1, -1) if backwards else range(length)


def _lstm_direction(
    projected: Tensor, R: Tensor, h: Tensor, c: Tensor, steps: range
) -> tuple[Tensor, Tensor, Tensor]:
    """One direction: ``projected`` (T, N, 4H) = ``X W^T + Wb + Rb``; gates ``i, o, f, c``."""
    outputs: list[Tensor] = [h] * projected.shape[0]
    for t in steps:
        i, o, f, g = (projected[t] + h @ R.T).chunk(4, dim=-1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        outputs[t] = h
    return torch.stack(outputs), h, c


def _gru_direction(
    X: Tensor, W: Tensor, R: Tensor, B: Tensor, h: Tensor, steps: range, before_reset: bool
) -> tuple[Tensor, Tensor]:
    """One direction with gates ``z, r, h``: ``h_t = (1 - z) * h~ + z * h_{t-1}``."""
    hidden = R.shape[-1]
    Wb, Rb = B[: 3 * hidden], B[3 * hidden :]
    projected = X @ W.T + Wb  # (T, N, 3H)
    Rz, Rh = R[: 2 * hidden], R[2 * hidden :]
    outputs: list[Tensor] = [h] * X.shape[0]
    for t in steps:
        xz, xr, xh = projected[t].chunk(3, dim=-1)
        hz, hr = (h @ Rz.T + Rb[: 2 * hidden]).chunk(2, dim=-1)
        z, r = torch.sigmoid(xz + hz), torch.sigmoid(xr + hr)
        if before_reset:
            candidate = torch.tanh(xh + r * (h @ Rh.T + Rb[2 * hidden :]))
        else:
            candidate = torch.tanh(xh + (r * h) @ Rh.T + Rb[2 * hidden :])
        h = (1 - z) * candidate + z * h
        outputs[t] = h
    return torch.stack(outputs), h


def _recurrent(op: str, attrs: dict, inputs: Sequence[str], arrays: dict, opset: int) -> Node:
    """The `Node` of an ``LSTM`` or ``GRU``: outputs ``(Y, Y_h)`` or ``(Y, Y_h, Y_c)``."""
    _check_attributes(op, attrs, inputs)
    direction = _text(attrs.get("direction", "forward"))
    batch_first = bool(attrs.get("layout", 0))
    before_reset = bool(attrs.get("linear_before_reset", 0))
    gates = 4 if op == "LSTM" else 3

    def run(
        X: Tensor,
        W: Tensor,
        R: Tensor,
        B: Tensor | None = None,
        _lens=None,
        h0=None,
        c0=None,
        _p=None,
    ):
        X = X.transpose(0, 1) if batch_first else X
        hidden, batch = R.shape[-1], X.shape[1]
        if B is None:
            B = X.new_zeros(W.shape[0], 2 * gates * hidden)
        zeros = X.new_zeros(W.shape[0], batch, hidden)
        h0 = zeros if h0 is None else (h0.transpose(0, 1) if batch_first else h0)
        c0 = zeros if c0 is None else (c0.transpose(0, 1) if batch_first else c0)
        if h0.shape != zeros.shape or c0.shape != zeros.shape:
            raise ValueError(f"model's {op} initial states must be of shape {list(zeros.shape)}")
        ys, hs, cs = [], [], []
        for d in range(W.shape[0]):
            steps = _steps(direction, d, X.shape[0])
            if op == "LSTM":
                projected = X @ W[d].T + B[d, : 4 * hidden] + B[d, 4 * hidden :]
                y, h, c = _lstm_direction(projected, R[d], h0[d], c0[d], steps)
                cs.append(c)
            else:
                y, h = _gru_direction(X, W[d], R[d], B[d], h0[d], steps, before_reset)
            ys.append(y)
            hs.append(h)
        Y, Y_h = torch.stack(ys, dim=1), torch.stack(hs)  # (T, D, N, H), (D, N, H)
        if batch_first:
            Y, Y_h = Y.permute(2, 0, 1, 3), Y_h.transpose(0, 1)
        if op == "GRU":
            return Y, Y_h
        Y_c = torch.stack(cs)
        return Y, Y_h, Y_c.transpose(0, 1) if batch_first else Y_c

    def size(X: Tensor, W: Tensor, R: Tensor, *_: Tensor | None) -> int:
        return numel(X.shape[:2]) * W.shape[0] * R.shape[-1]

    def work(X: Tensor, W: Tensor, R: Tensor, *_: Tensor | None) -> int:
        return size(X, W, R) * gates * (X.shape[-1] + R.shape[-1])

    return Node(op, run, size, work)


BUILDERS: dict[str, Builder] = {"LSTM": _recurrent, "GRU": _recurrent}
OUTPUTS = {"LSTM": 3, "GRU": 2}  # outputs a node of these operators may name
