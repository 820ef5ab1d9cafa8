#!/usr/bin/env python3
"""An independent reader for the `.tfq` model file format, version 1.x.

Written from the specification formats/tfq.md alone, as a cross-check of tfq's own reader;
"§N" in comments refers to a section of that document. Needs Python 3.11 and numpy. zstd
tensors are walked frame by frame first (§6.3: data frames only, whole, no dictionary, window
at most 2^27), then each frame is decoded with the `zstandard` module if it is installed,
else with the `zstd` command-line tool.

    import tfq_read
    with tfq_read.read("model.tfq") as f:     # checks every invariant of §7, in order
        f.verify()                             # tensor CRCs, full decode, q8/q8f16 value checks
        w = f.tensor("blocks.0.ffn.up.weight") # float32 numpy array of the tensor's shape

Command line:  tfq_read.py FILE [--json | --verify]
"""
from __future__ import annotations

import argparse
import json
import unicodedata
import math
import mmap
import os
import shutil
import struct
import subprocess
import sys
import threading
import zlib
from collections import namedtuple
from dataclasses import dataclass

import numpy as np

MAGIC = b"\x89TFQ\r\n\x1a\n"
HEADER = struct.Struct("<8sHHIQQQQQII")  # §3, 64 bytes
ENTRY_CODES = struct.Struct("<BBBBI")     # §5: dtype, encoding, layout, rank, group_size
ENTRY_TAIL = struct.Struct("<QQQI")       # §5: offset, stored_length, decoded_length, crc32
U64_END = 1 << 64                         # every u64 quantity must stay below this (§6.4)
MIB = 1 << 20
MAX_TENSORS = 1_000_000
MAX_METADATA_LENGTH = 16 * MIB      # §3
MAX_METADATA_VALUES = 1_000_000     # §7 check 7
MAX_NAME = 1024
MAX_RANK = 8
SUPPORTED_MAJOR = 1

# §7 lets a reader bound what it allocates for a zstd tensor. Raw tensors need no bound:
# their bytes are already in the file.
MAX_ZSTD_DECODED = 1 << 34

DTYPES = {1: ("f32", 4), 2: ("f16", 2), 3: ("q8", 1), 4: ("q8f16", 1)}  # code: (name, element size), §6.1
DTYPES_BY_NAME = {name: size for name, size in DTYPES.values()}
# §6.2: the int8 dtypes and their scales' numpy type; its size is the z of §6.2 and §6.4.
# "q8" in the spec (and in this module's names) stands for both, outside §6.2's formulas.
Q8_SCALES = {"q8": np.dtype("<f4"), "q8f16": np.dtype("<f2")}
ENCODINGS = {0: "raw", 1: "zstd", 2: "zstd-planes"}     # §6.3
LAYOUTS = {0: "row-major", 1: "interleaved-16x4"}        # §6.2


class TFQFormatError(Exception):
    """The file is not a valid .tfq file; the message names the file, the field, the problem."""


def _err(path, subject: str, problem: str) -> TFQFormatError:
    return TFQFormatError(f"{path}: {subject}: {problem}")


def align64(n: int) -> int:
    return (n + 63) // 64 * 64


# §3's fields, in file order.
Header = namedtuple("Header", "magic version_major version_minor tensor_count file_length "
                    "metadata_offset metadata_length directory_offset directory_length "
                    "index_crc32 header_crc32")

# A directory entry as parsed (§5), before any of its fields is trusted.
_RawEntry = namedtuple("_RawEntry", "index name dtype encoding layout rank group_size dims "
                       "offset stored_length decoded_length crc32")


@dataclass(frozen=True)
class Entry:
    """One checked directory entry (§5)."""
    name: str
    dtype: str
    encoding: str
    layout: int
    rank: int
    group_size: int
    shape: tuple[int, ...]
    offset: int
    stored_length: int
    decoded_length: int
    crc32: int

    @property
    def dims(self) -> tuple[int, ...]:
        return self.shape

    @property
    def layout_name(self) -> str:
        return LAYOUTS[self.layout]


def q8_geometry(dims: tuple[int, ...], group_size: int) -> tuple[int, int, int, int]:
    """§6.2: (rows, cols, G, R). cols is the last dim (the reduction dimension), rows the
    product of the others, G the groups per row, R the rows padded to a multiple of 16."""
    rows, cols = math.prod(dims[:-1]), dims[-1]
    return rows, cols, cols // group_size, 16 * -(-rows // 16)


