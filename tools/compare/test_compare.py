"""compare.py against stand-in peers and a stand-in tfq that print known figures."""
import json
import os
import stat
import sys

sys.path.insert(0, os.path.dirname(__file__))
import compare  # noqa: E402


def script(tmp_path, name, body):
    path = tmp_path / name
    path.write_text("#!/usr/bin/env python3\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return str(path)


FAKE_TFQ = """import json, sys
threads = int(sys.argv[sys.argv.index('--threads') + 1])
print(json.dumps({'rows': [{'threads': threads, 'prompts': [{'prefill_tokens_per_second': {'median': 3000.0 * threads}}],
  'decode': [{'position': 'start', 'tokens_per_second': {'median': 1500.0 * threads}}]}]}))
"""

FAKE_LLAMA_BENCH = """import json
print(json.dumps([{'n_prompt': 128, 'n_gen': 0, 'avg_ts': 1500.0}, {'n_prompt': 0, 'n_gen': 128, 'avg_ts': 1000.0}]))
"""

FAKE_LLAMA2C = """import sys
print('Once upon a time...')
print('achieved tok/s: 500.000000', file=sys.stderr)
"""


def test_llama_cpp_ratios(tmp_path, capsys):
    tfq, peer = script(tmp_path, "tfq", FAKE_TFQ), script(tmp_path, "llama-bench", FAKE_LLAMA_BENCH)
    assert compare.main(["llama-cpp", "--peer", peer, "--peer-model", "m.gguf", "--tfq", tfq, "--model", "m.tfq",
                         "--threads", "1,2", "--rounds", "2"]) == 0
    out = capsys.readouterr().out
    assert "      1  prefill      1500.0     3000.0     2.00×" in out
    assert "      2  decode       1000.0     3000.0     3.00×" in out


def test_llama2c_decode_only(tmp_path, capsys):
    tfq, peer = script(tmp_path, "tfq", FAKE_TFQ), script(tmp_path, "run", FAKE_LLAMA2C)
    assert compare.main(["llama2c", "--peer", peer, "--peer-model", "m.bin", "--tfq", tfq, "--model", "m.tfq",
                         "--threads", "1", "--rounds", "1"]) == 0
    out = capsys.readouterr().out
    assert "decode        500.0     1500.0     3.00×" in out
    assert "prefill" not in out.split("\n", 2)[2]
