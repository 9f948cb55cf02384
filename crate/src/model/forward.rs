//! The forward pass, once for every architecture: the spec's fields choose biases, Q/K norms,
//! post-norms, activation, soft-capping, sliding windows and the RoPE convention.

use super::spec::{Activation, ModelSpec};
use super::weights::ModelWeights;
use crate::backend::cpu::{self, acts::ActKind, acts::QuantizedActs};
use crate::error::{Error, Result};
use crate::quant::QMatrix;
use half::f16;

/// Keys and values of every layer for `capacity` positions, allocated once, in f16 (as
/// llama.cpp keeps them: half the memory of f32, and the same rounding as the reference).
pub struct KvCache {
    pub capacity: usize,
    /// Positions filled.
    pub len: usize,
    k: Vec<Vec<f16>>,
    v: Vec<Vec<f16>>,
}

impl KvCache {
    pub fn new(spec: &ModelSpec, capacity: usize) -> KvCache {
        let kv_dim = spec.kv_dim();
        KvCache { capacity, len: 0, k: (0..spec.n_layers).map(|_| vec![f16::ZERO; capacity * kv_dim]).collect(), v: (0..spec.n_layers).map(|_| vec![f16::ZERO; capacity * kv_dim]).collect() }
    }
}

/// Prompt tokens per pass of the CPU forward: each weight read from memory serves this many
/// tokens (the mat-mat tiles of `backend::cpu`, blocked for the cache), and the scratch below
/// holds this many tokens. Package A/B, Chromium, the 2-core Xeon with AVX-VNNI, 2 threads,
/// prefill tok/s, 16 → 64 (with the kernels' cache blocking and the per-token work split
/// across threads) → 128: Qwen2.5-0.5B Q8_0 135 → 178 → 182, SmolLM2-135M Q8_0 324 → 386 → 397,
/// Qwen2.5 Q4_0 85 → 206 → 195; one thread, Qwen2.5 Q4_0 113 → 123 → 124.
pub const CPU_PREFILL_CHUNK: usize = 64;

/// Scratch buffers of the forward pass for up to [`CPU_PREFILL_CHUNK`] tokens, token-major
/// (`[token][value]`), allocated once per session.
pub struct ForwardState {
    x: Vec<f32>,
    xb: Vec<f32>,
    xb2: Vec<f32>,
    q: Vec<f32>,
    k: Vec<f32>,
    v: Vec<f32>,
    att: Vec<f32>,
    gate: Vec<f32>,
    up: Vec<f32>,
    /// The next-token logits of the last token of a pass that asked for them.
    pub logits: Vec<f32>,
    /// Each token's matrix input, quantized for the weights that read it.
    acts: Vec<QuantizedActs>,
    acts_kind: Option<ActKind>,
    inv_freq: Vec<Vec<f32>>,
}

impl ForwardState {
    pub fn new(spec: &ModelSpec) -> ForwardState {
        let n = CPU_PREFILL_CHUNK;
        ForwardState {
            x: vec![0.0; n * spec.dim],
            xb: vec![0.0; n * spec.dim],
            xb2: vec![0.0; n * spec.dim],
            q: vec![0.0; n * spec.q_dim()],
            k: vec![0.0; n * spec.kv_dim()],
            v: vec![0.0; n * spec.kv_dim()],
            att: vec![0.0; n * spec.q_dim()],
            gate: vec![0.0; n * spec.ffn_dim],
            up: vec![0.0; n * spec.ffn_dim],
            logits: vec![0.0; spec.vocab_size],
            acts: (0..n).map(|_| QuantizedActs::default()).collect(),
            acts_kind: None,
            inv_freq: (0..spec.n_layers).map(|l| spec.inv_freq(l)).collect(),
        }
    }
}