# ---------------------------------------------------------------- §7 checks 1-6: header

def _check_header(path, buf) -> Header:
    if len(buf) < HEADER.size:
        raise _err(path, "file", f"{len(buf)} bytes, shorter than the 64-byte header")
    h = Header(*HEADER.unpack_from(buf, 0))
    if h.magic != MAGIC:
        raise _err(path, "header field magic", f"{h.magic!r} is not {MAGIC!r}")
    crc = zlib.crc32(buf[:60])
    if crc != h.header_crc32:
        raise _err(path, "header field header_crc32",
                   f"stored {h.header_crc32:#010x}, computed {crc:#010x}")
    if h.version_major != SUPPORTED_MAJOR:
        raise _err(path, "header field version_major",
                   f"version {h.version_major}.{h.version_minor}; this reader reads 1.x only")
    if h.file_length != len(buf):
        raise _err(path, "header field file_length",
                   f"says {h.file_length} bytes, the file has {len(buf)}")
    _check_blocks(path, h)
    return h


def _check_blocks(path, h: Header) -> None:
    """§7 check 5: where the metadata and directory blocks lie, and the count limits."""
    blocks = (("metadata", h.metadata_offset, h.metadata_length),
              ("directory", h.directory_offset, h.directory_length))
    for block, offset, length in blocks:
        if offset + length >= U64_END:
            raise _err(path, f"header field {block}_offset",
                       f"{block}_offset + {block}_length overflows 64 bits")
        if offset + length > h.file_length:
            raise _err(path, f"header field {block}_offset",
                       f"{block} block [{offset}, {offset + length}) ends past the file "
                       f"({h.file_length} bytes)")
        if offset < HEADER.size:
            raise _err(path, f"header field {block}_offset", f"{offset} is inside the header")
    if _overlap(h.metadata_offset, h.metadata_length, h.directory_offset, h.directory_length):
        raise _err(path, "header field directory_offset",
                   "the directory block overlaps the metadata block")
    if not 2 <= h.metadata_length <= MAX_METADATA_LENGTH:
        raise _err(path, "header field metadata_length",
                   f"{h.metadata_length} is outside 2 .. 16 MiB")
    if h.directory_length > 256 * MIB:
        raise _err(path, "header field directory_length",
                   f"{h.directory_length} is over 256 MiB")
    if h.tensor_count > MAX_TENSORS:
        raise _err(path, "header field tensor_count", f"{h.tensor_count} is over {MAX_TENSORS}")


def _overlap(a_start: int, a_len: int, b_start: int, b_len: int) -> bool:
    # Half-open ranges; an empty range (a directory of zero tensors) overlaps nothing.
    return a_len > 0 and b_len > 0 and a_start < b_start + b_len and b_start < a_start + a_len


def _check_index_crc(path, h: Header, metadata: bytes, directory: bytes) -> None:
    crc = zlib.crc32(directory, zlib.crc32(metadata))  # one running CRC over both blocks
    if crc != h.index_crc32:
        raise _err(path, "header field index_crc32",
                   f"stored {h.index_crc32:#010x}, computed {crc:#010x} over metadata + directory")


# ---------------------------------------------------------------- §7 check 7: metadata

def _parse_metadata(path, data: bytes) -> dict:
    def reject_constant(name):  # NaN, Infinity: accepted by Python's json, not by RFC 8259
        raise ValueError(f"{name} is not JSON")

    def unique_keys(pairs):  # RFC 8259 leaves duplicate keys undefined; refuse them
        obj = dict(pairs)
        if len(obj) != len(pairs):
            raise ValueError("duplicate object key")
        return obj

    try:
        text = data.decode("utf-8")
        value = json.loads(text, parse_constant=reject_constant, object_pairs_hook=unique_keys)
    except UnicodeDecodeError as exc:
        problem = f"not valid UTF-8 ({exc.reason} at byte {exc.start})"
        raise _err(path, "metadata", problem) from None
    except (ValueError, RecursionError) as exc:  # JSONDecodeError is a ValueError
        raise _err(path, "metadata", f"not valid JSON ({exc})") from None
    if not isinstance(value, dict):
        raise _err(path, "metadata", f"is a JSON {type(value).__name__}, not an object")
    if _count_values(value) > MAX_METADATA_VALUES:
        raise _err(path, "metadata", f"holds more than {MAX_METADATA_VALUES} JSON values")
    return value


