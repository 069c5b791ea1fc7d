"""The wire format of openpi's websocket policy protocol: msgpack with numpy arrays and scalars as maps.

An array travels as `{b"__ndarray__": True, b"data": raw bytes, b"dtype": dtype.str, b"shape": shape}`
and a numpy scalar as `{b"__npgeneric__": True, b"data": value, b"dtype": dtype.str}`. Object, void
and complex arrays are refused (nothing is ever pickled).
"""

from __future__ import annotations

from typing import Any

import msgpack
import numpy as np

_REFUSED_KINDS = ("O", "V", "c")


def _encode(obj: Any) -> Any:
    if isinstance(obj, (np.ndarray, np.generic)) and obj.dtype.kind in _REFUSED_KINDS:
        raise TypeError(f"cannot send numpy dtype {obj.dtype} over the policy protocol")
    if isinstance(obj, np.ndarray):
        array = np.ascontiguousarray(obj)
        return {b"__ndarray__": True, b"data": array.tobytes(), b"dtype": array.dtype.str, b"shape": array.shape}
    if isinstance(obj, np.generic):
        return {b"__npgeneric__": True, b"data": obj.item(), b"dtype": obj.dtype.str}
    raise TypeError(f"cannot send {type(obj).__name__} over the policy protocol")


def _decode(obj: dict) -> Any:
    if b"__ndarray__" in obj:
        dtype = np.dtype(obj[b"dtype"])
        if dtype.kind in _REFUSED_KINDS:
            raise ValueError(f"refusing numpy dtype {dtype} from the wire")
        return np.frombuffer(obj[b"data"], dtype=dtype).reshape(obj[b"shape"])
    if b"__npgeneric__" in obj:
        return np.dtype(obj[b"dtype"]).type(obj[b"data"])
    return obj


def pack(message: Any) -> bytes:
    """One binary frame's payload."""
    return msgpack.packb(message, default=_encode)


def unpack(payload: bytes) -> Any:
    """The message in one binary frame; raises ValueError on bytes that are not one."""
    try:
        return msgpack.unpackb(payload, object_hook=_decode)
    except (msgpack.UnpackException, ValueError, TypeError, KeyError) as exc:
        raise ValueError(f"not a msgpack message: {exc}") from None
