#!/usr/bin/env python3
"""Writes formats/testdata/zstd/: .tfq files whose one f32 tensor is stored as zstd frames
that formats/tfq.md §6.3 allows or refuses, and cases.json saying which, with the values a
reader must decode or words its error must contain. Both readers (Tests/TFQFormatTests
TestVectorTests, tools/test_tfq_read.py) check every case.

    python3 tools/zstd_vectors.py      # rewrites the folder (needs the zstd command)

The frames are built by hand (RFC 8878: one raw block) or by the zstd command, so the files
do not depend on which libzstd compresses them; they are committed as written.
"""
import json
import struct
import subprocess
import zlib
from pathlib import Path

OUT = Path(__file__).resolve().parent.parent / "formats" / "testdata" / "zstd"
VALUES = [float(i % 7) - 3 for i in range(1000)]
DATA = struct.pack("<1000f", *VALUES)


def raw_frame(data: bytes, window_log=None, content_size=True) -> bytes:
    single = window_log is None
    frame = bytearray(b"\x28\xb5\x2f\xfd")
    frame.append(((2 if content_size or single else 0) << 6) | (0x20 if single else 0))
    if window_log is not None:
        frame.append((window_log - 10) << 3)
    if content_size or single:
        frame += struct.pack("<I", len(data))
    frame += struct.pack("<I", 1 | len(data) << 3)[:3]
    return bytes(frame) + data


def compressed(data: bytes) -> bytes:
    return subprocess.run(["zstd", "-c", "-q", "-19", "--check"], input=data, stdout=subprocess.PIPE, check=True).stdout


def tfq_file(stored: bytes) -> bytes:
    """A .tfq file (formats/tfq.md §3, §5) of one f32 tensor "z" [1000], encoding zstd."""
    metadata = json.dumps({"kind": "test-vector"}, separators=(",", ":")).encode()
    body = bytearray(64) + stored
    body += bytes(-len(body) % 64)
    metadata_offset = len(body)
    body += metadata
    name = b"z"
    directory = struct.pack("<H", len(name)) + name + struct.pack("<BBBBI", 1, 1, 0, 1, 0) + struct.pack("<Q", 1000)
    directory += struct.pack("<QQQI", 64, len(stored), 4000, zlib.crc32(stored))
    directory_offset = len(body)
    body += directory
    header = struct.pack("<8sHHIQQQQQI", b"\x89TFQ\r\n\x1a\n", 1, 2, 1, len(body), metadata_offset, len(metadata),
                         directory_offset, len(directory), zlib.crc32(metadata + directory))
    header += struct.pack("<I", zlib.crc32(header))
    body[:64] = header
    return bytes(body)


def main():
    skippable = b"\x50\x2a\x4d\x18" + struct.pack("<I", 4) + b"\1\2\3\4"
    first, second = compressed(DATA[:1600]), compressed(DATA[1600:])
    whole = compressed(DATA)
    dictionary = bytearray(raw_frame(DATA, 20))
    dictionary[4] |= 1
    dictionary.insert(6, 7)
    cases = [
        ("two_frames", first + second, None),
        ("no_content_size_window_2p27", raw_frame(DATA[:1600], 12, False) + raw_frame(DATA[1600:], 27), None),
        ("single_segment", raw_frame(DATA), None),
        ("trailing_skippable", whole + skippable, "skippable frame"),
        ("leading_skippable", skippable + whole, "skippable frame"),
        ("window_2p28", raw_frame(DATA, 28), "over the format's limit of 2^27"),
        ("cut_short", whole[:-3], "cut short"),
        ("bytes_after_last_frame", whole + b"\x28\xb5", "cut short"),
        ("bad_checksum", whole[:-1] + bytes([whole[-1] ^ 0x40]), "checksum"),
        ("dictionary", bytes(dictionary), "dictionary"),
        ("header_cut_before_window", b"\x28\xb5\x2f\xfd\x00", "cut short"),
    ]
    OUT.mkdir(parents=True, exist_ok=True)
    listing = []
    for name, stored, error in cases:
        (OUT / f"{name}.tfq").write_bytes(tfq_file(stored))
        listing.append({"file": f"{name}.tfq", "valid": error is None, "error": error})
    (OUT / "cases.json").write_text(json.dumps({"values": VALUES, "cases": listing}, indent=1) + "\n")


if __name__ == "__main__":
    main()