def _count_values(value) -> int:
    """§7 check 7: every number, string, literal, array and object counts one."""
    count, stack = 0, [value]
    while stack:
        v = stack.pop()
        count += 1
        if isinstance(v, dict):
            stack.extend(v.values())
        elif isinstance(v, list):
            stack.extend(v)
    return count


# ---------------------------------------------------------------- §7 check 8: directory

class _Cursor:
    """Reads the directory front to back, checking that each field is there before reading it."""

    def __init__(self, path, data: bytes):
        self.path, self.data, self.pos = path, data, 0

    def take(self, n: int, entry: int, field: str) -> bytes:
        if self.pos + n > len(self.data):
            raise _err(self.path, f"directory entry {entry}",
                       f"{field} runs past the end of the directory ({len(self.data)} bytes)")
        self.pos += n
        return self.data[self.pos - n:self.pos]


def _parse_directory(path, data: bytes, count: int) -> list[_RawEntry]:
    cur, entries = _Cursor(path, data), []
    for i in range(count):
        (name_length,) = struct.unpack("<H", cur.take(2, i, "name_length"))
        name = cur.take(name_length, i, "name")
        dtype, encoding, layout, rank, group = ENTRY_CODES.unpack(
            cur.take(ENTRY_CODES.size, i, "dtype/encoding/layout/rank/group_size"))
        dims = struct.unpack(f"<{rank}Q", cur.take(8 * rank, i, "dims"))
        offset, stored, decoded, crc = ENTRY_TAIL.unpack(
            cur.take(ENTRY_TAIL.size, i, "offset/stored_length/decoded_length/crc32"))
        entries.append(_RawEntry(i, name, dtype, encoding, layout, rank, group, dims,
                                 offset, stored, decoded, crc))
    if cur.pos != len(data):
        raise _err(path, "header field directory_length",
                   f"{len(data) - cur.pos} bytes are left after the {count} entries")
    return entries


# ---------------------------------------------------------------- §7 check 9: each entry

def _check_entry(path, r: _RawEntry, seen: dict, file_length: int) -> Entry:
    name = _check_name(path, r, seen)
    where = f"tensor {name!r}"
    if r.dtype not in DTYPES:
        raise _err(path, where, f"unknown dtype code {r.dtype}")
    if r.encoding not in ENCODINGS:
        raise _err(path, where, f"unknown encoding code {r.encoding}")
    if r.layout not in LAYOUTS:
        raise _err(path, where, f"unknown layout code {r.layout}")
    dtype, encoding = DTYPES[r.dtype][0], ENCODINGS[r.encoding]
    if r.layout != 0 and dtype not in Q8_SCALES:
        raise _err(path, where, f"layout {r.layout} is only for q8 and q8f16, not {dtype}")
    if encoding == "zstd-planes" and dtype in Q8_SCALES:
        raise _err(path, where, f"encoding zstd-planes is only for f32 and f16, not {dtype}")
    if r.rank > MAX_RANK:
        raise _err(path, where, f"rank {r.rank} is over {MAX_RANK}")
    if any(d < 1 for d in r.dims):
        raise _err(path, where, f"dims {list(r.dims)} has a dimension < 1")
    _check_group(path, where, dtype, r)
    expected = _decoded_length(dtype, r.layout, r.dims, r.group_size)
    if expected >= U64_END:
        raise _err(path, where, "decoded_length overflows 64 bits")
    if r.decoded_length != expected:
        raise _err(path, where, f"decoded_length is {r.decoded_length}, must be {expected}")
    _check_placement(path, where, encoding, r, file_length)
    return Entry(name, dtype, encoding, r.layout, r.rank, r.group_size, r.dims,
                 r.offset, r.stored_length, r.decoded_length, r.crc32)


def _check_name(path, r: _RawEntry, seen: dict) -> str:
    where = f"directory entry {r.index}"
    if not 1 <= len(r.name) <= MAX_NAME:
        raise _err(path, where, f"name_length {len(r.name)} is outside 1 .. {MAX_NAME}")
    try:
        name = r.name.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _err(path, where, f"name {r.name!r} is not valid UTF-8 ({exc.reason})") from None
    if "\0" in name:
        raise _err(path, where, f"name {name!r} contains a NUL byte")
    key = unicodedata.normalize("NFC", name)  # names are unique up to canonical equivalence
    if key in seen:
        raise _err(path, where, f"name {name!r} is also the name of entry {seen[key]}")
    seen[key] = r.index
    return name


