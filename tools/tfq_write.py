#!/usr/bin/env python3
"""A small writer of `.tfq` files (formats/tfq.md) holding raw f32 tensors, for tests and tools.

    import tfq_write
    tfq_write.write("case.tfq", [("tok_emb", w), ("out.loss", np.float32(2.1))],
                    {"config": {...}})

It lays the file out as tfq's own streaming writer does, so for raw f32 tensors the bytes are
the same: the 64-byte header, each tensor at the next multiple of 64 with zero padding before
it, the metadata (compact JSON, keys in the dict's order) right after the last tensor, the
directory right after the metadata. "§N" refers to a section of formats/tfq.md.
"""
from __future__ import annotations

import json
import os
import struct
import zlib

import numpy as np

MAGIC = b"\x89TFQ\r\n\x1a\n"
HEADER = struct.Struct("<8sHHIQQQQQII")   # §3
ENTRY_CODES = struct.Struct("<BBBBI")     # §5: dtype, encoding, layout, rank, group_size
ENTRY_TAIL = struct.Struct("<QQQI")       # §5: offset, stored_length, decoded_length, crc32
VERSION = (1, 5)
F32, RAW, ROW_MAJOR = 1, 0, 0             # §6.1, §6.3, §6.2 codes
MAX_NAME, MAX_RANK = 1024, 8


def align64(n: int) -> int:
    return (n + 63) // 64 * 64


def encode(tensors, metadata=None) -> bytes:
    """The bytes of a .tfq file holding `tensors`, a sequence of (name, array) pairs stored
    in that order as raw f32 (arrays of another real dtype are converted to float32), and
    `metadata`, a JSON object (a dict; None means {})."""
    body = bytearray(HEADER.size)  # the header is filled in last
    directory = bytearray()
    names: set[str] = set()
    for name, array in tensors:
        name_bytes = name.encode("utf-8")
        if not 1 <= len(name_bytes) <= MAX_NAME or b"\0" in name_bytes:
            raise ValueError(f"tensor name {name!r}: must be 1 to {MAX_NAME} bytes without NUL")
        if name in names:
            raise ValueError(f"tensor name {name!r} is used twice")
        names.add(name)
        a = np.asarray(array)
        if a.ndim > MAX_RANK or a.size == 0:
            raise ValueError(f"tensor {name!r}: shape {a.shape} needs rank <= 8 and every dim >= 1")
        data = np.ascontiguousarray(a, dtype="<f4").tobytes()  # row-major, §6.1
        body += bytes(align64(len(body)) - len(body))
        offset = len(body)
        body += data
        directory += struct.pack("<H", len(name_bytes)) + name_bytes
        directory += ENTRY_CODES.pack(F32, RAW, ROW_MAJOR, a.ndim, 0)
        directory += struct.pack(f"<{a.ndim}Q", *a.shape)
        directory += ENTRY_TAIL.pack(offset, len(data), len(data), zlib.crc32(data))
    if not isinstance(metadata, (dict, type(None))):
        raise ValueError("metadata must be a JSON object (a dict)")
    meta = json.dumps({} if metadata is None else metadata, separators=(",", ":"),
                      ensure_ascii=False, allow_nan=False).encode("utf-8")
    metadata_offset = len(body)
    directory_offset = metadata_offset + len(meta)
    file_length = directory_offset + len(directory)
    index_crc = zlib.crc32(bytes(directory), zlib.crc32(meta))
    header = HEADER.pack(MAGIC, *VERSION, len(names), file_length, metadata_offset, len(meta),
                         directory_offset, len(directory), index_crc, 0)
    header = header[:60] + struct.pack("<I", zlib.crc32(header[:60]))
    body[:HEADER.size] = header
    return bytes(body + meta + directory)


def write(path, tensors, metadata=None) -> None:
    """Writes encode(tensors, metadata) to `path`, atomically (a temporary file renamed)."""
    data = encode(tensors, metadata)
    tmp = f"{path}.tmp-{os.getpid()}"
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
