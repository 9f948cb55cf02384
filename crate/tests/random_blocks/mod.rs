//! Random rows of every ggml block type and random quantized activations, for tests and
//! benchmarks of the dot products and kernels.

use half::{bf16, f16};
use pocketlm::backend::cpu::acts::{ActKind, QuantizedActs};
use pocketlm::quant::{quantize, GgmlType};

/// Every weight type pocketlm reads.
#[allow(dead_code)] // not every user of this module reads it
pub const ALL_TYPES: [GgmlType; 11] = [
    GgmlType::F32,
    GgmlType::F16,
    GgmlType::BF16,
    GgmlType::Q8_0,
    GgmlType::Q4_0,
    GgmlType::Q4_1,
    GgmlType::Q5_0,
    GgmlType::Q5_1,
    GgmlType::Q4K,
    GgmlType::Q5K,
    GgmlType::Q6K,
];

/// Byte offsets of the f16 scales in each block type (random bytes elsewhere are valid values).
fn f16_fields(ty: GgmlType) -> &'static [usize] {
    match ty {
        GgmlType::Q4_1 | GgmlType::Q5_1 | GgmlType::Q4K | GgmlType::Q5K => &[0, 2],
        GgmlType::Q6K => &[208],
        _ => &[0],
    }
}

/// Sets every f16 scale of the whole blocks of `ty` in `blocks` to `scale`.
#[allow(dead_code)] // not every user of this module reads it
pub fn set_block_scales(ty: GgmlType, blocks: &mut [u8], scale: f16) {
    for block in blocks.chunks_exact_mut(ty.block_bytes()) {
        for &at in f16_fields(ty) {
            block[at..at + 2].copy_from_slice(&scale.to_le_bytes());
        }
    }
}

/// A random row of `n` values in `ty`: real quantization where pocketlm has a quantizer,
/// random blocks with sane f16 scales otherwise.
pub fn random_row(rng: &mut fastrand::Rng, ty: GgmlType, n: usize) -> Vec<u8> {
    let x: Vec<f32> = (0..n).map(|_| rng.f32() * 2.0 - 1.0).collect();
    match ty {
        GgmlType::F32 | GgmlType::F16 | GgmlType::Q4_0 | GgmlType::Q8_0 => quantize(ty, &x),
        GgmlType::BF16 => x.iter().flat_map(|&v| bf16::from_f32(v).to_le_bytes()).collect(),
        _ => {
            let mut row: Vec<u8> = (0..ty.row_bytes(n)).map(|_| rng.u8(..)).collect();
            for block in row.chunks_exact_mut(ty.block_bytes()) {
                for &at in f16_fields(ty) {
                    let scale = f16::from_f32(rng.f32() * 0.05 + 0.001);
                    block[at..at + 2].copy_from_slice(&scale.to_le_bytes());
                }
            }
            row
        }
    }
}


/// `tokens` rows of `n` random activations in (-2, 2), quantized as `kind`.
#[allow(dead_code)] // not every user of this module reads it
pub fn random_acts(rng: &mut fastrand::Rng, kind: ActKind, n: usize, tokens: usize) -> Vec<QuantizedActs> {
    (0..tokens)
        .map(|_| {
            let x: Vec<f32> = (0..n).map(|_| (rng.f32() - 0.5) * 4.0).collect();
            let mut a = QuantizedActs::default();
            a.quantize(kind, &x);
            a
        })
        .collect()
}
