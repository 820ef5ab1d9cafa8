"""Loads a .tfq model through libtfq with ctypes and generates greedily: the Python
counterpart of `tfq run MODEL --prompt TEXT -n N`.

    python3 generate.py path/to/libtfq.so MODEL "prompt text" 64
"""
import ctypes
import sys


class Sampling(ctypes.Structure):
    _fields_ = [("temperature", ctypes.c_float), ("top_k", ctypes.c_int32),
                ("top_p", ctypes.c_float), ("seed", ctypes.c_uint64)]


CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int32, ctypes.POINTER(ctypes.c_char), ctypes.c_size_t, ctypes.c_void_p)


def load(path):
    lib = ctypes.CDLL(path)
    lib.tfq_version.restype = ctypes.c_char_p
    lib.tfq_last_error.restype = ctypes.c_char_p
    lib.tfq_status_name.restype = ctypes.c_char_p
    lib.tfq_status_name.argtypes = [ctypes.c_int]
    lib.tfq_model_open.argtypes = [ctypes.c_char_p, ctypes.POINTER(ctypes.c_void_p)]
    lib.tfq_model_close.argtypes = [ctypes.c_void_p]
    lib.tfq_tokenize.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t,
                                 ctypes.POINTER(ctypes.c_int32), ctypes.c_size_t, ctypes.POINTER(ctypes.c_size_t)]
    lib.tfq_session_new.argtypes = [ctypes.c_void_p, ctypes.c_int32, ctypes.POINTER(ctypes.c_void_p)]
    lib.tfq_session_free.argtypes = [ctypes.c_void_p]
    lib.tfq_generate.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_int32), ctypes.c_size_t, ctypes.c_int32,
                                 ctypes.POINTER(Sampling), CALLBACK, ctypes.c_void_p, ctypes.POINTER(ctypes.c_int32)]
    return lib


def check(lib, status):
    if status != 0:  # TFQ_OK
        sys.exit(f"error: {lib.tfq_last_error().decode()} ({lib.tfq_status_name(status).decode()})")


def main():
    if len(sys.argv) != 5:
        sys.exit("usage: generate.py LIBTFQ MODEL PROMPT N")
    lib = load(sys.argv[1])
    model = ctypes.c_void_p()
    check(lib, lib.tfq_model_open(sys.argv[2].encode(), ctypes.byref(model)))
    text = sys.argv[3].encode()
    tokens = (ctypes.c_int32 * (len(text) + 1))()
    count = ctypes.c_size_t()
    check(lib, lib.tfq_tokenize(model, text, len(text), tokens, len(text) + 1, ctypes.byref(count)))
    session = ctypes.c_void_p()
    check(lib, lib.tfq_session_new(model, 1, ctypes.byref(session)))

    pieces = []

    def on_token(token, data, length, user):
        pieces.append(ctypes.string_at(data, length))
        return 0

    generated = ctypes.c_int32()
    check(lib, lib.tfq_generate(session, tokens, count.value, int(sys.argv[4]), None, CALLBACK(on_token), None,
                                ctypes.byref(generated)))
    sys.stdout.write(b"".join(pieces).decode() + "\n")
    lib.tfq_session_free(session)
    lib.tfq_model_close(model)
    # A closed handle is an error, not a crash.
    assert lib.tfq_session_new(model, 1, ctypes.byref(session)) == 1  # TFQ_ERROR_INVALID_ARGUMENT


if __name__ == "__main__":
    main()
