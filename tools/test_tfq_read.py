"""Tests for tools/tfq_read.py, on .tfq files built byte by byte from formats/tfq.md.

The minimal writer below follows the specification directly (element by element for the
q8 layouts and byte planes), so it checks the reader rather than mirroring its numpy code.
zstd frames are made with the `zstd` command-line tool.

    cd /work/main && python3 -m pytest -q tools/test_tfq_read.py
"""
import json
import math
import os
import random
import struct
import subprocess
import sys
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tfq_read  # noqa: E402
from zstd_vectors import raw_frame  # noqa: E402  (zstd frames of one raw block, built by hand)
from tfq_read import TFQFormatError  # noqa: E402

READER = Path(__file__).with_name("tfq_read.py")

# ------------------------------------------------------------------ a minimal writer

MAGIC = b"\x89TFQ\r\n\x1a\n"
HEADER = struct.Struct("<8sHHIQQQQQII")
HEADER_FIELDS = {  # name: (offset, struct format), section 3
    "magic": (0, "8s"), "version_major": (8, "H"), "version_minor": (10, "H"),
    "tensor_count": (12, "I"), "file_length": (16, "Q"), "metadata_offset": (24, "Q"),
    "metadata_length": (32, "Q"), "directory_offset": (40, "Q"),
    "directory_length": (48, "Q"), "index_crc32": (56, "I"), "header_crc32": (60, "I"),
}
F32, F16, Q8, Q8F16 = 1, 2, 3, 4
SCALE_FORMAT = {Q8: "<f", Q8F16: "<e"}  # §6.2: f32 scales (z = 4) or IEEE binary16 (z = 2)
RAW, ZSTD, PLANES = 0, 1, 2


def align64(n):
    return (n + 63) // 64 * 64


def zstd_compress(data: bytes) -> bytes:
    return subprocess.run(["zstd", "-c", "-q"], input=data, stdout=subprocess.PIPE,
                          check=True).stdout


def to_planes(decoded: bytes, width: int) -> bytes:
    n = len(decoded) // width
    return bytes(decoded[i * width + p] for p in range(width) for i in range(n))


def q8_layout0(q, scales, dtype=Q8) -> bytes:
    fmt = SCALE_FORMAT[dtype]
    z = struct.calcsize(fmt)
    rows, cols = q.shape
    groups = scales.shape[1]
    s = align64(rows * cols)
    out = bytearray(s + z * rows * groups)
    for r in range(rows):
        for c in range(cols):
            out[r * cols + c] = int(q[r, c]) & 0xFF
        for j in range(groups):
            struct.pack_into(fmt, out, s + z * (r * groups + j), float(scales[r, j]))
    return bytes(out)


