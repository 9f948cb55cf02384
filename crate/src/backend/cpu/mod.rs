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
        let n = n_ctx - first;
        let (mut q16, mut scores) = (Vec::new(), Vec::new());
        // One key or value row in f32 (ModelSpec bounds head_dim at 1024), converted once for
        // all the heads of this range that read it.
        let mut row = [0.0f32; 1024];
        let row = &mut row[..head_dim];
        let mut h0 = heads.start;
        while h0 < heads.end {
            let kvh = h0 / group;
            let h1 = ((kvh + 1) * group).min(heads.end);
            let m = h1 - h0;
            // The queries rounded to f16.
            q16.clear();
            q16.extend(q[h0 * head_dim..h1 * head_dim].iter().map(|&x| f16::from_f32(x).to_f32()));
            scores.clear();
            scores.resize(m * n, 0.0);
            for (i, p) in (first..n_ctx).enumerate() {
                f16_to_f32(&k_cache[p * kv_dim + kvh * head_dim..][..head_dim], row);
                for (j, qh) in q16.chunks_exact(head_dim).enumerate() {
                    scores[j * n + i] = dot_f32(qh, row) * scale;
                }
            }
            for s in scores.chunks_exact_mut(n) {
                if let Some(cap) = soft_cap_value {
                    soft_cap(s, cap);
                }
                softmax(s);
                // The weights rounded to f16, as the value rows are.
                s.iter_mut().for_each(|w| *w = f16::from_f32(*w).to_f32());
            }
            // SAFETY: this range owns heads `heads` ("tokens" of `out`).
            let o = unsafe { out.tokens_mut(h0..h1) };
            o.fill(0.0);
            for (i, p) in (first..n_ctx).enumerate() {
                f16_to_f32(&v_cache[p * kv_dim + kvh * head_dim..][..head_dim], row);
                for (j, oh) in o.chunks_exact_mut(head_dim).enumerate() {
                    add_scaled(oh, scores[j * n + i], row);
                }
            }
            h0 = h1;
        }
    });
}

/// f16 values as f32, exactly (in wasm SIMD builds eight at a time).
#[inline]
pub fn f16_to_f32(src: &[f16], dst: &mut [f32]) {
    assert_eq!(src.len(), dst.len(), "f16_to_f32 of {} values into {}", src.len(), dst.len());
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    let done = simd128::f16_to_f32(src, dst);
    #[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
    let done = 0;
    dst[done..].iter_mut().zip(&src[done..]).for_each(|(o, h)| *o = f16_bits_to_f32(h.to_bits()));
}

/// `Σ a[i]·b[i]` in f32 (in wasm SIMD builds, for lengths that are multiples of 8, in four
/// lanes of pairs summed at the end).
#[inline]
pub fn dot_f32(a: &[f32], b: &[f32]) -> f32 {
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    if a.len() % 8 == 0 {
        return simd128::dot_f32(a, b);
    }
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// `out[i] += w · v[i]`.
#[inline]
pub fn add_scaled(out: &mut [f32], w: f32, v: &[f32]) {
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    if out.len() % 8 == 0 {
        return simd128::add_scaled(out, w, v);
    }
    out.iter_mut().zip(v).for_each(|(o, y)| *o += w * y);
}
