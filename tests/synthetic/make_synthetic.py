#!/usr/bin/env python3
"""Writes GGUF files with the exact shapes of real small language models and random weights.

Their speed is that of the real model, their text is noise. Deterministic: the same seed gives
byte-identical files (the fixtures record each file's sha256), so CI regenerates them instead of
the repository holding them.

    python3 tests/synthetic/make_synthetic.py [--out DIR] [--only NAME ...] [--quant Q4_0 Q4_K_M Q8_0]
"""
import argparse
import hashlib
import json
import os
import sys

import numpy as np
import gguf
from gguf import GGMLQuantizationType as T

HERE = os.path.dirname(os.path.abspath(__file__))
SHARED = os.path.normpath(os.path.join(HERE, "..", "..", "..", "shared", "models"))

# config.json values of the real models (public).
SHAPES = {
    "smollm2-135m": dict(arch="llama", hidden=576, layers=30, heads=9, kv_heads=3, ffn=1536, vocab=49152, theta=100000.0, eps=1e-5, ctx=8192, tied=True, tokenizer="smollm2"),
    "qwen2.5-0.5b": dict(arch="qwen2", hidden=896, layers=24, heads=14, kv_heads=2, ffn=4864, vocab=151936, theta=1000000.0, eps=1e-6, ctx=32768, tied=True, qkv_bias=True, tokenizer="qwen2"),
    "qwen3-0.6b": dict(arch="qwen3", hidden=1024, layers=28, heads=16, kv_heads=8, head_dim=128, ffn=3072, vocab=151936, theta=1000000.0, eps=1e-6, ctx=40960, tied=True, qk_norm=True, tokenizer="qwen2"),
    "llama3.2-1b": dict(arch="llama", hidden=2048, layers=16, heads=32, kv_heads=8, ffn=8192, vocab=128256, theta=500000.0, eps=1e-5, ctx=131072, tied=True, tokenizer="smollm2"),
    # Phi-3.5-mini's layout (fused QKV and gate+up) at a reduced width; Gemma 2's (GELU, four
    # norms, scaled embeddings, soft-capping, sliding window) likewise.
    "phi3-layout": dict(arch="phi3", hidden=768, layers=4, heads=12, kv_heads=12, ffn=2048, vocab=49152, theta=10000.0, eps=1e-5, ctx=4096, tied=False, fused=True, tokenizer="smollm2"),
    "gemma2-layout": dict(arch="gemma2", hidden=512, layers=4, heads=8, kv_heads=4, head_dim=64, ffn=1536, vocab=49152, theta=10000.0, eps=1e-6, ctx=8192, tied=True, gemma=True, tokenizer="smollm2"),
}


def smollm2_vocab(vocab_size):
    tj = json.load(open(os.path.join(SHARED, "tokenizers", "smollm2-135m", "tokenizer.json")))
    vocab = tj["model"]["vocab"]
    tokens = [None] * len(vocab)
    for t, i in vocab.items():
        tokens[i] = t
    merges = [m if isinstance(m, str) else " ".join(m) for m in tj["model"]["merges"]]
    types = [1] * len(tokens)
    for at in tj.get("added_tokens", []):
        if at["id"] < len(types):
            types[at["id"]] = 3 if at.get("special") else 4
    return tokens, types, merges, "smollm", 1, 2


def qwen2_vocab(vocab_size):
    import base64
    rank_bytes = []
    for line in open(os.path.join(SHARED, "tokenizers", "qwen2", "qwen.tiktoken"), "rb"):
        if line.strip():
            b64, rank = line.split()
            rank_bytes.append((int(rank), base64.b64decode(b64)))
    rank_bytes.sort()
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAC + 1)) + list(range(0xAE, 0xFF + 1))
    cs, n = bs[:], 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    byte_map = {b: chr(c) for b, c in zip(bs, cs)}
    enc = lambda b: "".join(byte_map[x] for x in b)
    tokens = [enc(b) for _, b in rank_bytes]
    known = set(tokens)
    merges = []
    for _, b in rank_bytes:
        for i in range(1, len(b)):
            l, r = enc(b[:i]), enc(b[i:])
            if l in known and r in known:
                merges.append(f"{l} {r}")
    types = [1] * len(tokens)
    for s in ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]:
        tokens.append(s)
        types.append(3)
    return tokens, types, merges, "qwen2", 151643, 151645


def pad_vocab(tokens, types, size):
    tokens, types = list(tokens), list(types)
    while len(tokens) < size:
        tokens.append(f"[PAD{len(tokens)}]")
        types.append(5)
    return tokens[:size], types[:size]


# ---- K-quant encoders (valid Q4_K / Q6_K blocks; llama.cpp and pocketlm read the same bytes) ----

