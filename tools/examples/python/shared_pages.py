"""Two processes that open the same raw int8 model share its pages: the weights are counted
once, not twice. Each child opens the model through libtfq, runs it (touching the
weights), and waits; the parent reads, in /proc/PID/smaps of both, the mapping of the
model file: its resident size (Rss) and its proportional share (Pss, which charges a
shared page half to each of two processes).

    python3 shared_pages.py path/to/libtfq.so MODEL.tfq
"""
import ctypes
import os
import subprocess
import sys

CHILD = r"""
import ctypes, sys
lib = ctypes.CDLL(sys.argv[1])
model, session = ctypes.c_void_p(), ctypes.c_void_p()
assert lib.tfq_model_open(sys.argv[2].encode(), ctypes.byref(model)) == 0
assert lib.tfq_session_new(model, 1, ctypes.byref(session)) == 0
tokens = (ctypes.c_int32 * 4)(1, 2, 3, 4)
logits = (ctypes.c_float * 65536)()
assert lib.tfq_session_eval(session, tokens, 4, logits, 65536) == 0
print("ready", flush=True)
sys.stdin.read()
"""


def file_mapping(pid, path):
    """Rss, Pss and Shared_Clean (bytes) summed over the mappings of `path` in process `pid`."""
    totals = {"Rss": 0, "Pss": 0, "Shared_Clean": 0}
    inside = False
    with open(f"/proc/{pid}/smaps") as f:
        for line in f:
            parts = line.split()
            if parts and "-" in parts[0] and len(parts) >= 5 and not parts[0].endswith(":"):
                inside = len(parts) >= 6 and parts[5] == path
            elif inside and parts and parts[0][:-1] in totals:
                totals[parts[0][:-1]] += int(parts[1]) * 1024
    return totals


def main():
    library, model = sys.argv[1], sys.argv[2]
    size = os.path.getsize(model)
    children = [subprocess.Popen([sys.executable, "-c", CHILD, library, model], stdin=subprocess.PIPE,
                                 stdout=subprocess.PIPE, text=True) for _ in range(2)]
    try:
        for child in children:
            assert child.stdout.readline().strip() == "ready"
        stats = [file_mapping(child.pid, os.path.realpath(model)) for child in children]
    finally:
        for child in children:
            child.stdin.close()
            child.wait()
    print(f"model file: {size >> 10} KiB")
    for i, s in enumerate(stats):
        print(f"process {i}, mapping of the model: Rss {s['Rss'] >> 10} KiB, Pss {s['Pss'] >> 10} KiB, "
              f"Shared_Clean {s['Shared_Clean'] >> 10} KiB")
    for s in stats:
        # The weights are resident (the run touched them) ...
        assert s["Rss"] >= 0.5 * size, "the model's pages are not resident"
        # ... and shared: each process is charged about half of each page.
        assert s["Shared_Clean"] >= 0.95 * s["Rss"], "the model's pages are private copies"
        assert s["Pss"] <= 0.55 * s["Rss"], "the model's pages are counted twice"
    print("shared pages: 1 passed, 0 failed")


if __name__ == "__main__":
    main()