def _check_group(path, where: str, dtype: str, r: _RawEntry) -> None:
    g = r.group_size
    if dtype not in Q8_SCALES:
        if g != 0:
            raise _err(path, where, f"group_size must be 0 for {dtype}, is {g}")
        return
    if r.rank < 1:
        raise _err(path, where, f"a {dtype} tensor must have rank >= 1")
    cols = r.dims[-1]
    if g < 1 or cols % g:
        raise _err(path, where, f"group_size {g} does not divide cols = {cols}")
    if r.layout == 1 and (cols % 4 or g % 4):
        raise _err(path, where, f"layout 1 needs cols % 4 = 0 and group_size % 4 = 0 "
                                f"(cols {cols}, group_size {g})")


def _decoded_length(dtype: str, layout: int, dims: tuple[int, ...], g: int) -> int:
    """§6.4. Every intermediate value is <= the result, so the caller's check of the result
    against 2**64 is the same as checking each step for 64-bit overflow."""
    if dtype not in Q8_SCALES:
        return DTYPES_BY_NAME[dtype] * math.prod(dims)
    z = Q8_SCALES[dtype].itemsize  # 4 for q8, 2 for q8f16
    rows, cols, groups, padded = q8_geometry(dims, g)
    if layout == 0:
        return align64(rows * cols) + z * rows * groups
    return padded * cols + z * padded * groups


def _check_placement(path, where: str, encoding: str, r: _RawEntry, file_length: int) -> None:
    if encoding == "raw" and r.stored_length != r.decoded_length:
        raise _err(path, where, f"raw tensor has stored_length {r.stored_length} "
                                f"!= decoded_length {r.decoded_length}")
    if encoding != "raw" and r.stored_length < 1:
        raise _err(path, where, "stored_length is 0")
    if r.offset % 64 or r.offset < 64:
        raise _err(path, where, f"offset {r.offset} is not a multiple of 64 at or after 64")
    end = r.offset + r.stored_length
    if end >= U64_END:
        raise _err(path, where, "offset + stored_length overflows 64 bits")
    if end > file_length:
        raise _err(path, where, f"stored bytes [{r.offset}, {end}) end past the file "
                                f"({file_length} bytes)")


# ---------------------------------------------------------------- §7 check 10: overlaps

def _check_overlaps(path, h: Header, entries: list[Entry]) -> None:
    spans = [(e.offset, e.offset + e.stored_length, f"tensor {e.name!r}") for e in entries]
    spans.append((h.metadata_offset, h.metadata_offset + h.metadata_length, "the metadata"))
    spans.append((h.directory_offset, h.directory_offset + h.directory_length, "the directory"))
    spans = sorted(s for s in spans if s[0] < s[1])
    # Sorted by start, some pair overlaps if and only if some neighbouring pair does.
    for (a_start, a_end, a), (b_start, b_end, b) in zip(spans, spans[1:]):
        if b_start < a_end:
            raise _err(path, a, f"bytes [{a_start}, {a_end}) overlap {b} [{b_start}, {b_end})")


# ---------------------------------------------------------------- zstd (§6.3)

class _ZstdFailure(Exception):
    pass


ZSTD_MAGIC = 0xFD2FB528
MAX_WINDOW = 1 << 27  # §6.3