def quant_q4_k(x):
    b = x.reshape(-1, 8, 32).astype(np.float32)
    mn = np.minimum(b.min(axis=2), 0)
    mx = b.max(axis=2)
    scale = (mx - mn) / 15
    d = scale.max(axis=1, keepdims=True) / 63
    dmin = (-mn).max(axis=1, keepdims=True) / 63
    d16, dmin16 = d.astype(np.float16), dmin.astype(np.float16)
    df, dminf = d16.astype(np.float32), dmin16.astype(np.float32)
    sc = np.clip(np.round(np.divide(scale, df, out=np.zeros_like(scale), where=df > 0)), 0, 63).astype(np.uint8)
    m = np.clip(np.round(np.divide(-mn, dminf, out=np.zeros_like(mn), where=dminf > 0)), 0, 63).astype(np.uint8)
    step = (df * sc)[:, :, None]
    q = np.clip(np.round(np.divide(b + (dminf * m)[:, :, None], step, out=np.zeros_like(b), where=step > 0)), 0, 15).astype(np.uint8)
    scales = np.zeros((b.shape[0], 12), np.uint8)
    scales[:, 0:4] = (sc[:, 0:4] & 63) | ((sc[:, 4:8] >> 4) << 6)
    scales[:, 4:8] = (m[:, 0:4] & 63) | ((m[:, 4:8] >> 4) << 6)
    scales[:, 8:12] = (sc[:, 4:8] & 0xF) | ((m[:, 4:8] & 0xF) << 4)
    qv = q.reshape(-1, 4, 2, 32)
    qs = (qv[:, :, 0, :] | (qv[:, :, 1, :] << 4)).reshape(-1, 128)
    return np.concatenate([d16.view(np.uint8).reshape(-1, 2), dmin16.view(np.uint8).reshape(-1, 2), scales, qs], axis=1)


def quant_q6_k(x):
    b = x.reshape(-1, 16, 16).astype(np.float32)
    amax = np.abs(b).max(axis=2)
    scale = amax / 31
    d = scale.max(axis=1, keepdims=True) / 127
    d16 = d.astype(np.float16)
    df = d16.astype(np.float32)
    sc = np.clip(np.round(np.divide(scale, df, out=np.zeros_like(scale), where=df > 0)), -128, 127).astype(np.int8)
    step = (df * sc.astype(np.float32))[:, :, None]
    q = (np.clip(np.round(np.divide(b, step, out=np.zeros_like(b), where=step > 0)), -32, 31) + 32).astype(np.uint8).reshape(-1, 2, 4, 32)
    ql = np.concatenate([q[:, :, 0] & 0xF | ((q[:, :, 2] & 0xF) << 4), q[:, :, 1] & 0xF | ((q[:, :, 3] & 0xF) << 4)], axis=2).reshape(-1, 128)
    qh = ((q[:, :, 0] >> 4) | ((q[:, :, 1] >> 4) << 2) | ((q[:, :, 2] >> 4) << 4) | ((q[:, :, 3] >> 4) << 6)).reshape(-1, 64)
    return np.concatenate([ql, qh, sc.view(np.uint8), d16.view(np.uint8).reshape(-1, 2)], axis=1)


def encode(x, qtype):
    rows, cols = x.shape
    if qtype == T.Q4_K:
        return quant_q4_k(x).reshape(rows, -1), qtype
    if qtype == T.Q6_K:
        return quant_q6_k(x).reshape(rows, -1), qtype
    if qtype == T.F32:
        return x.astype(np.float32), qtype
    return gguf.quants.quantize(x.astype(np.float32), qtype), qtype


