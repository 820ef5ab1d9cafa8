#!/usr/bin/env python3
"""Counts the guest instructions an aarch64 program executes under qemu-user.

qemu logs each translation block's instructions once when it translates it (`-d in_asm`)
and a line each time it runs one (`-d exec`, with `nochain` so that every run goes through
the logger). Instructions executed = Σ over runs of the block's length. This is exact for
the code qemu runs (the emulated CPU's instructions, not the host's), and it is a count,
not a time: it says nothing about caches, memory bandwidth or how a core issues them.

    tools/count_instructions.py --sysroot /var/cache/tfq-arm64/trixie-arm64 -- BINARY ARGS...

prints the count on stdout (JSON with --json); the program's own output goes to stderr.
QEMU_CPU chooses the emulated core (e.g. cortex-a72 for a core without sdot).
"""
import argparse
import json
import os
import re
import subprocess
import sys
import tempfile

TRACE = re.compile(rb"^Trace \d+: 0x[0-9a-f]+ \[[0-9a-f]+/([0-9a-f]+)/[0-9a-f]+/[0-9a-f]+\] ?(.*)$")
INSN = re.compile(rb"^0x([0-9a-f]+):\s")


def count(log, by_symbol=None):
    """Parses a qemu log stream; returns (instructions, blocks run). With a dict `by_symbol`,
    also adds each function's instructions there (the symbol qemu names for a block)."""
    sizes = {}
    current, length = None, 0
    instructions = runs = 0
    for line in log:
        if line.startswith(b"Trace "):
            m = TRACE.match(line)
            if m:
                runs += 1
                n = sizes.get(int(m.group(1), 16), 0)
                instructions += n
                if by_symbol is not None:
                    name = m.group(2)
                    by_symbol[name] = by_symbol.get(name, 0) + n
            continue
        if line.startswith(b"IN:"):
            current, length = None, 0
            continue
        m = INSN.match(line)
        if m:
            if current is None:
                current = int(m.group(1), 16)
            length += 1
            sizes[current] = length     # a block is logged whole before it first runs
        elif line.strip() == b"":
            current, length = None, 0
    return instructions, runs


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--qemu", default="qemu-aarch64-static")
    parser.add_argument("--sysroot", required=True, help="aarch64 root with the program's libraries")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--top", type=int, default=0, help="also list the N functions that ran the most instructions")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no program to run")
    with tempfile.TemporaryDirectory() as directory:
        fifo = os.path.join(directory, "log")
        os.mkfifo(fifo)
        qemu = subprocess.Popen([args.qemu, "-L", args.sysroot, "-d", "in_asm,exec,nochain", "-D", fifo] + command,
                                stdout=sys.stderr)
        with open(fifo, "rb", buffering=1 << 20) as log:
            by_symbol = {} if args.top else None
            instructions, runs = count(log, by_symbol)
        status = qemu.wait()
    if status != 0:
        sys.exit(f"count_instructions.py: {command[0]} exited with status {status}")
    top = sorted((by_symbol or {}).items(), key=lambda item: -item[1])[:args.top]
    if args.json:
        print(json.dumps({"instructions": instructions, "blocks": runs,
                          "top": [{"symbol": name.decode(errors="replace"), "instructions": n} for name, n in top]}))
    else:
        print(instructions)
        for name, n in top:
            print(f"{n:>14,}  {name.decode(errors='replace')}")


if __name__ == "__main__":
    main()