def _zstd_frames(data: bytes) -> list[tuple[int, int, int | None]]:
    """§6.3: the stored bytes are one or more whole zstd data frames (RFC 8878 §3.1.1) and
    nothing else. Walks them without decoding: (start, end, declared content size or None)
    per frame. Refuses a skippable frame, a dictionary, a window over 2^27 bytes (for a
    single-segment frame its content size), a reserved block type or header bit, a frame
    cut short and bytes after the last frame."""
    frames, at = [], 0
    if not data:
        raise _ZstdFailure("no zstd frame")
    while at < len(data):
        where = f"the frame at byte {at}"
        if len(data) - at < 5:
            raise _ZstdFailure(f"{where} is cut short")
        magic = int.from_bytes(data[at:at + 4], "little")
        if magic & 0xFFFFFFF0 == 0x184D2A50:
            raise _ZstdFailure(f"{where} is a skippable frame, which the format does not allow")
        if magic != ZSTD_MAGIC:
            raise _ZstdFailure(f"{where} is not a zstd frame")
        fhd = data[at + 4]
        size_flag, single, reserved, checksum, dict_flag = fhd >> 6, fhd & 0x20, fhd & 0x08, fhd & 0x04, fhd & 3
        if reserved:
            raise _ZstdFailure(f"{where} has a reserved bit set")
        if dict_flag:
            raise _ZstdFailure(f"{where} needs a dictionary, which the format does not allow")
        pos = at + 5
        window = None
        if not single:
            if pos >= len(data):
                raise _ZstdFailure(f"{where} is cut short")
            wd = data[pos]
            log = 10 + (wd >> 3)
            window = (1 << log) + (1 << log) // 8 * (wd & 7)
            pos += 1
        size_bytes = [1 if single else 0, 2, 4, 8][size_flag]
        if pos + size_bytes > len(data):
            raise _ZstdFailure(f"{where} is cut short")
        content = None
        if size_bytes:
            content = int.from_bytes(data[pos:pos + size_bytes], "little") + (256 if size_bytes == 2 else 0)
            if single:
                window = content
        pos += size_bytes
        if window > MAX_WINDOW:
            raise _ZstdFailure(f"{where} needs a window of {window} bytes, over the format's limit of 2^27")
        while True:  # blocks (§3.1.1.2)
            if pos + 3 > len(data):
                raise _ZstdFailure(f"{where} is cut short")
            header = int.from_bytes(data[pos:pos + 3], "little")
            last, kind, length = header & 1, (header >> 1) & 3, header >> 3
            if kind == 3:
                raise _ZstdFailure(f"{where} has a block of the reserved type")
            pos += 3 + (1 if kind == 1 else length)
            if pos > len(data):
                raise _ZstdFailure(f"{where} is cut short")
            if last:
                break
        pos += 4 if checksum else 0
        if pos > len(data):
            raise _ZstdFailure(f"{where} is cut short")
        frames.append((at, pos, content))
        at = pos
    return frames


def _zstd_decompress(data: bytes, size: int) -> bytes:
    """Decompresses the frames into at most size + 1 bytes (see _read_bounded), each frame
    on its own, so that a frame's declared size and checksum are held to (the decoder checks
    the checksum)."""
    frames = _zstd_frames(data)
    out = bytearray()
    for start, end, content in frames:
        budget = size - len(out)
        if content is not None and content > budget:
            return bytes(out) + b"\0" * (budget + 1)  # more than decoded_length: the caller says so
        part = _zstd_frame_decompress(data[start:end], budget)
        if content is not None and len(part) != content:
            raise _ZstdFailure(f"the frame at byte {start} decodes to {len(part)} bytes, its header says {content}")
        out += part
        if len(out) > size:
            break
    return bytes(out)


def _zstd_frame_decompress(frame: bytes, size: int) -> bytes:
    """One whole frame (checked by _zstd_frames), into at most size + 1 bytes."""
    try:
        import zstandard
    except ImportError:
        return _zstd_cli(frame, size)
    try:
        reader = zstandard.ZstdDecompressor().stream_reader(frame)
        return _read_bounded(reader.read, size)
    except zstandard.ZstdError as exc:
        raise _ZstdFailure(str(exc)) from None