def pick_type(name, cols, quant, layer, n_layers):
    """The type llama.cpp's mixes give each tensor; K-quants fall back where rows are not 256-multiples."""
    if quant == "Q8_0":
        return T.Q8_0
    if quant == "Q4_0":
        return T.Q6_K if name == "output.weight" and cols % 256 == 0 else T.Q4_0
    # Q4_K_M: Q6_K for the output, and attn_v / ffn_down of half the layers; Q4_K elsewhere.
    if cols % 256 != 0:
        return T.Q8_0 if name in ("output.weight", "token_embd.weight") else T.Q5_0
    if name == "output.weight":
        return T.Q6_K
    if ("attn_v" in name or "ffn_down" in name) and (layer < n_layers // 8 or layer >= 7 * n_layers // 8 or (layer - n_layers // 8) % 3 == 2):
        return T.Q6_K
    return T.Q4_K


def make(name, quant, out_dir, seed=1234):
    s = SHAPES[name]
    rng = np.random.default_rng(seed)
    hd = s.get("head_dim", s["hidden"] // s["heads"])
    q_dim, kv_dim, dim, ffn, vocab = s["heads"] * hd, s["kv_heads"] * hd, s["hidden"], s["ffn"], s["vocab"]
    arch = s["arch"]
    path = os.path.join(out_dir, f"{name}-{quant}.gguf")
    w = gguf.GGUFWriter(path, arch)
    w.add_name(f"synthetic {name}")
    w.add_context_length(s["ctx"])
    w.add_embedding_length(dim)
    w.add_block_count(s["layers"])
    w.add_feed_forward_length(ffn)
    w.add_head_count(s["heads"])
    w.add_head_count_kv(s["kv_heads"])
    w.add_key_length(hd)
    w.add_value_length(hd)
    w.add_rope_dimension_count(hd)
    w.add_rope_freq_base(s["theta"])
    w.add_layer_norm_rms_eps(s["eps"])
    w.add_vocab_size(vocab)
    if s.get("gemma"):
        w.add_sliding_window(256)
        w.add_attn_logit_softcapping(50.0)
        w.add_final_logit_softcapping(30.0)
    tokens, types, merges, pre, bos, eos = (qwen2_vocab if s["tokenizer"] == "qwen2" else smollm2_vocab)(vocab)
    tokens, types = pad_vocab(tokens, types, vocab)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre(pre)
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_merges(merges)
    w.add_bos_token_id(bos)
    w.add_eos_token_id(eos)
    w.add_add_bos_token(False)

    def mat(rows, cols, std):
        return (rng.standard_normal((rows, cols), dtype=np.float32) * std)

    def norm(n):
        return (1.0 + 0.1 * rng.standard_normal(n, dtype=np.float32)).astype(np.float32)

    def add(tname, x, layer=-1):
        if x.ndim == 1:
            w.add_tensor(tname, x.astype(np.float32))
            return
        data, qt = encode(x, pick_type(tname, x.shape[1], quant, layer, s["layers"]))
        w.add_tensor(tname, data, raw_dtype=qt)

    # Embedding rows large enough that logits spread out and argmax is well defined.
    add("token_embd.weight", mat(vocab, dim, 1.0))
    for i in range(s["layers"]):
        p = f"blk.{i}."
        add(p + "attn_norm.weight", norm(dim))
        if s.get("fused"):
            add(p + "attn_qkv.weight", mat(q_dim + 2 * kv_dim, dim, dim ** -0.5), i)
        else:
            add(p + "attn_q.weight", mat(q_dim, dim, dim ** -0.5), i)
            add(p + "attn_k.weight", mat(kv_dim, dim, dim ** -0.5), i)
            add(p + "attn_v.weight", mat(kv_dim, dim, dim ** -0.5), i)
        if s.get("qkv_bias"):
            add(p + "attn_q.bias", 0.1 * rng.standard_normal(q_dim, dtype=np.float32))
            add(p + "attn_k.bias", 0.1 * rng.standard_normal(kv_dim, dtype=np.float32))
            add(p + "attn_v.bias", 0.1 * rng.standard_normal(kv_dim, dtype=np.float32))
        if s.get("qk_norm"):
            add(p + "attn_q_norm.weight", norm(hd))
            add(p + "attn_k_norm.weight", norm(hd))
        add(p + "attn_output.weight", mat(dim, q_dim, q_dim ** -0.5), i)
        if s.get("gemma"):
            add(p + "post_attention_norm.weight", norm(dim))
            add(p + "post_ffw_norm.weight", norm(dim))
        add(p + "ffn_norm.weight", norm(dim))
        if s.get("fused"):
            add(p + "ffn_up.weight", mat(2 * ffn, dim, dim ** -0.5), i)
        else:
            add(p + "ffn_gate.weight", mat(ffn, dim, dim ** -0.5), i)
            add(p + "ffn_up.weight", mat(ffn, dim, dim ** -0.5), i)
        add(p + "ffn_down.weight", mat(dim, ffn, ffn ** -0.5), i)
    add("output_norm.weight", norm(dim))
    if not s["tied"]:
        add("output.weight", mat(vocab, dim, 1.0))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


# What the logits test runs (the 1B shape is for benchmarks: too slow for CI's scalar CPU path).
TEST_SET = [("smollm2-135m", "Q4_0"), ("smollm2-135m", "Q4_K_M"), ("qwen2.5-0.5b", "Q4_0"), ("qwen3-0.6b", "Q4_K_M"), ("gemma2-layout", "Q4_K_M")]
# phi3-layout: llama.cpp refuses its vocabulary (unordered_map::at in the phi3 vocab loader) — to fix.


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=os.path.join(HERE))
    ap.add_argument("--only", nargs="*", help="shapes (default: the test set)")
    ap.add_argument("--quant", nargs="*", default=["Q4_0", "Q4_K_M"])
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    todo = [(n, q) for n in a.only for q in a.quant] if a.only else TEST_SET
    for name, q in todo:
        path = os.path.join(a.out, f"{name}-{q}.gguf")
        if os.path.exists(path):
            print(f"{path}: present", file=sys.stderr)
            continue
        make(name, q, a.out)
        print(f"{path}: {os.path.getsize(path) >> 20} MiB sha256 {sha256(path)}", file=sys.stderr)


if __name__ == "__main__":
    main()
