//! The CPU backend: every op of the forward pass on f32 activations, with quantized weights
//! read through integer dot products.

pub mod acts;
pub mod dot;
mod matmul;
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
pub mod simd128;
pub mod threads;

pub use matmul::{matmul_prequantized, matvec, matvec_prequantized, TokenRows};

use crate::quant::{f16_bits_to_f32, GgmlType, RowOrder};
use half::f16;

/// The row order the CPU kernels read a matrix of `ty` fastest in, which the loaders put it in:
/// Q4_0 interleaved four rows at a time ([`RowOrder::Q4_0x4`]) in the wasm SIMD builds, whose
/// Q4_0 kernel then needs no reduction across a block's lanes; the file's order elsewhere.
pub fn row_order(ty: GgmlType) -> RowOrder {
    if cfg!(all(target_arch = "wasm32", target_feature = "simd128")) && ty == GgmlType::Q4_0 {
        RowOrder::Q4_0x4
    } else {
        RowOrder::Plain
    }
}

/// RMSNorm: `out = x / sqrt(mean(x²) + eps) * weight`.
pub fn rms_norm(x: &[f32], weight: &[f32], eps: f32, out: &mut [f32]) {
    let ss: f32 = x.iter().map(|v| v * v).sum::<f32>() / x.len() as f32;
    let scale = 1.0 / (ss + eps).sqrt();
    for ((o, v), w) in out.iter_mut().zip(x).zip(weight) {
        *o = v * scale * w;
    }
}

/// RMSNorm in place, per head of `head_dim` values (Qwen3 / Gemma 3 Q/K norm).
pub fn rms_norm_heads(x: &mut [f32], weight: &[f32], eps: f32, head_dim: usize) {
    for h in x.chunks_exact_mut(head_dim) {
        let ss: f32 = h.iter().map(|v| v * v).sum::<f32>() / head_dim as f32;
        let scale = 1.0 / (ss + eps).sqrt();
        for (v, w) in h.iter_mut().zip(weight) {
            *v *= scale * w;
        }
    }
}

/// Rotary position embedding in place over `x` (`n_heads × head_dim`), first `rot_dims` of each
/// head. `inv_freq[i]` is the angle per position of pair `i`. `interleaved`: pairs are adjacent
/// values (GGUF `llama`), else the two halves (rotate-half, NeoX / Hugging Face).
pub fn rope(x: &mut [f32], head_dim: usize, rot_dims: usize, pos: usize, inv_freq: &[f32], attn_factor: f32, interleaved: bool) {
    let half = rot_dims / 2;
    for h in x.chunks_exact_mut(head_dim) {
        for (i, &f) in inv_freq.iter().enumerate().take(half) {
            let theta = pos as f32 * f;
            let (sin, cos) = theta.sin_cos();
            let (cos, sin) = (cos * attn_factor, sin * attn_factor);
            let (a, b) = if interleaved { (2 * i, 2 * i + 1) } else { (i, i + half) };
            let (x0, x1) = (h[a], h[b]);
            h[a] = x0 * cos - x1 * sin;
            h[b] = x0 * sin + x1 * cos;
        }
    }
}

/// Softmax in place (in wasm SIMD builds by [`simd128::softmax`]: the sum in another order).
pub fn softmax(x: &mut [f32]) {
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    simd128::softmax(x);
    #[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
    {
        let max = x.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b));
        let mut sum = 0.0;
        for v in x.iter_mut() {
            *v = (*v - max).exp();
            sum += *v;
        }
        let inv = 1.0 / sum;
        x.iter_mut().for_each(|v| *v *= inv);
    }
}

/// `gate = silu(gate) * up` (in wasm SIMD builds four at a time by [`simd128::silu_mul`]).
pub fn silu_mul(gate: &mut [f32], up: &[f32]) {
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    let done = simd128::silu_mul(gate, up);
    #[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
    let done = 0;
    for (g, u) in gate[done..].iter_mut().zip(&up[done..]) {
        *g = *g / (1.0 + (-*g).exp()) * u;
    }
}

