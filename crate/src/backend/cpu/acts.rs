//! Activations quantized once per mat-vec input, in the block type each weight type pairs with
//! (as llama.cpp's `vec_dot_type`): Q8_0 for Q4_0/Q5_0/Q8_0, Q8_1 for Q4_1/Q5_1, Q8_K for the
//! K-quants, f16-rounded values for F16 weights, plain f32 otherwise.

use crate::quant::{q8_k_block, GgmlType, QK_K};
use half::f16;

/// Which activation form a weight type's dot product reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActKind {
    Q8_0,
    Q8_1,
    Q8K,
    F16,
    F32,
}

impl ActKind {
    pub fn for_weights(ty: GgmlType) -> ActKind {
        match ty {
            GgmlType::Q4_0 | GgmlType::Q5_0 | GgmlType::Q8_0 => ActKind::Q8_0,
            GgmlType::Q4_1 | GgmlType::Q5_1 => ActKind::Q8_1,
            GgmlType::Q4K | GgmlType::Q5K | GgmlType::Q6K => ActKind::Q8K,
            GgmlType::F16 => ActKind::F16,
            GgmlType::F32 | GgmlType::BF16 => ActKind::F32,
        }
    }
}

/// One activation vector in one [`ActKind`]. Buffers are reused between calls.
#[derive(Debug, Default)]
pub struct QuantizedActs {
    pub kind: Option<ActKind>,
    /// Scale per block (32 values, or 256 for Q8_K).
    pub d: Vec<f32>,
    /// For Q8_1: `d * sum(q)` per block.
    pub s: Vec<f32>,
    /// Σ q of each block of 32 (Q8_0, Q8_1), of each 16 values (Q8_K).
    pub bsums: Vec<i32>,
    pub q: Vec<i8>,
    /// F16-rounded or plain values.
    pub f: Vec<f32>,
}

impl QuantizedActs {
    pub fn quantize(&mut self, kind: ActKind, x: &[f32]) {
        self.kind = Some(kind);
        self.d.clear();
        self.s.clear();
        self.f.clear();
        self.bsums.clear();
        match kind {
            ActKind::Q8_0 | ActKind::Q8_1 => {
                self.q.resize(x.len(), 0);
                for (b, q) in x.chunks_exact(32).zip(self.q.chunks_exact_mut(32)) {
                    let (d, v, sum) = q8_0_with_sum(b.try_into().expect("a block of 32"));
                    q.copy_from_slice(&v);
                    // The scale is stored as f16 in ggml's blocks: round it the same way.
                    let d16 = f16::from_f32(d).to_f32();
                    self.d.push(d16);
                    self.bsums.push(sum);
                    if kind == ActKind::Q8_1 {
                        self.s.push(f16::from_f32(sum as f32 * d).to_f32());
                    }
                }
            }
            ActKind::Q8K => {
                self.q.resize(x.len(), 0);
                self.bsums.resize(x.len() / 16, 0);
                for ((b, q), bs) in x.chunks_exact(QK_K).zip(self.q.chunks_exact_mut(QK_K)).zip(self.bsums.chunks_exact_mut(16)) {
                    self.d.push(q8_k_block(b, q, bs));
                }
            }
            ActKind::F16 => self.f.extend(x.iter().map(|&v| f16::from_f32(v).to_f32())),
            ActKind::F32 => self.f.extend_from_slice(x),
        }
    }
}

/// [`crate::quant::q8_0_block`] and the sum of its codes: by the SIMD quantizer where the build has one (the
/// same bits).
#[inline]
fn q8_0_with_sum(x: &[f32; 32]) -> (f32, [i8; 32], i32) {
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    return super::simd128::q8_0_acts_block(x);
    #[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
    {
        let (d, v) = crate::quant::q8_0_block(x);
        (d, v, v.iter().map(|&q| q as i32).sum())
    }
}
