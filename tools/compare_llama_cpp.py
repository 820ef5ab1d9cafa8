#!/usr/bin/env python3
"""tfq against llama.cpp itself on one GGUF file: tokenization, logits and greedy ids.

llama.cpp runs FILE.gguf through its own library (libllama, via the `llama_cpp` ctypes
binding of llama-cpp-python); tfq runs MODEL.tfq, the same weights (the .tfq the GGUF was
exported from, or `tfq import gguf FILE.gguf`). Outside CI: it needs a llama.cpp build.

Setting up llama.cpp (no network beyond PyPI; the llama-cpp-python sdist carries llama.cpp's
source in vendor/llama.cpp):

  pip download --no-deps --no-binary :all: llama-cpp-python==0.3.36   # or fetch the sdist URL
  tar xzf llama_cpp_python-0.3.36.tar.gz && cd llama_cpp_python-0.3.36/vendor/llama.cpp
  cmake -B build -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=ON -DLLAMA_CURL=OFF -DBUILD_SHARED_LIBS=ON
  cmake --build build -j2 --target llama-bench llama-simple llama-tokenize
  export LLAMA_CPP_LIB_PATH=$PWD/build/bin PYTHONPATH=$PWD/../..      # the binding, its library

  python3 tools/compare_llama_cpp.py --tfq .build/release/tfq --model M.tfq --gguf M.gguf \\
      [--texts FILE] [--prompts 8] [--tokens 100]

Prints one JSON object: tokenization agreement on the texts, and per prompt how many greedy
ids agree before the first difference (with llama.cpp's top-1 margin at the prompt's end, to
tell a near-tie from a real divergence).
"""
import argparse
import json
import subprocess
import sys

import numpy as np


def tfq_tokenize(tfq, model, text):
    out = subprocess.run([tfq, "tokenize", model], input=text.encode(), capture_output=True, check=True)
    return [int(t) for t in out.stdout.split()]


def tfq_greedy(tfq, model, prompt, count):
    out = subprocess.run([tfq, "run", model, "--prompt-ids", " ".join(map(str, prompt)), "-n", str(count),
                          "--ignore-eos", "--threads", "1", "--json"], capture_output=True, check=True)
    return json.loads(out.stdout.splitlines()[0])["token_ids"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tfq", required=True)
    parser.add_argument("--model", required=True, help="the .tfq model with the GGUF's weights")
    parser.add_argument("--gguf", required=True)
    parser.add_argument("--texts", help="a text file; each non-empty line is a tokenization case and a prompt source")
    parser.add_argument("--prompts", type=int, default=8)
    parser.add_argument("--tokens", type=int, default=100)
    parser.add_argument("--parse-special", action="store_true",
                        help="let llama.cpp read special tokens' text in the input, as Hugging Face does")
    args = parser.parse_args()

    from llama_cpp import Llama
    llm = Llama(args.gguf, n_ctx=0, n_threads=1, logits_all=True, verbose=False)
    # The model's own context: llama.cpp pads its context beyond it, and a GPT-2's learned
    # positions end there.
    n_ctx = min(llm.n_ctx(), llm._model.n_ctx_train())

    lines = [line for line in open(args.texts, encoding="utf-8").read().split("\n") if line.strip()] if args.texts else [
        "Once upon a time", "MENENIUS:\nI will not stay to hear.", "Hello  world", " leading space", "caf\u00e9 \u65e5\u672c"]
    agree, mismatches = 0, []
    for text in lines:
        ours = tfq_tokenize(args.tfq, args.model, text)
        theirs = llm.tokenize(text.encode(), add_bos=True, special=args.parse_special)
        if ours == theirs:
            agree += 1
        elif len(mismatches) < 5:
            mismatches.append({"text": text[:80], "tfq": ours[:24], "llama.cpp": theirs[:24]})

    greedy = []
    step = max(1, len(lines) // args.prompts)
    for text in lines[::step][:args.prompts]:
        prompt = llm.tokenize(text.encode(), add_bos=True, special=args.parse_special)[: max(1, n_ctx // 4)]
        count = min(args.tokens, n_ctx - len(prompt))
        llm.reset()
        llm.eval(prompt)
        first_logits = np.array(llm.scores[len(prompt) - 1], dtype=np.float32)
        theirs = []
        while True:
            theirs.append(int(np.argmax(llm.scores[llm.n_tokens - 1])))
            if len(theirs) == count:
                break
            llm.eval([theirs[-1]])
        ours = tfq_greedy(args.tfq, args.model, prompt, count)
        same = next((i for i, (a, b) in enumerate(zip(ours, theirs)) if a != b), min(len(ours), len(theirs)))
        top2 = np.sort(first_logits)[-2:]
        greedy.append({"prompt_tokens": len(prompt), "generated": count, "equal_prefix": same,
                       "first_top1_margin": float(top2[1] - top2[0])})

    print(json.dumps({"gguf": args.gguf, "model": args.model,
                      "tokenization": {"texts": len(lines), "equal": agree, "first_differences": mismatches},
                      "greedy": greedy,
                      "greedy_equal_tokens": sum(g["equal_prefix"] for g in greedy),
                      "greedy_tokens": sum(g["generated"] for g in greedy)}, indent=1))


if __name__ == "__main__":
    sys.exit(main())