/// `gate = gelu_tanh(gate) * up` (Gemma).
pub fn gelu_mul(gate: &mut [f32], up: &[f32]) {
    const C: f32 = 0.797_884_6; // sqrt(2/pi)
    for (g, u) in gate.iter_mut().zip(up) {
        let x = *g;
        *g = 0.5 * x * (1.0 + (C * (x + 0.044715 * x * x * x)).tanh()) * u;
    }
}

/// `x = cap * tanh(x / cap)`.
pub fn soft_cap(x: &mut [f32], cap: f32) {
    x.iter_mut().for_each(|v| *v = cap * (*v / cap).tanh());
}

pub fn add_assign(x: &mut [f32], y: &[f32]) {
    x.iter_mut().zip(y).for_each(|(a, b)| *a += b);
}

/// Attention of one query position over cached keys/values `0..n_ctx` (positions
/// `first..n_ctx` for a sliding window). `k_cache`/`v_cache` are f16 `[pos][kv_head][head_dim]`.
/// The query and the attention weights are rounded to f16 before their dot products with the
/// f16 cache, accumulating in f32 (what ggml's f16 mat-muls do). The heads are split across the
/// threads of a running crew ([`threads::for_row_ranges`]); each head's arithmetic is the same
/// on every thread, so every thread count gives the same bits.
#[allow(clippy::too_many_arguments)]
pub fn attention(
    q: &[f32],
    k_cache: &[f16],
    v_cache: &[f16],
    n_heads: usize,
    n_kv_heads: usize,
    head_dim: usize,
    first: usize,
    n_ctx: usize,
    scale: f32,
    soft_cap_value: Option<f32>,
    out: &mut [f32],
) {
    assert!(head_dim <= 1024 && q.len() >= n_heads * head_dim, "attention: {n_heads} heads of {head_dim} values");
    let kv_dim = n_kv_heads * head_dim;
    let group = n_heads / n_kv_heads;
    // Head `h`'s output is "token" h of rows `head_dim` (the threads own disjoint heads).
    let out = TokenRows::new(&mut out[..n_heads * head_dim], head_dim);
    let work = 2 * n_heads * head_dim * (n_ctx - first);
    threads::for_row_ranges(n_heads, work, 1, |heads| {
        let mut scores = Vec::with_capacity(n_ctx - first);
        for h in heads {
            let kvh = h / group;
            // The query rounded to f16, in a scratch array (ModelSpec bounds head_dim at 1024).
            let mut q16 = [0.0f32; 1024];
            let qh = &mut q16[..head_dim];
            qh.iter_mut().zip(&q[h * head_dim..(h + 1) * head_dim]).for_each(|(o, &x)| *o = f16::from_f32(x).to_f32());
            scores.clear();
            for p in first..n_ctx {
                let k = &k_cache[p * kv_dim + kvh * head_dim..][..head_dim];
                scores.push(dot_f16(qh, k) * scale);
            }
            if let Some(cap) = soft_cap_value {
                soft_cap(&mut scores, cap);
            }
            softmax(&mut scores);
            // SAFETY: this range owns heads `heads`.
            let o = unsafe { out.rows_mut(h, 0..head_dim) };
            o.fill(0.0);
            for (i, p) in (first..n_ctx).enumerate() {
                let v = &v_cache[p * kv_dim + kvh * head_dim..][..head_dim];
                add_scaled_f16(o, f16::from_f32(scores[i]).to_f32(), v);
            }
        }
    });
}

/// `Σ a[i]·b[i]` of f32 values and f16 values, in f32.
#[inline]
pub fn dot_f16(a: &[f32], b: &[f16]) -> f32 {
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    if a.len() % 8 == 0 {
        return simd128::dot_f16(a, b);
    }
    a.iter().zip(b).map(|(x, y)| x * f16_bits_to_f32(y.to_bits())).sum()
}

/// `out[i] += w · v[i]` for f16 values `v`.
#[inline]
pub fn add_scaled_f16(out: &mut [f32], w: f32, v: &[f16]) {
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    if out.len() % 8 == 0 {
        return simd128::add_scaled_f16(out, w, v);
    }
    out.iter_mut().zip(v).for_each(|(o, y)| *o += w * f16_bits_to_f32(y.to_bits()));
}
