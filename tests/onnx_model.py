"""A tiny ONNX model written by hand (the `onnx` package is not a dependency): protobuf
encoded field by field from the ONNX schema (onnx.proto: ModelProto, GraphProto, NodeProto,
TensorProto, ValueInfoProto). The graph ignores its image's content and outputs fixed rows:

    X (1×3×H×W) -> GlobalAveragePool -> Flatten -> Gemm(W = 0, C = rows) -> Reshape(N, 5)
"""

from __future__ import annotations

import numpy as np

FLOAT, INT64 = 1, 7  # TensorProto.DataType


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _int(field: int, value: int) -> bytes:
    return _varint(field << 3) + _varint(value)


def _bytes(field: int, value: bytes | str) -> bytes:
    data = value.encode() if isinstance(value, str) else value
    return _varint(field << 3 | 2) + _varint(len(data)) + data


def _tensor(name: str, array: np.ndarray) -> bytes:
    kind = FLOAT if array.dtype == np.float32 else INT64
    dims = b"".join(_int(1, int(n)) for n in array.shape)
    return (
        dims
        + _int(2, kind)
        + _bytes(8, name)
        + _bytes(9, array.astype("<" + array.dtype.str[1:]).tobytes())
    )


def _value_info(name: str, shape: tuple[int, ...]) -> bytes:
    dims = b"".join(_bytes(1, _int(1, n)) for n in shape)
    tensor_type = _int(1, FLOAT) + _bytes(2, dims)
    return _bytes(1, name) + _bytes(2, _bytes(1, tensor_type))


def _node(op: str, inputs: list[str], outputs: list[str], **ints: int) -> bytes:
    body = b"".join(_bytes(1, i) for i in inputs) + b"".join(_bytes(2, o) for o in outputs)
    body += _bytes(3, f"{op}_{outputs[0]}") + _bytes(4, op)
    for name, value in ints.items():
        body += _bytes(5, _bytes(1, name) + _int(3, value) + _int(20, 2))  # type INT
    return body


def constant_detector(rows: np.ndarray, size: tuple[int, int]) -> bytes:
    """Bytes of an ONNX model whose input is 1×3×size[1]×size[0] and whose output is `rows`
    (N, 5): [x1, y1, x2, y2, score] in input pixels."""
    rows = np.asarray(rows, np.float32)
    n = rows.size
    nodes = [
        _node("GlobalAveragePool", ["X"], ["pooled"]),
        _node("Flatten", ["pooled"], ["flat"], axis=1),
        _node("Gemm", ["flat", "W", "C"], ["gemm"]),
        _node("Reshape", ["gemm", "shape"], ["Y"]),
    ]
    initializers = [
        _tensor("W", np.zeros((3, n), np.float32)),
        _tensor("C", rows.reshape(n)),
        _tensor("shape", np.array(rows.shape, np.int64)),
    ]
    graph = b"".join(_bytes(1, node) for node in nodes) + _bytes(2, "constant_detector")
    graph += b"".join(_bytes(5, t) for t in initializers)
    graph += _bytes(11, _value_info("X", (1, 3, size[1], size[0])))
    graph += _bytes(12, _value_info("Y", rows.shape))
    opset = _bytes(1, "") + _int(2, 11)
    return _int(1, 7) + _bytes(2, "vad-tests") + _bytes(7, graph) + _bytes(8, opset)
