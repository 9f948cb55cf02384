#!/usr/bin/env python3
"""Native llama.cpp (PyPI llama-cpp-python) on one model file: the physical reference.

    python3 native_llama.py MODEL.gguf PROMPT GEN THREADS  ->  one JSON line

Prefill is one eval of the prompt's tokens; decode is greedy, one token per eval, EOS ignored.
"""
import json
import sys
import time

import llama_cpp

path, prompt, gen, threads = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
t0 = time.perf_counter()
llm = llama_cpp.Llama(model_path=path, n_ctx=1024, n_batch=512, n_threads=threads, n_threads_batch=threads, verbose=False)
load_ms = (time.perf_counter() - t0) * 1e3
ids = llm.tokenize(prompt.encode(), add_bos=True)
t1 = time.perf_counter()
llm.eval(ids)
tok = int(max(range(llm.n_vocab()), key=lambda i: llm.scores[llm.n_tokens - 1][i]))
t2 = time.perf_counter()
for _ in range(gen - 1):
    llm.eval([tok])
    row = llm.scores[llm.n_tokens - 1]
    tok = int(row.argmax())
t3 = time.perf_counter()
print(json.dumps({
    "prompt_tokens": len(ids), "generated": gen,
    "prefill_tok_s": len(ids) / (t2 - t1), "decode_tok_s": (gen - 1) / (t3 - t2),
    "ttft_ms": (t2 - t1) * 1e3, "load_ms": load_ms,
}))