def q8_layout1(q, scales, dtype=Q8) -> bytes:
    fmt = SCALE_FORMAT[dtype]
    z = struct.calcsize(fmt)
    rows, cols = q.shape
    groups = scales.shape[1]
    padded = 16 * math.ceil(rows / 16)
    s = padded * cols
    out = bytearray(s + z * padded * groups)  # padding rows stay zero
    for r in range(rows):
        for c in range(cols):
            out[(r // 16) * 16 * cols + (c // 4) * 64 + (r % 16) * 4 + c % 4] = int(q[r, c]) & 0xFF
        for j in range(groups):
            at = s + z * (((r // 16) * groups + j) * 16 + r % 16)
            struct.pack_into(fmt, out, at, float(scales[r, j]))
    return bytes(out)


@dataclass
class T:
    """A tensor to write: its decoded bytes, how to store them, and field overrides."""
    name: object  # str, or bytes written as they are
    dtype: int
    shape: tuple
    decoded: bytes
    encoding: int = RAW
    layout: int = 0
    group_size: int = 0
    stored: bytes = None  # stored bytes to write instead of encoding `decoded`
    fix: dict = field(default_factory=dict)  # directory fields to write instead of the true ones


def f32(name, values, shape=None, encoding=RAW, **kw):
    a = np.asarray(values, dtype="<f4")
    return T(name, F32, a.shape if shape is None else shape, a.tobytes(), encoding, **kw)


def f16(name, values, encoding=RAW, **kw):
    a = np.asarray(values, dtype="<f2")
    return T(name, F16, a.shape, a.tobytes(), encoding, **kw)


def q8(name, q, scales, group_size, layout=0, shape=None, encoding=RAW, dtype=Q8, **kw):
    decoded = (q8_layout0 if layout == 0 else q8_layout1)(q, scales, dtype)
    return T(name, dtype, q.shape if shape is None else shape, decoded, encoding, layout,
             group_size, **kw)


def q8f16(name, q, scales, group_size, layout=0, **kw):
    """A q8f16 tensor (dtype 4, since 1.5): q8 with binary16 scales; `scales` must be float16
    values (struct's "e" format would round others)."""
    return q8(name, q, scales, group_size, layout, dtype=Q8F16, **kw)


def stored_bytes(t: T) -> bytes:
    if t.stored is not None:
        return t.stored
    if t.encoding == RAW:
        return t.decoded
    if t.encoding == ZSTD:
        return zstd_compress(t.decoded)
    return zstd_compress(to_planes(t.decoded, {F32: 4, F16: 2}[t.dtype]))


def entry_bytes(name, dtype, encoding, layout, rank, group_size, dims, offset,
                stored_length, decoded_length, crc32) -> bytes:
    name = name.encode() if isinstance(name, str) else name
    return (struct.pack("<H", len(name)) + name
            + struct.pack("<BBBBI", dtype, encoding, layout, rank, group_size)
            + struct.pack(f"<{len(dims)}Q", *dims)
            + struct.pack("<QQQI", offset, stored_length, decoded_length, crc32))


def build(tensors, metadata=None, *, metadata_bytes=None, directory_tail=b"",
          version=(1, 0)) -> bytes:
    """Header, tensors at 64-aligned offsets, metadata JSON, directory: tfq's own order."""
    out, directory = bytearray(64), bytearray()
    for t in tensors:
        stored = stored_bytes(t)
        out += bytes(align64(len(out)) - len(out))
        fields = dict(name=t.name, dtype=t.dtype, encoding=t.encoding, layout=t.layout,
                      rank=len(t.shape), group_size=t.group_size, dims=t.shape,
                      offset=len(out), stored_length=len(stored),
                      decoded_length=len(t.decoded), crc32=zlib.crc32(stored))
        fields.update(t.fix)
        directory += entry_bytes(**fields)
        out += stored
    if metadata_bytes is None:
        metadata_bytes = json.dumps({"kind": "model"} if metadata is None else metadata).encode()
    directory += directory_tail
    meta_at = len(out)
    out += metadata_bytes
    dir_at = len(out)
    out += directory
    index_crc = zlib.crc32(bytes(directory), zlib.crc32(metadata_bytes))
    HEADER.pack_into(out, 0, MAGIC, *version, len(tensors), len(out), meta_at,
                     len(metadata_bytes), dir_at, len(directory), index_crc, 0)
    return fix_header_crc(out)


def fix_header_crc(buf) -> bytes:
    buf = bytearray(buf)
    struct.pack_into("<I", buf, 60, zlib.crc32(buf[:60]))
    return bytes(buf)


def header(buf) -> dict:
    return dict(zip(HEADER_FIELDS, HEADER.unpack_from(buf)))


def patch_header(buf, name, value, fix_crc=True) -> bytes:
    buf = bytearray(buf)
    offset, fmt = HEADER_FIELDS[name]
    struct.pack_into("<" + fmt, buf, offset, value)
    return fix_header_crc(buf) if fix_crc else bytes(buf)


def fix_index_crc(buf) -> bytes:
    """Recomputes both CRCs after an edit, so that later checks are reached."""
    h = header(buf)
    meta = buf[h["metadata_offset"]:h["metadata_offset"] + h["metadata_length"]]
    directory = buf[h["directory_offset"]:h["directory_offset"] + h["directory_length"]]
    return patch_header(buf, "index_crc32", zlib.crc32(directory, zlib.crc32(meta)))


# ------------------------------------------------------------------ helpers

_files = iter(range(10**9))


def write(tmp_path, buf) -> Path:
    # A new name each time: rewriting a file that an open TFQFile has mapped is unsafe.
    path = tmp_path / f"t{next(_files)}.tfq"
    path.write_bytes(buf)
    return path


def load(tmp_path, buf) -> tfq_read.TFQFile:
    return tfq_read.read(write(tmp_path, buf))


def expect_error(tmp_path, buf, *parts, verify=False) -> str:
    """read() (and verify() if asked) must fail with TFQFormatError naming the file and parts."""
    path = write(tmp_path, buf)
    with pytest.raises(TFQFormatError) as info:
        f = tfq_read.read(path)
        if verify:
            with f:
                f.verify()
    message = str(info.value)
    assert str(path) in message
    for part in parts:
        assert part in message, message
    return message


def random_q8(seed, rows, cols, group_size):
    rng = np.random.default_rng(seed)
    q = rng.integers(-127, 128, (rows, cols), dtype=np.int8)
    scales = rng.uniform(0, 0.05, (rows, cols // group_size)).astype(np.float32)
    scales[0, 0] = 0  # an all-zero group
    q[0, :group_size] = 0
    return q, scales


def random_q8f16(seed, rows, cols, group_size):
    """Like random_q8, with float16 scales, among them binary16's extremes: its smallest
    subnormal, a subnormal, its largest finite value."""
    rng = np.random.default_rng(seed)
    q = rng.integers(-127, 128, (rows, cols), dtype=np.int8)
    scales = rng.uniform(0, 0.05, (rows, cols // group_size)).astype(np.float16)
    scales[0, 0] = 0  # an all-zero group
    q[0, :group_size] = 0
    extremes = [np.float16(2**-24), np.float16(3 * 2**-20), np.float16(65504)]
    for k, v in enumerate(extremes[:scales.size - 1]):
        scales.flat[k + 1] = v
    return q, scales


def dequantized(q, scales, group_size):
    """w = q * scale (§6.2); float16 scales are widened to float32 first."""
    return q.astype(np.float32) * np.repeat(scales.astype(np.float32), group_size, axis=1)


def small_file() -> bytes:
    """A valid file with a raw and a zstd tensor, for truncation and header tests."""
    return build([f32("a", [1.0, -2.0, 3.5]), f32("b", [0.25] * 40, encoding=ZSTD)],
                 {"kind": "model", "extra": {"k": "v"}})


# ------------------------------------------------------------------ valid files

F32_VALUES = [[1.5, -2.25, 0.0], [3.0e-8, -1.0e20, 7.0]]


@pytest.mark.parametrize("encoding", [RAW, ZSTD, PLANES])
def test_f32(tmp_path, encoding):
    f = load(tmp_path, build([f32("w", F32_VALUES, encoding=encoding)]))
    assert f.version == (1, 0) and f.metadata == {"kind": "model"}
    e = f.entry("w")
    assert (e.dtype, e.shape, e.dims, e.rank, e.decoded_length) == ("f32", (2, 3), (2, 3), 2, 24)
    assert e.encoding == ["raw", "zstd", "zstd-planes"][encoding]
    t = f.tensor("w")
    assert t.dtype == np.float32 and t.shape == (2, 3)
    np.testing.assert_array_equal(t, np.array(F32_VALUES, np.float32))
    assert f.decoded_bytes("w") == np.array(F32_VALUES, "<f4").tobytes()
    f.verify()


@pytest.mark.parametrize("encoding", [RAW, ZSTD, PLANES])
def test_f16(tmp_path, encoding):
    values = [0.5, -1.0, 65504.0, 6.1e-5, 3.14159, 0.0, -0.0]
    f = load(tmp_path, build([f16("h", values, encoding=encoding)]))
    t = f.tensor("h")
    assert t.dtype == np.float32 and t.shape == (7,)
    np.testing.assert_array_equal(t, np.array(values, np.float16).astype(np.float32))
    f.verify()


def test_scalar_and_rank_8(tmp_path):
    f = load(tmp_path, build([f32("s", 2.5), f32("r8", [[[[[[[[1.0, 2.0]]]]]]]])]))
    assert f.tensor("s").shape == () and float(f.tensor("s")) == 2.5
    assert f.tensor("r8").shape == (1, 1, 1, 1, 1, 1, 1, 2)
    f.verify()


@pytest.mark.parametrize("layout,rows,cols,g", [
    (0, 3, 8, 4), (0, 5, 12, 12), (0, 16, 64, 16),
    (1, 20, 8, 4), (1, 16, 16, 8), (1, 1, 12, 12), (1, 33, 8, 8),
])
@pytest.mark.parametrize("encoding", [RAW, ZSTD])
def test_q8(tmp_path, layout, rows, cols, g, encoding):
    q, scales = random_q8(rows * cols + layout, rows, cols, g)
    f = load(tmp_path, build([q8("m", q, scales, g, layout, encoding=encoding)]))
    e = f.entry("m")
    assert (e.dtype, e.layout, e.group_size, e.shape) == ("q8", layout, g, (rows, cols))
    got_q, got_scales = f.q8("m")
    assert got_q.dtype == np.int8 and got_scales.dtype == np.float32
    np.testing.assert_array_equal(got_q, q)
    np.testing.assert_array_equal(got_scales, scales)
    np.testing.assert_array_equal(f.tensor("m"), dequantized(q, scales, g))
    f.verify()


@pytest.mark.parametrize("layout", [0, 1])
@pytest.mark.parametrize("dtype", ["q8", "q8f16"])
def test_q8_rank_1_and_rank_3(tmp_path, layout, dtype):
    entry, random = (q8, random_q8) if dtype == "q8" else (q8f16, random_q8f16)
    q1, s1 = random(1, 1, 12, 4)
    q3, s3 = random(3, 21, 8, 4)  # shape [3, 7, 8]: rows = 21
    f = load(tmp_path, build([entry("v", q1, s1, 4, layout, shape=(12,)),
                              entry("t", q3, s3, 4, layout, shape=(3, 7, 8))]))
    np.testing.assert_array_equal(f.tensor("v"), dequantized(q1, s1, 4).reshape(12))
    np.testing.assert_array_equal(f.tensor("t"), dequantized(q3, s3, 4).reshape(3, 7, 8))
    np.testing.assert_array_equal(f.q8("t")[0], q3)
    f.verify()


def test_q8_layout1_byte_positions(tmp_path):
    # Element (r=17, c=5) of a [20, 8] tensor: block 1, quad 1, lane 1, byte 1, by §6.2.
    q = np.zeros((20, 8), np.int8)
    q[17, 5] = 99
    scales = np.ones((20, 2), np.float32)
    scales[17, 1] = 0.5
    decoded = q8_layout1(q, scales)
    assert decoded[1 * 16 * 8 + 1 * 64 + 1 * 4 + 1] == 99
    assert struct.unpack_from("<f", decoded, 32 * 8 + 4 * ((1 * 2 + 1) * 16 + 1))[0] == 0.5
    f = load(tmp_path, build([q8("m", q, scales, 4, layout=1)]))
    assert f.tensor("m")[17, 5] == np.float32(49.5)


# q8f16 (dtype 4, since 1.5): q8 with binary16 scales, z = 2 in §6.2 and §6.4.

@pytest.mark.parametrize("layout,rows,cols,g", [
    (0, 3, 8, 4), (0, 5, 12, 12), (0, 16, 64, 16), (0, 2, 32, 32),
    (1, 20, 8, 4), (1, 16, 16, 8), (1, 1, 12, 12), (1, 33, 8, 8),
])
@pytest.mark.parametrize("encoding", [RAW, ZSTD])
def test_q8f16(tmp_path, layout, rows, cols, g, encoding):
    q, scales = random_q8f16(rows * cols + layout, rows, cols, g)
    f = load(tmp_path, build([q8f16("m", q, scales, g, layout, encoding=encoding)], version=(1, 5)))
    assert f.version == (1, 5)
    e = f.entry("m")
    assert (e.dtype, e.layout, e.group_size, e.shape) == ("q8f16", layout, g, (rows, cols))
    assert e.encoding == ["raw", "zstd"][encoding]
    groups, padded = cols // g, 16 * math.ceil(rows / 16)
    assert e.decoded_length == (align64(rows * cols) + 2 * rows * groups if layout == 0
                                else padded * cols + 2 * padded * groups)
    got_q, got_scales = f.q8("m")
    assert got_q.dtype == np.int8 and got_scales.dtype == np.float32
    np.testing.assert_array_equal(got_q, q)
    np.testing.assert_array_equal(got_scales, scales.astype(np.float32))
    expected = q.astype(np.float32) * np.repeat(scales.astype(np.float32), g, axis=1)
    t = f.tensor("m")
    assert t.dtype == np.float32
    np.testing.assert_array_equal(t, expected)
    f.verify()


def test_q8f16_decoded_lengths(tmp_path):
    """§6.4 with z = 2, next to q8's z = 4, for one [20, 8] tensor with group size 4."""
    q, s = random_q8f16(2, 20, 8, 4)
    f = load(tmp_path, build([q8f16("a", q, s, 4, 0), q8f16("b", q, s, 4, 1),
                              q8("c", q, s.astype(np.float32), 4, 0), q8("d", q, s.astype(np.float32), 4, 1)]))
    lengths = [f.entry(n).decoded_length for n in "abcd"]
    assert lengths == [192 + 2 * 20 * 2, 256 + 2 * 32 * 2, 192 + 4 * 20 * 2, 256 + 4 * 32 * 2]
    for a, b in (("a", "c"), ("b", "d")):  # the same values, as q8 and as q8f16
        np.testing.assert_array_equal(f.tensor(a), f.tensor(b))
        np.testing.assert_array_equal(f.q8(a)[1], f.q8(b)[1])
    f.verify()


def test_q8f16_byte_positions(tmp_path):
    # Element (r=17, c=5) of a [20, 8] tensor: layout 1 puts it in block 1, quad 1, lane 1,
    # byte 1, and scale[17][1] at S + 2·((1·2 + 1)·16 + 1), S = 32·8 (§6.2, z = 2).
    q = np.zeros((20, 8), np.int8)
    q[17, 5] = 99
    scales = np.ones((20, 2), np.float16)
    scales[17, 1] = 0.5
    decoded = q8_layout1(q, scales, Q8F16)
    assert len(decoded) == 32 * 8 + 2 * 32 * 2
    assert decoded[1 * 16 * 8 + 1 * 64 + 1 * 4 + 1] == 99
    assert decoded[32 * 8 + 2 * ((1 * 2 + 1) * 16 + 1):][:2] == b"\x00\x38"  # binary16 0.5
    row_major = q8_layout0(q, scales, Q8F16)  # S = align64(160) = 192; scale[17][1] at 192 + 2·35
    assert row_major[17 * 8 + 5] == 99 and row_major[192 + 2 * 35:][:2] == b"\x00\x38"
    f = load(tmp_path, build([q8f16("m", q, scales, 4, layout=1), q8f16("r", q, scales, 4, layout=0)]))
    assert f.tensor("m")[17, 5] == np.float32(49.5) == f.tensor("r")[17, 5]
    assert f.q8("m")[1][17, 1] == np.float32(0.5)


@pytest.fixture(params=["zstandard module", "zstd command"])
def zstd_backend(request, monkeypatch):
    """Runs a test with each of the reader's zstd decoders: the module where it is installed
    (CI installs it), and the command-line tool (the module made unimportable)."""
    if request.param == "zstandard module":
        pytest.importorskip("zstandard", reason="the zstandard module is not installed")
    else:
        monkeypatch.setitem(sys.modules, "zstandard", None)  # makes `import zstandard` fail
    return request.param


SKIPPABLE = b"\x50\x2a\x4d\x18" + struct.pack("<I", 4) + b"\1\2\3\4"


def dictionary_frame(data: bytes) -> bytes:
    frame = bytearray(raw_frame(data, 20))
    frame[4] |= 1          # Dictionary_ID_flag 1: one byte of dictionary id after the window
    frame.insert(6, 7)
    return bytes(frame)


def bad_checksum(frame: bytes) -> bytes:
    return frame[:-1] + bytes([frame[-1] ^ 0x40])


ZSTD_DATA = np.arange(1000, dtype="<f4").tobytes()


@pytest.mark.usefixtures("zstd_backend")
@pytest.mark.parametrize("stored", [
    zstd_compress(ZSTD_DATA[:1600]) + zstd_compress(ZSTD_DATA[1600:]),
    raw_frame(ZSTD_DATA[:1600], 12, content_size=False) + raw_frame(ZSTD_DATA[1600:], 27),
    raw_frame(ZSTD_DATA),
], ids=["two frames", "no content size, window 2^27", "single segment"])
def test_zstd_frames_the_format_allows(tmp_path, stored):
    """§6.3, as tfq's own reader takes them (Tests/TFQFormatTests: zstdFramesAsTheFormatAllowsThem)."""
    f = load(tmp_path, build([T("z", F32, (1000,), ZSTD_DATA, ZSTD, stored=stored)]))
    f.verify()
    np.testing.assert_array_equal(f.tensor("z"), np.arange(1000, dtype=np.float32))


@pytest.mark.usefixtures("zstd_backend")
@pytest.mark.parametrize("stored,text", [
    (zstd_compress(ZSTD_DATA) + SKIPPABLE, "skippable frame"),
    (SKIPPABLE + zstd_compress(ZSTD_DATA), "skippable frame"),
    (raw_frame(ZSTD_DATA, 28), "over the format's limit of 2^27"),
    (zstd_compress(ZSTD_DATA)[:-3], "cut short"),
    (zstd_compress(ZSTD_DATA) + b"\x28\xb5", "cut short"),
    (bad_checksum(zstd_compress(ZSTD_DATA)), "zstd"),
    (dictionary_frame(ZSTD_DATA), "dictionary"),
    (raw_frame(ZSTD_DATA[:1000], 12, content_size=False) + zstd_compress(ZSTD_DATA[1600:]), "decode to 3400 bytes"),
], ids=["trailing skippable", "leading skippable", "window 2^28", "cut short", "bytes after the last frame",
        "bad checksum", "dictionary", "too little without a size"])
def test_zstd_frames_the_format_refuses(tmp_path, stored, text):
    expect_error(tmp_path, build([T("z", F32, (1000,), ZSTD_DATA, ZSTD, stored=stored)]),
                 "tensor 'z'", text, verify=True)


@pytest.mark.usefixtures("zstd_backend")
def test_multiple_zstd_frames(tmp_path):
    data = np.arange(32, dtype="<f4").tobytes()
    stored = zstd_compress(data[:50]) + zstd_compress(data[50:])
    f = load(tmp_path, build([T("w", F32, (32,), data, ZSTD, stored=stored)]))
    np.testing.assert_array_equal(f.tensor("w"), np.arange(32, dtype=np.float32))


def test_zstd_command_line_fallback(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "zstandard", None)  # makes `import zstandard` fail
    f = load(tmp_path, build([f32("w", F32_VALUES, encoding=PLANES)]))
    np.testing.assert_array_equal(f.tensor("w"), np.array(F32_VALUES, np.float32))


def test_other_minor_version_and_unknown_metadata_keys(tmp_path):
    f = load(tmp_path, build([f32("a", [1.0])], {"future_key": [1, {"x": None}]},
                             version=(1, 7)))
    assert f.version == (1, 7) and f.metadata == {"future_key": [1, {"x": None}]}


def test_no_tensors_and_layout_independence(tmp_path):
    f = load(tmp_path, build([], {}))
    assert f.entries == [] and f.metadata == {}
    f.verify()


def test_name_limits(tmp_path):
    f = load(tmp_path, build([f32("x" * 1024, [1.0]), f32("é→ü", [2.0])]))
    assert [e.name for e in f.entries] == ["x" * 1024, "é→ü"]


# ------------------------------------------------------------------ command line

def run_cli(*args):
    return subprocess.run([sys.executable, str(READER), *map(str, args)],
                          capture_output=True, text=True)


def test_cli(tmp_path):
    q, scales = random_q8(5, 17, 8, 4)
    path = write(tmp_path, build([f32("w", F32_VALUES, encoding=PLANES), f16("h", [0.5, 2.0]),
                                  q8("m", q, scales, 4, layout=1)], {"kind": "model"}))
    table = run_cli(path)
    assert table.returncode == 0
    assert "zstd-planes" in table.stdout and "[17, 8]" in table.stdout
    out = run_cli(path, "--json")
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc["version"] == [1, 0] and doc["metadata"] == {"kind": "model"}
    w, h, m = doc["tensors"]
    assert (w["name"], w["dtype"], w["shape"]) == ("w", "f32", [2, 3])
    assert (w["encoding"], w["layout"]) == ("zstd-planes", "row-major")
    assert w["values"] == [float(np.float32(v)) for row in F32_VALUES for v in row]
    assert h["values"] == [0.5, 2.0]
    assert (m["layout"], m["group_size"]) == ("interleaved-16x4", 4)
    assert m["values"] == dequantized(q, scales, 4).ravel().tolist()
    ok = run_cli(path, "--verify")
    assert (ok.returncode, ok.stdout) == (0, "OK\n")


TESTDATA = Path(__file__).resolve().parent.parent / "formats" / "testdata"


def check_vectors(directory: Path):
    """--json must agree with directory/expected.json (values as f32), --verify must pass."""
    for expected in json.loads((directory / "expected.json").read_text()):
        out = run_cli(directory / expected["file"], "--json")
        assert out.returncode == 0, out.stderr
        got = json.loads(out.stdout)
        assert got["metadata"] == expected["metadata"]
        assert len(got["tensors"]) == len(expected["tensors"])
        for g, e in zip(got["tensors"], expected["tensors"]):
            assert {k: g[k] for k in e if k != "values"} == {k: e[k] for k in e if k != "values"}
            np.testing.assert_array_equal(np.float32(g["values"]), np.float32(e["values"]))
        assert run_cli(directory / expected["file"], "--verify").stdout == "OK\n"


@pytest.mark.skipif(not (TESTDATA / "expected.json").exists(), reason="no formats/testdata")
def test_formats_testdata(tmp_path):
    """The spec's own test vectors."""
    check_vectors(TESTDATA)


def test_vectors_with_q8f16(tmp_path):
    """A q8f16 vector in expected.json's form (as TestVectorTests writes it: dtype "q8f16",
    layout by name, values as f32) goes through test_formats_testdata's check."""
    q, s = random_q8f16(21, 18, 8, 4)
    (tmp_path / "q8f16.tfq").write_bytes(build(
        [q8f16("q8f16.rowmajor.g4", q[:3], s[:3], 4, 0), q8f16("q8f16.interleaved.g4", q, s, 4, 1),
         q8f16("q8f16.rowmajor.zstd", q, s, 4, 0, encoding=ZSTD)],
        {"kind": "model"}, version=(1, 5)))
    tensors = [{"dtype": "q8f16", "encoding": encoding, "group_size": 4, "layout": layout, "name": name,
                "shape": [rows, 8], "values": dequantized(q[:rows], s[:rows], 4).ravel().tolist()}
               for name, rows, layout, encoding in [("q8f16.rowmajor.g4", 3, "row-major", "raw"),
                                                    ("q8f16.interleaved.g4", 18, "interleaved-16x4", "raw"),
                                                    ("q8f16.rowmajor.zstd", 18, "row-major", "zstd")]]
    (tmp_path / "expected.json").write_text(json.dumps([{"file": "q8f16.tfq", "metadata": {"kind": "model"},
                                                         "tensors": tensors}]))
    check_vectors(tmp_path)


def test_cli_errors(tmp_path):
    bad = run_cli(write(tmp_path, small_file()[:-1]))
    assert bad.returncode == 1 and bad.stdout == ""
    assert bad.stderr.count("\n") == 1 and "file_length" in bad.stderr
    flipped = bytearray(small_file())
    flipped[64] ^= 1
    bad = run_cli(write(tmp_path, bytes(flipped)), "--verify")
    assert bad.returncode == 1 and "'a'" in bad.stderr and "crc32" in bad.stderr
    missing = run_cli(tmp_path / "missing.tfq")
    assert missing.returncode == 1 and missing.stderr.count("\n") == 1


# ------------------------------------------------------------------ hostile files: header

def test_truncation_at_every_length(tmp_path):
    buf = small_file()
    for n in range(len(buf)):
        expect_error(tmp_path, buf[:n])


def test_appended_junk(tmp_path):
    expect_error(tmp_path, small_file() + b"\0", "file_length")


HEADER_CASES = [  # (field, new value or function of the header, expected text)
    ("magic", b"\x89TFQ\n\x1a\n\0", "magic"),
    ("magic", b"\x09TFQ\r\n\x1a\n", "magic"),
    ("version_major", 2, "version_major"),
    ("version_major", 0, "version_major"),
    ("tensor_count", lambda h: h["tensor_count"] + 1, "directory entry 2"),
    ("tensor_count", lambda h: h["tensor_count"] - 1, "directory_length"),
    ("tensor_count", 1_000_001, "tensor_count"),
    ("file_length", lambda h: h["file_length"] + 1, "file_length"),
    ("file_length", 2**64 - 1, "file_length"),
    ("metadata_offset", 0, "metadata_offset"),
    ("metadata_offset", 63, "metadata_offset"),
    ("metadata_offset", 2**64 - 1, "overflows"),
    ("metadata_offset", lambda h: h["file_length"], "metadata_offset"),
    ("metadata_offset", lambda h: h["directory_offset"], "overlaps"),
    ("metadata_length", 0, "metadata_length"),
    ("metadata_length", 1, "metadata_length"),
    ("metadata_length", 2**64 - 1, "overflows"),
    ("metadata_length", lambda h: h["metadata_length"] + 1, "overlaps"),
    ("directory_offset", 10, "directory_offset"),
    ("directory_offset", lambda h: h["directory_offset"] - 1, "overlaps"),
    ("directory_offset", lambda h: h["directory_offset"] + 1, "directory_offset"),
    ("directory_length", lambda h: h["directory_length"] - 1, "directory entry 1"),
    ("directory_length", 2**63, "directory_offset"),
    ("index_crc32", lambda h: h["index_crc32"] ^ 1, "index_crc32"),
]


@pytest.mark.parametrize("name,value,text", HEADER_CASES)
def test_header_field_corrupted(tmp_path, name, value, text):
    buf = small_file()
    if callable(value):
        value = value(header(buf))
    buf = patch_header(buf, name, value)
    if name != "index_crc32":
        buf = fix_index_crc(buf)  # so that the checks after check 6 are reached
    expect_error(tmp_path, buf, text)


@pytest.mark.parametrize("byte", range(60))
def test_header_byte_flip_caught_by_header_crc(tmp_path, byte):
    buf = bytearray(small_file())
    buf[byte] ^= 0x10
    expect_error(tmp_path, bytes(buf), "magic" if byte < 8 else "header_crc32")


def test_header_crc_itself_corrupted(tmp_path):
    buf = small_file()
    expect_error(tmp_path, patch_header(buf, "header_crc32", header(buf)["header_crc32"] ^ 1,
                                        fix_crc=False), "header_crc32")


def test_length_limits(tmp_path):
    too_big = b'{"k":"' + b"x" * ((16 << 20) - 7) + b'"}'
    expect_error(tmp_path, build([], metadata_bytes=too_big), "metadata_length")
    just_fits = b'{"k":"' + b"x" * ((16 << 20) - 8) + b'"}'
    tfq_read.read(write(tmp_path, build([], metadata_bytes=just_fits))).close()
    buf = build([], {})
    assert header(buf)["metadata_length"] == 2


# ------------------------------------------------------------------ hostile files: metadata

@pytest.mark.parametrize("meta", [
    b"\xff{}", b'{"a": "\xc0\xaf"}', b"[1, 2]", b'"text"', b"{", b"{} {}", b'{"a": NaN}',
    b'{"a": 1, "a": 2}', b"[" * 100_000 + b"]" * 100_000, b"\xef\xbb\xbf{}", b"1" * 5000,
])
def test_bad_metadata(tmp_path, meta):
    expect_error(tmp_path, build([f32("a", [1.0])], metadata_bytes=meta), "metadata")


# ------------------------------------------------------------------ hostile files: directory

def one(**fix):
    return build([f32("a", [1.0, 2.0]), f32("b", np.ones(20), fix=fix)])


def test_directory_trailing_bytes(tmp_path):
    expect_error(tmp_path, build([f32("a", [1.0])], directory_tail=b"\0"), "1 bytes are left")


def test_entry_cut_in_the_middle(tmp_path):
    buf = small_file()
    h = header(buf)
    for cut in range(1, h["directory_length"]):
        expect_error(tmp_path, fix_index_crc(patch_header(buf, "directory_length", cut)),
                     "directory")


@pytest.mark.parametrize("name,text", [
    (b"", "name_length 0"), (b"x" * 1025, "name_length 1025"), (b"\xff", "UTF-8"),
    (b"\xc0\xaf", "UTF-8"), (b"\xed\xa0\x80", "UTF-8"), (b"ab\xe2\x82", "UTF-8"),
    (b"a\0b", "NUL"), ("a", "also the name of entry 0"),
])
def test_bad_names(tmp_path, name, text):
    expect_error(tmp_path, one(name=name), "directory entry 1", text)


@pytest.mark.parametrize("fix,text", [
    (dict(dtype=0), "unknown dtype code 0"), (dict(dtype=5), "unknown dtype code 5"),
    (dict(dtype=255), "unknown dtype code 255"), (dict(encoding=3), "unknown encoding code 3"),
    (dict(dtype=4), "group_size 0 does not divide"),  # q8f16 (since 1.5): a known code
    (dict(layout=2), "unknown layout code 2"), (dict(layout=1), "layout 1 is only for q8 and q8f16"),
    (dict(rank=9, dims=(1,) * 8 + (20,)), "rank 9"),
    (dict(rank=2, dims=(0, 20)), "dimension < 1"),
    (dict(group_size=4), "group_size must be 0"),
    (dict(decoded_length=81), "decoded_length is 81, must be 80"),
    (dict(decoded_length=80, stored_length=84), "stored_length"),
    (dict(rank=2, dims=(2**62, 20), decoded_length=80), "overflows 64 bits"),
    (dict(offset=128 + 4), "offset 132 is not a multiple of 64"),
    (dict(offset=0), "offset 0"),
    (dict(offset=64), "overlap"),
    (dict(offset=4096), "end past the file"),
    (dict(offset=2**64 - 64), "overflows 64 bits"),
])
def test_bad_entry_fields(tmp_path, fix, text):
    expect_error(tmp_path, one(**fix), "tensor 'b'", text)


def test_rank_0_and_zstd_stored_length_0(tmp_path):
    expect_error(tmp_path, build([T("z", F32, (4,), bytes(16), ZSTD, stored=b"")]),
                 "stored_length is 0")
    q, s = random_q8(0, 1, 4, 4)
    expect_error(tmp_path, build([q8("q", q, s, 4, shape=(), fix=dict(decoded_length=68))]),
                 "rank >= 1")


@pytest.mark.parametrize("layout,shape,g,fix,text", [
    (0, (2, 8), 4, dict(encoding=PLANES), "zstd-planes"),
    (0, (2, 8), 4, dict(group_size=0), "group_size 0 does not divide"),
    (0, (2, 8), 4, dict(group_size=3), "group_size 3 does not divide"),
    (0, (2, 8), 4, dict(group_size=16), "group_size 16 does not divide"),
    (1, (2, 8), 2, {}, "layout 1 needs"),
    (1, (2, 6), 6, {}, "layout 1 needs"),
    (0, (2, 8), 4, dict(decoded_length=2 * 8 + 4 * 2 * 2), "must be 80"),
    (1, (2, 8), 4, dict(decoded_length=2 * 8 + 4 * 2 * 2), "must be 256"),
])
def test_bad_q8_entries(tmp_path, layout, shape, g, fix, text):
    q, s = random_q8(0, shape[0], shape[1], g)
    if layout == 1 and (shape[1] % 4 or g % 4):  # no valid layout-1 bytes exist: use layout 0's
        t = q8("q", q, s, g, 0, fix=dict(layout=1))
    else:
        t = q8("q", q, s, g, layout, fix=fix)
    expect_error(tmp_path, build([t]), "tensor 'q'", text)


@pytest.mark.parametrize("layout,shape,g,fix,text", [
    (0, (2, 8), 4, dict(encoding=PLANES), "encoding zstd-planes is only for f32 and f16, not q8f16"),
    (1, (2, 8), 4, dict(encoding=PLANES), "encoding zstd-planes is only for f32 and f16, not q8f16"),
    (0, (2, 8), 4, dict(group_size=0), "group_size 0 does not divide"),
    (0, (2, 8), 4, dict(group_size=3), "group_size 3 does not divide cols = 8"),
    (0, (2, 8), 4, dict(group_size=16), "group_size 16 does not divide"),
    (1, (2, 8), 2, {}, "layout 1 needs"),
    (1, (2, 6), 6, {}, "layout 1 needs"),
    (0, (2, 8), 4, dict(decoded_length=64 + 4 * 2 * 2), "decoded_length is 80, must be 72"),  # q8's z = 4
    (0, (2, 8), 4, dict(decoded_length=2 * 8 + 2 * 2 * 2), "must be 72"),                     # no gap
    (1, (2, 8), 4, dict(decoded_length=128 + 4 * 16 * 2), "decoded_length is 256, must be 192"),
    (1, (2, 8), 4, dict(decoded_length=2 * 8 + 2 * 2 * 2), "must be 192"),                    # no padding rows
    (0, (2, 8), 4, dict(rank=2, dims=(2**61, 8)), "overflows 64 bits"),
    (1, (2, 8), 4, dict(rank=2, dims=(2**61 - 16, 8)), "overflows 64 bits"),  # 8R fits, 8R + 4R does not
    (0, (2, 8), 4, dict(rank=2, dims=(2**60 + 2**58, 8), decoded_length=15 * 2**60),
     "raw tensor has stored_length"),  # 12·rows fits in 64 bits (q8's 16·rows would not)
    (0, (2, 8), 4, dict(rank=0, dims=()), "a q8f16 tensor must have rank >= 1"),
    (0, (2, 8), 4, dict(dtype=Q8), "decoded_length is 72, must be 80"),  # q8f16 bytes labelled q8
])
def test_bad_q8f16_entries(tmp_path, layout, shape, g, fix, text):
    q, s = random_q8f16(0, shape[0], shape[1], g)
    if layout == 1 and (shape[1] % 4 or g % 4):  # no valid layout-1 bytes exist: use layout 0's
        t = q8f16("q", q, s, g, 0, fix=dict(layout=1))
    else:
        t = q8f16("q", q, s, g, layout, fix=fix)
    expect_error(tmp_path, build([t], version=(1, 5)), "tensor 'q'", text)


def test_q8_layout_and_planes_refused_for_floats(tmp_path):
    expect_error(tmp_path, build([f16("h", [1.0, 2.0], fix=dict(layout=1))]),
                 "tensor 'h'", "layout 1 is only for q8 and q8f16, not f16")


def test_tensors_overlapping(tmp_path):
    a, b = f32("a", np.ones(32)), f32("b", np.ones(16))  # a is [64, 192)
    expect_error(tmp_path, build([a, f32("b", np.ones(16), fix=dict(offset=128))]), "overlap")
    expect_error(tmp_path, build([a, b, f32("c", np.ones(16), fix=dict(offset=192))]),
                 "overlap")


def test_tensor_overlapping_metadata(tmp_path):
    a = f32("a", np.ones(16))  # [64, 128), then b at [128, 192), then the metadata at 192
    assert header(build([a, f32("b", np.ones(16))]))["metadata_offset"] == 192
    expect_error(tmp_path, build([a, f32("b", np.ones(16), fix=dict(offset=192))]),
                 "tensor 'b'", "the metadata")


def test_tensor_overlapping_directory(tmp_path):
    def tensors(fix):
        return [f32(f"t{i}", np.ones(16)) for i in range(4)] + [f32("z", np.ones(16), fix=fix)]
    h = header(build(tensors({})))
    at = align64(h["directory_offset"])  # the directory is last and longer than 64 + 63 bytes
    assert at + 64 <= h["directory_offset"] + h["directory_length"] == h["file_length"]
    expect_error(tmp_path, build(tensors(dict(offset=at))), "tensor 'z'", "the directory")


# ------------------------------------------------------------------ hostile files: tensor data

def test_bit_flip_caught_by_verify(tmp_path):
    buf = bytearray(build([f32("a", [1.0, 2.0]), f32("b", F32_VALUES)]))
    buf[128 + 5] ^= 0x04
    f = load(tmp_path, bytes(buf))
    f.tensor("b")  # still readable: checksums are checked only when asked
    with pytest.raises(TFQFormatError, match="tensor 'b'.*crc32"):
        f.verify()


@pytest.mark.usefixtures("zstd_backend")
@pytest.mark.parametrize("size", [8 * 4 - 4, 8 * 4 + 4, 1 << 24])
def test_zstd_decoding_to_wrong_size(tmp_path, size):
    stored = zstd_compress(bytes(size))
    buf = build([T("z", F32, (8,), bytes(32), ZSTD, stored=stored)])
    f = load(tmp_path, buf)
    with pytest.raises(TFQFormatError, match="tensor 'z'.*decoded_length is 32"):
        f.decoded_bytes("z")
    expect_error(tmp_path, buf, "tensor 'z'", verify=True)


@pytest.mark.usefixtures("zstd_backend")
@pytest.mark.parametrize("stored", [b"\0", b"not a zstd frame",
                                    zstd_compress(bytes(32)) + b"junk",
                                    zstd_compress(bytes(32))[:-3]])
def test_zstd_garbage(tmp_path, stored):
    expect_error(tmp_path, build([T("z", F32, (8,), bytes(32), ZSTD, stored=stored)]),
                 "tensor 'z'", "zstd", verify=True)


def test_zstd_allocation_limit(tmp_path, monkeypatch):
    monkeypatch.setattr(tfq_read, "MAX_ZSTD_DECODED", 16)
    expect_error(tmp_path, build([f32("z", np.ones(8), encoding=ZSTD)]), "limit", verify=True)


def bad_q8(layout, edit):
    q, s = random_q8(7, 20, 8, 4)
    edit(q, s)
    return build([q8("m", q, s, 4, layout)])


@pytest.mark.parametrize("layout", [0, 1])
@pytest.mark.parametrize("edit,text", [
    (lambda q, s: q.__setitem__((19, 7), -128), "value -128 at [row, col] [19, 7]"),
    (lambda q, s: s.__setitem__((3, 1), -0.5), "scale[3][1]"),
    (lambda q, s: s.__setitem__((3, 1), np.nan), "scale[3][1]"),
    (lambda q, s: s.__setitem__((3, 1), np.inf), "scale[3][1]"),
])
def test_bad_q8_values(tmp_path, layout, edit, text):
    expect_error(tmp_path, bad_q8(layout, edit), "tensor 'm'", text, verify=True)


def f16_bits(bits):
    """An edit of a float16 scale array setting scale[3][1] to the binary16 with these bits."""
    return lambda q, s: s.view(np.uint16).__setitem__((3, 1), bits)


def bad_q8f16(layout, edit):
    q, s = random_q8f16(7, 20, 8, 4)
    edit(q, s)
    return build([q8f16("m", q, s, 4, layout)], version=(1, 5))


@pytest.mark.parametrize("layout", [0, 1])
@pytest.mark.parametrize("edit,text", [
    (lambda q, s: q.__setitem__((19, 7), -128), "value -128 at [row, col] [19, 7]"),
    (lambda q, s: q.__setitem__((0, 0), -128), "value -128 at [row, col] [0, 0]"),
    (f16_bits(0xB800), "scale[3][1] = -0.5 is not finite, >= 0"),    # -0.5
    (f16_bits(0x8001), "scale[3][1]"),                                # the negative smallest subnormal
    (f16_bits(0xFBFF), "scale[3][1] = -65504.0"),                     # the most negative finite
    (f16_bits(0x7E00), "scale[3][1] = nan"),                          # quiet NaN
    (f16_bits(0x7C01), "scale[3][1] = nan"),                          # signalling NaN
    (f16_bits(0xFE00), "scale[3][1] = nan"),                          # negative NaN
    (f16_bits(0x7C00), "scale[3][1] = inf"),
    (f16_bits(0xFC00), "scale[3][1] = -inf"),
], ids=["-128 last", "-128 first", "negative", "negative subnormal", "-65504", "nan", "snan",
        "-nan", "inf", "-inf"])
def test_bad_q8f16_values(tmp_path, layout, edit, text):
    buf = bad_q8f16(layout, edit)
    f = load(tmp_path, buf)  # the values are checked when read (verify, q8, tensor), not at open
    with pytest.raises(TFQFormatError, match="tensor 'm'"):
        f.tensor("m")
    expect_error(tmp_path, buf, "tensor 'm'", text, verify=True)


def test_q8f16_extreme_valid_scales(tmp_path):
    """binary16's smallest subnormal and largest finite value are valid scales, widened to
    float32 exactly."""
    q, s = random_q8f16(11, 4, 8, 4)
    s.view(np.uint16)[1, :] = [0x0001, 0x7BFF]   # 2^-24 and 65504
    f = load(tmp_path, build([q8f16("m", q, s, 4)], version=(1, 5)))
    f.verify()
    assert f.q8("m")[1][1].tolist() == [2.0**-24, 65504.0]
    np.testing.assert_array_equal(f.tensor("m"), dequantized(q, s, 4))


@pytest.mark.parametrize("at,text", [(20 * 8, "padding after the values"),
                                     (20 * 8 + 31, "padding after the values")])
def test_q8f16_layout0_gap_not_zero(tmp_path, at, text):
    q, s = random_q8f16(7, 20, 8, 4)
    decoded = bytearray(q8_layout0(q, s, Q8F16))
    assert len(decoded) == 192 + 2 * 20 * 2
    decoded[at] = 1
    expect_error(tmp_path, build([T("m", Q8F16, (20, 8), bytes(decoded), RAW, 0, 4)]), "tensor 'm'",
                 text, verify=True)


@pytest.mark.parametrize("at,text", [(16 * 8 + 4 * 4, "padding rows' values"),
                                     (32 * 8 - 1, "padding rows' values"),
                                     (32 * 8 + 2 * (2 * 16 + 5) + 1, "padding rows' scales"),
                                     (32 * 8 + 2 * (3 * 16 + 15), "padding rows' scales")])
@pytest.mark.parametrize("encoding", [RAW, ZSTD])
def test_q8f16_layout1_padding_not_zero(tmp_path, at, text, encoding):
    q, s = random_q8f16(7, 20, 8, 4)
    decoded = bytearray(q8_layout1(q, s, Q8F16))
    assert len(decoded) == 32 * 8 + 2 * 32 * 2
    decoded[at] = 1
    expect_error(tmp_path, build([T("m", Q8F16, (20, 8), bytes(decoded), encoding, 1, 4)]),
                 "tensor 'm'", text, verify=True)


def test_q8f16_padding_scale_negative_zero(tmp_path):
    """A padding row's scale must be 0: the bytes of -0.0 are not zero."""
    q, s = random_q8f16(7, 20, 8, 4)
    decoded = bytearray(q8_layout1(q, s, Q8F16))
    decoded[32 * 8 + 2 * (2 * 16 + 4) + 1] = 0x80  # scale[20][0] = -0.0
    expect_error(tmp_path, build([T("m", Q8F16, (20, 8), bytes(decoded), RAW, 1, 4)]),
                 "tensor 'm'", "padding rows' scales", verify=True)


@pytest.mark.parametrize("at,text", [(20 * 8, "padding after the values")])
def test_q8_layout0_padding_not_zero(tmp_path, at, text):
    q, s = random_q8(7, 20, 8, 4)
    decoded = bytearray(q8_layout0(q, s))
    decoded[at] = 1
    expect_error(tmp_path, build([T("m", Q8, (20, 8), bytes(decoded), RAW, 0, 4)]), text,
                 verify=True)


@pytest.mark.parametrize("at,text", [(16 * 8 + 4 * 4, "padding rows' values"),
                                     (32 * 8 + 4 * (2 * 16 + 5) + 3, "padding rows' scales")])
def test_q8_layout1_padding_not_zero(tmp_path, at, text):
    q, s = random_q8(7, 20, 8, 4)
    decoded = bytearray(q8_layout1(q, s))
    decoded[at] = 1
    expect_error(tmp_path, build([T("m", Q8, (20, 8), bytes(decoded), RAW, 1, 4)]), text,
                 verify=True)


# ------------------------------------------------------------------ fuzzing

def fuzz_base() -> bytes:
    q, s = random_q8(9, 5, 8, 4)
    return build([f32("a", F32_VALUES), f16("b", [1.0, 2.0], encoding=PLANES),
                  q8("c", q, s, 4, layout=1), q8("d", q, s, 4, layout=0, encoding=ZSTD),
                  q8f16("e", q, s.astype(np.float16), 4, layout=1),
                  q8f16("f", q, s.astype(np.float16), 4, layout=0, encoding=ZSTD)],
                 {"kind": "model", "config": {"dim": 8}})


def test_fuzz_only_format_errors(tmp_path):
    """Random byte edits anywhere, CRCs repaired so the deeper checks are reached: reading
    and verifying either succeeds or raises TFQFormatError, never anything else."""
    base = fuzz_base()
    rng = random.Random(1234)
    outcomes = {"ok": 0, "error": 0}
    for _ in range(400):
        buf = bytearray(base)
        for _ in range(rng.choice([1, 1, 2, 4])):
            buf[rng.randrange(len(buf))] = rng.choice([0, 1, 0x80, 0xFF, rng.randrange(256)])
        buf = bytes(buf)
        try:
            buf = fix_index_crc(buf)
        except (ValueError, struct.error):
            pass
        path = write(tmp_path, buf)
        try:
            with tfq_read.read(path) as f:
                f.verify()
                for e in f.entries:
                    f.tensor(e.name)
            outcomes["ok"] += 1
        except TFQFormatError:
            outcomes["error"] += 1
    assert outcomes["ok"] > 0 and outcomes["error"] > 0


def test_fuzz_tensor_data_with_repaired_checksums(tmp_path):
    """Random edits of tensor bytes with every CRC repaired, so decoding itself meets the
    damage: garbage zstd frames, -128 values, bad scales, non-zero padding."""
    base = fuzz_base()
    with tfq_read.read(write(tmp_path, base)) as f:
        entries = f.entries
    h = header(base)
    crc_at, at = [], h["directory_offset"]  # where each entry's crc32 field is
    for e in entries:
        at += 2 + len(e.name.encode()) + 8 + 8 * e.rank + 28
        crc_at.append(at - 4)
    rng = random.Random(99)
    outcomes = {"ok": 0, "error": 0}
    for _ in range(300):
        buf = bytearray(base)
        i = rng.randrange(len(entries))
        e = entries[i]
        for _ in range(rng.choice([1, 2, 8])):
            at = e.offset + rng.randrange(e.stored_length)
            buf[at] = rng.choice([0x80, 0xFF, rng.randrange(256)])
        stored = buf[e.offset:e.offset + e.stored_length]
        struct.pack_into("<I", buf, crc_at[i], zlib.crc32(stored))
        try:
            with tfq_read.read(write(tmp_path, fix_index_crc(bytes(buf)))) as f:
                f.verify()
                f.tensor(e.name)
            outcomes["ok"] += 1
        except TFQFormatError as exc:
            assert f"tensor {e.name!r}" in str(exc)
            outcomes["error"] += 1
    assert outcomes["ok"] > 0 and outcomes["error"] > 0


def test_metadata_value_limit(tmp_path):
    """§7 check 7: at most 1,000,000 JSON values, the outer object included."""
    def zeros(values):  # {"a":[0,…]}: the object, the array, values − 2 zeros
        return b'{"a":[' + b"0," * (values - 3) + b'0]}'
    tfq_read.read(write(tmp_path, build([], metadata_bytes=zeros(1_000_000)))).close()
    expect_error(tmp_path, build([], metadata_bytes=zeros(1_000_001)), "metadata", "1000000 JSON values")


ZSTD_VECTORS = TESTDATA / "zstd"


@pytest.mark.usefixtures("zstd_backend")
@pytest.mark.skipif(not (ZSTD_VECTORS / "cases.json").exists(), reason="no formats/testdata/zstd")
def test_formats_zstd_vectors():
    """formats/testdata/zstd (tools/zstd_vectors.py): the frames §6.3 allows decode to the
    values, the others fail naming the problem. The Swift reader checks the same files."""
    listing = json.loads((ZSTD_VECTORS / "cases.json").read_text())
    expected = np.array(listing["values"], np.float32)
    for case in listing["cases"]:
        path = ZSTD_VECTORS / case["file"]
        if case["valid"]:
            with tfq_read.read(path) as f:
                f.verify()
                np.testing.assert_array_equal(f.tensor("z"), expected)
        else:
            with pytest.raises(TFQFormatError) as info:
                with tfq_read.read(path) as f:
                    f.verify()
            assert "tensor 'z'" in str(info.value) and case["error"] in str(info.value), (case["file"], str(info.value))