/// `out[t] = W · x[t]` for the `n` tokens of `x` (`W.cols` values each), quantizing `x` only when
/// `acts` do not already hold it in `W`'s pairing (so Q, K and V, or gate and up, quantize their
/// input once).
fn mm(w: &QMatrix, x: &[f32], n: usize, acts: &mut [QuantizedActs], acts_kind: &mut Option<ActKind>, out: &mut [f32]) {
    let kind = ActKind::for_weights(w.ty);
    if *acts_kind != Some(kind) {
        let cols = w.cols;
        cpu::threads::for_each_mut(&mut acts[..n], n * cols, |t, a| a.quantize(kind, &x[t * cols..(t + 1) * cols]));
        *acts_kind = Some(kind);
    }
    cpu::matmul_prequantized(w, &acts[..n], &mut out[..n * w.rows]);
}

fn add_bias(x: &mut [f32], b: &Option<Vec<f32>>) {
    if let Some(b) = b {
        x.chunks_exact_mut(b.len()).for_each(|xt| cpu::add_assign(xt, b));
    }
}

/// RMSNorm of each token's `dim` values.
fn rms_norm_tokens(x: &[f32], weight: &[f32], eps: f32, out: &mut [f32]) {
    for (xt, ot) in x.chunks_exact(weight.len()).zip(out.chunks_exact_mut(weight.len())) {
        cpu::rms_norm(xt, weight, eps, ot);
    }
}

/// Runs token `token` at position `cache.len`, appends its keys/values to the cache and, when
/// `want_logits`, leaves the next-token logits in `state.logits`.
pub fn forward(spec: &ModelSpec, w: &ModelWeights, state: &mut ForwardState, cache: &mut KvCache, token: u32, want_logits: bool) -> Result<()> {
    forward_tokens(spec, w, state, cache, &[token], want_logits)
}

/// Runs `tokens` at positions `cache.len..`, [`CPU_PREFILL_CHUNK`] at a time, appending their
/// keys/values to the cache; when `want_logits`, leaves the logits after the last token in
/// `state.logits`. Each token's result is the one running them one by one gives (the kernels'
/// arithmetic per row and token does not depend on the tile).
pub fn forward_tokens(spec: &ModelSpec, w: &ModelWeights, state: &mut ForwardState, cache: &mut KvCache, tokens: &[u32], want_logits: bool) -> Result<()> {
    if cache.len + tokens.len() > cache.capacity {
        return Err(Error::ContextFull { needed: cache.len + tokens.len(), capacity: cache.capacity });
    }
    if let Some(&bad) = tokens.iter().find(|&&t| t as usize >= spec.vocab_size) {
        return Err(Error::InvalidArgument(format!("token id {bad} is outside the vocabulary of {}", spec.vocab_size)));
    }
    cpu::threads::in_pool(|| {
        let chunks = tokens.chunks(CPU_PREFILL_CHUNK);
        let last = chunks.len().saturating_sub(1);
        for (i, chunk) in chunks.enumerate() {
            forward_chunk(spec, w, state, cache, chunk, want_logits && i == last);
        }
    });
    Ok(())
}

