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

/// Scratch buffers of the forward pass, allocated once per session.
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
    pub logits: Vec<f32>,
    acts: QuantizedActs,
    scores: Vec<f32>,
    inv_freq: Vec<Vec<f32>>,
}

impl ForwardState {
    pub fn new(spec: &ModelSpec) -> ForwardState {
        ForwardState {
            x: vec![0.0; spec.dim],
            xb: vec![0.0; spec.dim],
            xb2: vec![0.0; spec.dim],
            q: vec![0.0; spec.q_dim()],
            k: vec![0.0; spec.kv_dim()],
            v: vec![0.0; spec.kv_dim()],
            att: vec![0.0; spec.q_dim()],
            gate: vec![0.0; spec.ffn_dim],
            up: vec![0.0; spec.ffn_dim],
            logits: vec![0.0; spec.vocab_size],
            acts: QuantizedActs::default(),
            scores: Vec::new(),
            inv_freq: (0..spec.n_layers).map(|l| spec.inv_freq(l)).collect(),
        }
    }
}

/// `out = W · x`, quantizing `x` only when `acts` does not already hold it in `W`'s pairing.
fn mv(w: &QMatrix, x: &[f32], acts: &mut QuantizedActs, out: &mut [f32]) {
    let kind = ActKind::for_weights(w.ty);
    if acts.kind != Some(kind) {
        acts.quantize(kind, x);
    }
    cpu::matvec_prequantized(w, acts, out);
}

fn add_bias(x: &mut [f32], b: &Option<Vec<f32>>) {
    if let Some(b) = b {
        cpu::add_assign(x, b);
    }
}

/// Runs token `token` at position `cache.len`, appends its keys/values to the cache and, when
/// `want_logits`, leaves the next-token logits in `state.logits`.
pub fn forward(spec: &ModelSpec, w: &ModelWeights, state: &mut ForwardState, cache: &mut KvCache, token: u32, want_logits: bool) -> Result<()> {
    let pos = cache.len;
    if pos >= cache.capacity {
        return Err(Error::ContextFull { needed: pos + 1, capacity: cache.capacity });
    }
    if token as usize >= spec.vocab_size {
        return Err(Error::InvalidArgument(format!("token id {token} is outside the vocabulary of {}", spec.vocab_size)));
    }
    let s = state;
    w.token_embd.dequantize_row(token as usize, &mut s.x);
    if let Some(scale) = spec.embed_scale {
        s.x.iter_mut().for_each(|v| *v *= scale);
    }
    let (hd, kv_dim) = (spec.head_dim, spec.kv_dim());
    for (l, lw) in w.layers.iter().enumerate() {
        cpu::rms_norm(&s.x, &lw.attn_norm, spec.norm_eps, &mut s.xb);
        s.acts.kind = None;
        mv(&lw.wq, &s.xb, &mut s.acts, &mut s.q);
        mv(&lw.wk, &s.xb, &mut s.acts, &mut s.k);
        mv(&lw.wv, &s.xb, &mut s.acts, &mut s.v);
        add_bias(&mut s.q, &lw.bq);
        add_bias(&mut s.k, &lw.bk);
        add_bias(&mut s.v, &lw.bv);
        if let Some(n) = &lw.q_norm {
            cpu::rms_norm_heads(&mut s.q, n, spec.norm_eps, hd);
        }
        if let Some(n) = &lw.k_norm {
            cpu::rms_norm_heads(&mut s.k, n, spec.norm_eps, hd);
        }
        let inv_freq = &s.inv_freq[l];
        let af = spec.rope_attn_factor();
        cpu::rope(&mut s.q, hd, spec.rope_dims, pos, inv_freq, af, spec.rope_interleaved);
        cpu::rope(&mut s.k, hd, spec.rope_dims, pos, inv_freq, af, spec.rope_interleaved);
        cache.k[l][pos * kv_dim..(pos + 1) * kv_dim].iter_mut().zip(&s.k).for_each(|(c, &x)| *c = f16::from_f32(x));
        cache.v[l][pos * kv_dim..(pos + 1) * kv_dim].iter_mut().zip(&s.v).for_each(|(c, &x)| *c = f16::from_f32(x));
        let first = match spec.sliding_window {
            Some(win) if spec.is_sliding_layer(l) => (pos + 1).saturating_sub(win),
            _ => 0,
        };
        cpu::attention(&s.q, &cache.k[l], &cache.v[l], spec.n_heads, spec.n_kv_heads, hd, first, pos + 1, spec.attn_scale, spec.attn_softcap, &mut s.scores, &mut s.att);
        s.acts.kind = None;
        mv(&lw.wo, &s.att, &mut s.acts, &mut s.xb2);
        if let Some(n) = &lw.post_attn_norm {
            s.xb.copy_from_slice(&s.xb2);
            cpu::rms_norm(&s.xb, n, spec.norm_eps, &mut s.xb2);
        }
        cpu::add_assign(&mut s.x, &s.xb2);

        cpu::rms_norm(&s.x, &lw.ffn_norm, spec.norm_eps, &mut s.xb);
        s.acts.kind = None;
        mv(&lw.w_gate, &s.xb, &mut s.acts, &mut s.gate);
        mv(&lw.w_up, &s.xb, &mut s.acts, &mut s.up);
        match spec.activation {
            Activation::Silu => cpu::silu_mul(&mut s.gate, &s.up),
            Activation::GeluTanh => cpu::gelu_mul(&mut s.gate, &s.up),
        }
        s.acts.kind = None;
        mv(&lw.w_down, &s.gate, &mut s.acts, &mut s.xb2);
        if let Some(n) = &lw.post_ffn_norm {
            s.xb.copy_from_slice(&s.xb2);
            cpu::rms_norm(&s.xb, n, spec.norm_eps, &mut s.xb2);
        }
        cpu::add_assign(&mut s.x, &s.xb2);
    }
    cache.len = pos + 1;
    if want_logits {
        cpu::rms_norm(&s.x, &w.output_norm, spec.norm_eps, &mut s.xb);
        s.acts.kind = None;
        mv(&w.output, &s.xb, &mut s.acts, &mut s.logits);
        if let Some(cap) = spec.final_softcap {
            cpu::soft_cap(&mut s.logits, cap);
        }
    }
    Ok(())
}