def _zstd_cli(data: bytes, size: int) -> bytes:
    exe = shutil.which("zstd")
    if exe is None:
        raise _ZstdFailure("no zstd decoder: install the zstandard module or the zstd tool")
    proc = subprocess.Popen([exe, "-d", "-c", "-q"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    # Feed stdin from a thread so neither pipe can fill up and deadlock the two processes.
    feeder = threading.Thread(target=_feed, args=(proc.stdin, data), daemon=True)
    feeder.start()
    out = _read_bounded(proc.stdout.read, size)
    if len(out) > size:
        proc.kill()  # it produced too much already: stop it now rather than at its next write
    proc.stdout.close()
    message = proc.stderr.read().decode("utf-8", "replace")
    proc.stderr.close()
    status = proc.wait()
    feeder.join()
    if status != 0 and len(out) <= size:
        raise _ZstdFailure(" ".join(message.split()) or f"zstd exited with status {status}")
    return out


def _read_bounded(read, size: int) -> bytes:
    """Reads to the end, but stops once more than size bytes came: size + 1 are enough to
    tell that the frames decode to too much, and a hostile frame cannot exhaust memory."""
    out = bytearray()
    while len(out) <= size:
        chunk = read(min(1 << 20, size + 1 - len(out)))
        if not chunk:
            break
        out += chunk
    return bytes(out)


def _feed(pipe, data: bytes) -> None:
    # A broken pipe means zstd stopped reading: it failed or was killed, and the caller
    # reports that from its exit status or its output.
    try:
        pipe.write(data)
    except OSError:
        pass
    try:
        pipe.close()
    except OSError:
        pass


def _unplane(planed: bytes, width: int) -> bytes:
    """§6.3: planed byte p*n + i is decoded byte i*width + p."""
    return np.frombuffer(planed, np.uint8).reshape(width, -1).T.tobytes()


# ---------------------------------------------------------------- the file

class TFQFile:
    """A checked .tfq file. Tensor data is read from a read-only mmap of the file."""

    def __init__(self, path, buf, header: Header, metadata: dict, entries: list[Entry]):
        self.path = path
        self.version = (header.version_major, header.version_minor)
        self.header = header
        self.metadata = metadata
        self.entries = entries
        self._by_name = {e.name: e for e in entries}
        self._buf = buf

    def close(self) -> None:
        if isinstance(self._buf, mmap.mmap):
            self._buf.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def entry(self, name: str) -> Entry:
        if name not in self._by_name:
            raise KeyError(f"{self.path}: no tensor named {name!r}")
        return self._by_name[name]

    def stored_bytes(self, name: str) -> bytes:
        e = self.entry(name)
        return self._buf[e.offset:e.offset + e.stored_length]

    def decoded_bytes(self, name: str) -> bytes:
        """The tensor's decoded bytes (§6.3), exactly decoded_length of them."""
        e = self.entry(name)
        stored = self.stored_bytes(name)
        if e.encoding == "raw":
            return stored
        where = f"tensor {name!r}"
        if e.decoded_length > MAX_ZSTD_DECODED:
            raise _err(self.path, where, f"decoded_length {e.decoded_length} is over this "
                                         f"reader's limit of {MAX_ZSTD_DECODED} bytes")
        try:
            data = _zstd_decompress(stored, e.decoded_length)
        except _ZstdFailure as exc:
            raise _err(self.path, where, f"zstd data does not decode: {exc}") from None
        if len(data) != e.decoded_length:
            size = "more" if len(data) > e.decoded_length else f"{len(data)}"
            raise _err(self.path, where, f"zstd frames decode to {size} bytes, "
                                         f"decoded_length is {e.decoded_length}")
        if e.encoding == "zstd-planes":
            data = _unplane(data, DTYPES_BY_NAME[e.dtype])
        return data

    def tensor(self, name: str) -> np.ndarray:
        """The tensor as float32 of its shape; q8 and q8f16 are dequantized, w = q * scale
        (§6.2, a q8f16 scale widened to float32 first)."""
        e = self.entry(name)
        if e.dtype in Q8_SCALES:
            q, scales = self.q8(name)
            rows, _, groups, _ = q8_geometry(e.shape, e.group_size)
            w = q.reshape(rows, groups, e.group_size).astype(np.float32) * scales[:, :, None]
            return w.reshape(e.shape)
        element = "<f4" if e.dtype == "f32" else "<f2"
        return np.frombuffer(self.decoded_bytes(name), element).astype(np.float32).reshape(e.shape)

    def q8(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """(q int8 [rows, cols], scales float32 [rows, G]) in logical row order, either
        layout, with the value checks of §6.2 (no -128, scales finite and >= 0, zero padding).
        A q8f16 tensor's f16 scales are widened to float32, which is exact (§6.2)."""
        e = self.entry(name)
        if e.dtype not in Q8_SCALES:
            raise ValueError(f"{self.path}: tensor {name!r} is {e.dtype}, not q8 or q8f16")
        scale_type = Q8_SCALES[e.dtype]
        data = self.decoded_bytes(name)
        rows, cols, groups, padded = q8_geometry(e.shape, e.group_size)
        if e.layout == 0:
            values_end, scales_start = rows * cols, align64(rows * cols)
            q = np.frombuffer(data, np.int8, rows * cols).reshape(rows, cols)
            scales = np.frombuffer(data, scale_type, rows * groups, scales_start).reshape(rows, groups)
            self._check_zero(name, "padding after the values", data[values_end:scales_start])
        else:
            q = (np.frombuffer(data, np.int8, padded * cols)
                 .reshape(padded // 16, cols // 4, 16, 4).transpose(0, 2, 1, 3)
                 .reshape(padded, cols))
            scales = (np.frombuffer(data, scale_type, padded * groups, padded * cols)
                      .reshape(padded // 16, groups, 16).transpose(0, 2, 1)
                      .reshape(padded, groups))
            self._check_zero(name, "padding rows' values", q[rows:].tobytes())
            self._check_zero(name, "padding rows' scales", scales[rows:].tobytes())  # stored bytes
            q, scales = q[:rows], scales[:rows]
        scales = scales.astype(np.float32)  # f32 as it is; f16 widened exactly (NaN, inf kept)
        self._check_q8_values(name, q, scales)
        return np.ascontiguousarray(q), scales

    def _check_zero(self, name: str, what: str, data: bytes) -> None:
        if any(data):
            raise _err(self.path, f"tensor {name!r}", f"{what} are not zero")

    def _check_q8_values(self, name: str, q: np.ndarray, scales: np.ndarray) -> None:
        where = f"tensor {name!r}"
        bad = np.argwhere(q == -128)
        if len(bad):
            raise _err(self.path, where, f"value -128 at [row, col] {bad[0].tolist()}")
        bad = np.argwhere(~(np.isfinite(scales) & (scales >= 0)))
        if len(bad):
            r, j = bad[0].tolist()
            raise _err(self.path, where, f"scale[{r}][{j}] = {scales[r, j]} is not finite, >= 0")

    def verify(self) -> None:
        """Checks every tensor's CRC-32 and decodes it (§7, last paragraph)."""
        for e in self.entries:
            crc = zlib.crc32(self.stored_bytes(e.name))
            if crc != e.crc32:
                raise _err(self.path, f"tensor {e.name!r}",
                           f"crc32 stored {e.crc32:#010x}, computed {crc:#010x}")
            if e.dtype in Q8_SCALES:
                self.q8(e.name)
            else:
                self.decoded_bytes(e.name)


def read(path) -> TFQFile:
    """Opens a .tfq file and checks the invariants of §7 in order before returning it."""
    with open(path, "rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        buf = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) if size else b""
    try:
        h = _check_header(path, buf)                                          # checks 1-5
        metadata = buf[h.metadata_offset:h.metadata_offset + h.metadata_length]
        directory = buf[h.directory_offset:h.directory_offset + h.directory_length]
        _check_index_crc(path, h, metadata, directory)                        # check 6
        meta = _parse_metadata(path, metadata)                                # check 7
        raw = _parse_directory(path, directory, h.tensor_count)              # check 8
        seen: dict[str, int] = {}
        entries = [_check_entry(path, r, seen, h.file_length) for r in raw]   # check 9
        _check_overlaps(path, h, entries)                                     # check 10
    except BaseException:
        if isinstance(buf, mmap.mmap):
            buf.close()
        raise
    return TFQFile(path, buf, h, meta, entries)


# ---------------------------------------------------------------- command line

def _table(f: TFQFile) -> str:
    head = ("name", "dtype", "shape", "encoding", "layout", "group", "stored", "decoded")
    rows = [head] + [(e.name, e.dtype, "[" + ", ".join(map(str, e.shape)) + "]", e.encoding,
                      e.layout_name, str(e.group_size), str(e.stored_length),
                      str(e.decoded_length)) for e in f.entries]
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    lines = [f"{f.path}: tfq {f.version[0]}.{f.version[1]}, {len(f.entries)} tensors"]
    for r in rows:
        cells = [c.ljust(w) if i < 5 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def _as_json(f: TFQFile) -> dict:
    tensors = [{"name": e.name, "dtype": e.dtype, "shape": list(e.shape),
                "encoding": e.encoding, "layout": e.layout_name, "group_size": e.group_size,
                "values": f.tensor(e.name).ravel().tolist()} for e in f.entries]
    return {"version": list(f.version), "metadata": f.metadata, "tensors": tensors}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Read and check a .tfq file (formats/tfq.md).")
    parser.add_argument("file")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--json", action="store_true", help="print everything, values included")
    mode.add_argument("--verify", action="store_true", help="check tensor CRCs and decoding")
    args = parser.parse_args(argv)
    try:
        with read(args.file) as f:
            if args.verify:
                f.verify()
                print("OK")
            elif args.json:
                print(json.dumps(_as_json(f)))
            else:
                print(_table(f))
    except (TFQFormatError, OSError) as exc:
        print(f"tfq_read: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