/// One pass over the layers for up to [`CPU_PREFILL_CHUNK`] tokens (checked by the caller).
fn forward_chunk(spec: &ModelSpec, w: &ModelWeights, s: &mut ForwardState, cache: &mut KvCache, tokens: &[u32], want_logits: bool) {
    let (n, pos0) = (tokens.len(), cache.len);
    let (dim, hd, kv_dim, q_dim, ffn) = (spec.dim, spec.head_dim, spec.kv_dim(), spec.q_dim(), spec.ffn_dim);
    for (t, &token) in tokens.iter().enumerate() {
        let x = &mut s.x[t * dim..(t + 1) * dim];
        w.token_embd.dequantize_row(token as usize, x);
        if let Some(scale) = spec.embed_scale {
            x.iter_mut().for_each(|v| *v *= scale);
        }
    }
    let (x, xb, xb2) = (&mut s.x[..n * dim], &mut s.xb[..n * dim], &mut s.xb2[..n * dim]);
    let (q, k, v, att) = (&mut s.q[..n * q_dim], &mut s.k[..n * kv_dim], &mut s.v[..n * kv_dim], &mut s.att[..n * q_dim]);
    let (gate, up) = (&mut s.gate[..n * ffn], &mut s.up[..n * ffn]);
    let (acts, kind) = (&mut s.acts, &mut s.acts_kind);
    for (l, lw) in w.layers.iter().enumerate() {
        rms_norm_tokens(x, &lw.attn_norm, spec.norm_eps, xb);
        *kind = None;
        mm(&lw.wq, xb, n, acts, kind, q);
        mm(&lw.wk, xb, n, acts, kind, k);
        mm(&lw.wv, xb, n, acts, kind, v);
        add_bias(q, &lw.bq);
        add_bias(k, &lw.bk);
        add_bias(v, &lw.bv);
        if let Some(nw) = &lw.q_norm {
            cpu::rms_norm_heads(q, nw, spec.norm_eps, hd);
        }
        if let Some(nw) = &lw.k_norm {
            cpu::rms_norm_heads(k, nw, spec.norm_eps, hd);
        }
        let inv_freq = &s.inv_freq[l];
        let af = spec.rope_attn_factor();
        for t in 0..n {
            let pos = pos0 + t;
            cpu::rope(&mut q[t * q_dim..(t + 1) * q_dim], hd, spec.rope_dims, pos, inv_freq, af, spec.rope_interleaved);
            cpu::rope(&mut k[t * kv_dim..(t + 1) * kv_dim], hd, spec.rope_dims, pos, inv_freq, af, spec.rope_interleaved);
        }
        let kv = pos0 * kv_dim..(pos0 + n) * kv_dim;
        cpu::f32_to_f16(k, &mut cache.k[l][kv.clone()]);
        cpu::f32_to_f16(v, &mut cache.v[l][kv]);
        // Causal: each token sees the cache up to and including its own position.
        let window = spec.sliding_window.filter(|_| spec.is_sliding_layer(l));
        cpu::attention(q, &cache.k[l], &cache.v[l], spec.n_heads, spec.n_kv_heads, hd, pos0..pos0 + n, window, spec.attn_scale, spec.attn_softcap, att);
        *kind = None;
        mm(&lw.wo, att, n, acts, kind, xb2);
        if let Some(nw) = &lw.post_attn_norm {
            xb.copy_from_slice(xb2);
            rms_norm_tokens(xb, nw, spec.norm_eps, xb2);
        }
        cpu::add_assign(x, xb2);

        rms_norm_tokens(x, &lw.ffn_norm, spec.norm_eps, xb);
        *kind = None;
        mm(&lw.w_gate, xb, n, acts, kind, gate);
        mm(&lw.w_up, xb, n, acts, kind, up);
        let act = match spec.activation {
            Activation::Silu => cpu::silu_mul,
            Activation::GeluTanh => cpu::gelu_mul,
        };
        let up = &*up;
        cpu::threads::for_each_mut(&mut gate.chunks_exact_mut(ffn).collect::<Vec<_>>(), n * ffn, |t, g| act(g, &up[t * ffn..(t + 1) * ffn]));
        *kind = None;
        mm(&lw.w_down, gate, n, acts, kind, xb2);
        if let Some(nw) = &lw.post_ffn_norm {
            xb.copy_from_slice(xb2);
            rms_norm_tokens(xb, nw, spec.norm_eps, xb2);
        }
        cpu::add_assign(x, xb2);
    }
    cache.len = pos0 + n;
    if want_logits {
        let last = (n - 1) * dim..n * dim;
        cpu::rms_norm(&x[last.clone()], &w.output_norm, spec.norm_eps, &mut xb[last.clone()]);
        *kind = None;
        let logits = &mut s.logits;
        mm(&w.output, &xb[last], 1, acts, kind, logits);
        if let Some(cap) = spec.final_softcap {
            cpu::soft_cap(logits, cap);
        }
    }
}
