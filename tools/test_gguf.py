"""`tfq export --gguf` checked with the `gguf` package (llama.cpp's own Python reader).

Each fixture model is imported with tfq, exported as GGUF F32, F16 and Q8_0, and read back
by `gguf.GGUFReader`: the architecture keys must be the tfq config's, every F32 tensor the
tfq file's values exactly (read with tools/tfq_read.py), every Q8_0 tensor the bytes
`gguf.quants.quantize` makes from those values, and the tokenizer the model's own.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

gguf = pytest.importorskip("gguf")
sys.path.insert(0, str(Path(__file__).parent))
import tfq_read  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "Tests" / "TFQImportTests" / "Fixtures"


@pytest.fixture(scope="module")
def tfq():
    candidates = [os.environ["TFQ_BIN"]] if os.environ.get("TFQ_BIN") else \
        [ROOT / ".build-native" / "release" / "tfq", ROOT / ".build" / "release" / "tfq"]
    for path in map(str, candidates):
        if os.access(path, os.X_OK):
            # An older build has no GGUF commands: look for the command's own help.
            done = subprocess.run([path, "import", "gguf", "--help"], capture_output=True, text=True, timeout=60)
            if done.returncode == 0 and "USAGE: tfq import gguf" in done.stdout:
                return path
    pytest.skip("no tfq binary with GGUF commands (set TFQ_BIN, or build .build-native or .build)")


def run(*args, input=None):
    done = subprocess.run(list(args), capture_output=True, text=True, timeout=300, input=input)
    assert done.returncode == 0, done.stderr
    return done


def imported(tfq, name, tmp_path):
    out = str(tmp_path / f"{name}.tfq")
    if name == "llama2c":
        run(tfq, "import", "llama2c", str(FIXTURES / "llama/tiny-v0.bin"), "--tokenizer", str(FIXTURES / "llama/tokenizer.bin"), "-o", out)
    else:
        run(tfq, "import", "safetensors", str(FIXTURES / "hf" / name), "-o", out)
    return out


def gguf_to_tfq(name, config):
    """The tfq tensor and row range a GGUF tensor comes from."""
    d, kv = config["dim"], config.get("n_kv_heads", config["n_heads"]) * (config["dim"] // config["n_heads"])
    fixed = {"token_embd.weight": "tok_emb", "position_embd.weight": "pos_emb", "output_norm.weight": "ln_f.weight",
             "output_norm.bias": "ln_f.bias",
             "output.weight": "tok_emb" if config["tie_embeddings"] else "lm_head.weight"}
    if name in fixed:
        return fixed[name], None
    _, layer, part, kind = name.split(".")
    rows = {"attn_q": (0, d), "attn_k": (d, d + kv), "attn_v": (d + kv, d + 2 * kv)}
    if part in rows:
        return f"blocks.{layer}.attn.qkv.weight", rows[part]
    source = {"attn_norm": "ln1", "attn_qkv": "attn.qkv", "attn_output": "attn.proj", "ffn_norm": "ln2",
              "ffn_gate": "ffn.gate", "ffn_up": "ffn.up", "ffn_down": "ffn.down"}[part]
    return f"blocks.{layer}.{source}.{kind}", None


@pytest.mark.parametrize("name", ["gpt2", "llama", "llama-sp", "llama2c"])
def test_gguf_export_is_what_the_gguf_package_reads(tfq, tmp_path, name):
    model = imported(tfq, name, tmp_path)
    with tfq_read.read(model) as f:
        config = f.metadata["config"]
        values = {e.name: f.tensor(e.name) for e in f.entries}
        tokenizer = f.metadata["tokenizer"]
    readers = {}
    for flag, kind in [("--fp32", "f32"), ("--fp16", "f16"), ("--int8", "q8")]:
        path = str(tmp_path / f"{name}.{kind}.gguf")
        run(tfq, "export", model, "--gguf", flag, "-o", path)
        readers[kind] = gguf.GGUFReader(path)

    arch = "llama" if config["arch"] == "llama" else "gpt2"
    for kind, reader in readers.items():
        fields = {k: v.contents() for k, v in reader.fields.items()}
        assert fields["general.architecture"] == arch
        assert fields[f"{arch}.embedding_length"] == config["dim"]
        assert fields[f"{arch}.block_count"] == config["n_layers"]
        assert fields[f"{arch}.feed_forward_length"] == config["ff_dim"]
        assert fields[f"{arch}.attention.head_count"] == config["n_heads"]
        assert fields[f"{arch}.context_length"] == config["context_length"]
        if arch == "llama":
            assert fields["llama.attention.head_count_kv"] == config["n_kv_heads"]
            assert fields["llama.rope.dimension_count"] == config["dim"] // config["n_heads"]
            assert np.float32(fields["llama.rope.freq_base"]) == np.float32(config["rope_theta"])
        assert len(fields["tokenizer.ggml.tokens"]) == config["vocab_size"]

        names = {t.name for t in reader.tensors}
        assert ("output.weight" in names) == (not config["tie_embeddings"] or arch == "gpt2")
        for t in reader.tensors:
            source, rows = gguf_to_tfq(t.name, config)
            expected = values[source] if rows is None else values[source][rows[0]:rows[1]]
            expected = np.asarray(expected, dtype=np.float32).reshape(-1)
            got = np.asarray(t.data)
            if t.tensor_type == gguf.GGMLQuantizationType.F32:
                assert np.array_equal(got.reshape(-1), expected), t.name
            elif t.tensor_type == gguf.GGMLQuantizationType.F16:
                assert kind == "f16"
                assert np.array_equal(got.reshape(-1), expected.astype(np.float16)), t.name
            else:
                assert kind == "q8" and t.tensor_type == gguf.GGMLQuantizationType.Q8_0, t.name
                columns = int(t.shape[0])
                reference = gguf.quants.quantize(expected.reshape(-1, columns), gguf.GGMLQuantizationType.Q8_0)
                assert got.tobytes() == reference.tobytes(), t.name
                back = gguf.quants.dequantize(got, gguf.GGMLQuantizationType.Q8_0).reshape(-1)
                assert np.max(np.abs(back - expected)) <= np.max(np.abs(expected)) / 127 * 0.51 + 1e-3, t.name

    fields = {k: v.contents() for k, v in readers["f32"].fields.items()}
    if name == "llama2c":
        assert fields["tokenizer.ggml.model"] == "llama"
        assert fields["tokenizer.ggml.tokens"][3] == "<0x00>" and fields["tokenizer.ggml.token_type"][3] == 6
        assert all(" " not in t for t in fields["tokenizer.ggml.tokens"])
        assert np.allclose(fields["tokenizer.ggml.scores"], tokenizer["scores"])
    elif name == "llama-sp":
        # llama.cpp merges by score: each merge's result scores minus the first merge index
        # that makes it, every other piece below them all.
        hf = json.loads((FIXTURES / "hf" / name / "tokenizer.json").read_text())
        by_id = {i: t for t, i in hf["model"]["vocab"].items()}
        pieces = [by_id[i] for i in range(len(by_id))]
        assert fields["tokenizer.ggml.model"] == "llama" and fields["tokenizer.ggml.tokens"] == pieces
        merges = hf["model"]["merges"]
        expected_scores = [-float(len(merges))] * len(pieces)
        for i, (left, right) in reversed(list(enumerate(merges))):
            expected_scores[pieces.index(left + right)] = -float(i)
        assert list(fields["tokenizer.ggml.scores"]) == expected_scores
        types = fields["tokenizer.ggml.token_type"]
        assert types[0] == 2 and types[1] == 3 and types[2] == 3 and fields["tokenizer.ggml.unknown_token_id"] == 0
        assert all(types[3 + b] == 6 and pieces[3 + b] == f"<0x{b:02X}>" for b in range(256))
        assert all(t == 1 for t in types[259:])
        assert fields["tokenizer.ggml.bos_token_id"] == 1 and fields["tokenizer.ggml.eos_token_id"] == 2
        assert fields["tokenizer.ggml.add_bos_token"] is True and fields["tokenizer.ggml.add_space_prefix"] is True
        # Back through `tfq import gguf`, the pieces are llama2.c's tokenizer, which merges by
        # score as llama.cpp does: on text without a leading space, special tokens or a literal ▁
        # (which llama2.c's pieces hold as a space, so the text's ▁ falls back to its three
        # bytes) it gives the same ids as the imported tokenizer.json.
        back = str(tmp_path / "back.tfq")
        run(tfq, "import", "gguf", str(tmp_path / f"{name}.f32.gguf"), "-o", back)
        cases = json.loads((FIXTURES / "hf" / name / "expected.json").read_text())["tokenizer_cases"]
        texts = [c["text"] for c in cases if c["text"] and c["text"][0] != " " and "\u2581" not in c["text"] and "<" not in c["text"]]
        assert len(texts) >= 30
        for text in texts:
            ids = [run(tfq, "tokenize", m, input=text).stdout.split() for m in (model, back)]
            assert ids[0] == ids[1], repr(text)
    else:
        hf = json.loads((FIXTURES / "hf" / name / "tokenizer.json").read_text())
        by_id = {i: t for t, i in hf["model"]["vocab"].items()}
        assert fields["tokenizer.ggml.model"] == "gpt2" and fields["tokenizer.ggml.pre"] == "gpt-2"
        assert fields["tokenizer.ggml.tokens"] == [by_id[i] for i in range(len(by_id))]
        merges = [m if isinstance(m, str) else " ".join(m) for m in hf["model"]["merges"]]
        assert fields["tokenizer.ggml.merges"] == merges
        assert fields["tokenizer.ggml.eos_token_id"] == 0 and fields["tokenizer.ggml.token_type"][0] == 3


def test_gguf_export_refuses_what_gguf_cannot_hold(tfq, tmp_path):
    text = tmp_path / "t.txt"
    text.write_text("hello world, a tiny text for a tiny model.\n" * 40)
    ckpt = str(tmp_path / "c.tfq")
    run(tfq, "train", "--data", str(text), "--out", ckpt, "--steps", "2", "--layers", "1", "--dim", "32", "--heads", "2",
        "--ff", "64", "--context", "16", "--batch", "2")
    done = subprocess.run([tfq, "export", ckpt, "--gguf", "--fp32", "-o", str(tmp_path / "x.gguf")], capture_output=True, text=True)
    assert done.returncode != 0 and "GGUF's gpt2 architecture has GELU" in done.stderr
    assert not os.path.exists(tmp_path / "x.gguf")
    done = subprocess.run([tfq, "export", ckpt, "--gguf", "--int8", "--group-size", "64", "-o", str(tmp_path / "x.gguf")],
                          capture_output=True, text=True)
    assert done.returncode != 0 and "--group-size does not apply to --gguf" in done.stderr


def test_added_tokens_keep_their_gguf_type(tfq, tmp_path):
    """An added token marked "special": false in tokenizer.json is text a user added: tfq
    keeps it in the tokenizer's `user_defined` (formats/tfq.md §10.1), GGUF export types it
    user-defined (4), as convert_hf_to_gguf does, and importing that GGUF gives it back."""
    import shutil
    source = tmp_path / "gpt2"
    shutil.copytree(FIXTURES / "hf" / "gpt2", source)
    hf = json.loads((source / "tokenizer.json").read_text())
    assert [t["special"] for t in hf["added_tokens"]] == [True]
    hf["added_tokens"][0]["special"] = False
    (source / "tokenizer.json").write_text(json.dumps(hf))
    added = hf["added_tokens"][0]["id"]

    model = str(tmp_path / "m.tfq")
    run(tfq, "import", "safetensors", str(source), "-o", model)
    assert tfq_read.read(model).metadata["tokenizer"]["user_defined"] == [added]
    out = str(tmp_path / "m.gguf")
    run(tfq, "export", model, "--gguf", "--fp32", "-o", out)
    types = gguf.GGUFReader(out).fields["tokenizer.ggml.token_type"].contents()
    assert types[added] == 4 and types.count(4) == 1 and types.count(3) == 0
    back = str(tmp_path / "back.tfq")
    run(tfq, "import", "gguf", out, "-o", back)
    tokenizer = tfq_read.read(back).metadata["tokenizer"]
    assert tokenizer["user_defined"] == [added] and added in tokenizer["special"]

    # The fixture as it is: a control token, and no user_defined key.
    plain = imported(tfq, "gpt2", tmp_path)
    assert "user_defined" not in tfq_read.read(plain).metadata["tokenizer"]
