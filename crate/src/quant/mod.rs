//! Block formats of ggml (the ones real Q4_0 / Q4_K_M / Q8_0 files contain): their sizes, the
//! reference dequantization, the quantizers pocketlm itself uses (safetensors → 4 bits at load,
//! activations → 8-bit blocks for integer dot products).

mod blocks;
mod matrix;
pub mod row_order;
pub use matrix::{QMatrix, RareCodes, Reordered};
pub use row_order::RowOrder;
pub use blocks::*;

use half::{bf16, f16};

/// A tensor element type as GGUF numbers it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GgmlType {
    F32,
    F16,
    BF16,
    Q4_0,
    Q4_1,
    Q5_0,
    Q5_1,
    Q8_0,
    Q4K,
    Q5K,
    Q6K,
}

/// Values per super-block of the K-quants.
pub const QK_K: usize = 256;

impl GgmlType {
    pub fn from_id(id: u32) -> Option<GgmlType> {
        Some(match id {
            0 => GgmlType::F32,
            1 => GgmlType::F16,
            2 => GgmlType::Q4_0,
            3 => GgmlType::Q4_1,
            6 => GgmlType::Q5_0,
            7 => GgmlType::Q5_1,
            8 => GgmlType::Q8_0,
            12 => GgmlType::Q4K,
            13 => GgmlType::Q5K,
            14 => GgmlType::Q6K,
            30 => GgmlType::BF16,
            _ => return None,
        })
    }

    /// The name ggml gives a type id, for messages about types pocketlm does not read.
    pub fn id_name(id: u32) -> String {
        const NAMES: [&str; 31] = [
            "F32", "F16", "Q4_0", "Q4_1", "Q4_2", "Q4_3", "Q5_0", "Q5_1", "Q8_0", "Q8_1", "Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K", "Q8_K", "IQ2_XXS", "IQ2_XS",
            "IQ3_XXS", "IQ1_S", "IQ4_NL", "IQ3_S", "IQ2_S", "IQ4_XS", "I8", "I16", "I32", "I64", "F64", "IQ1_M", "BF16",
        ];
        match NAMES.get(id as usize) {
            Some(n) => format!("{n} (ggml type {id})"),
            None => format!("ggml type {id}"),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            GgmlType::F32 => "F32",
            GgmlType::F16 => "F16",
            GgmlType::BF16 => "BF16",
            GgmlType::Q4_0 => "Q4_0",
            GgmlType::Q4_1 => "Q4_1",
            GgmlType::Q5_0 => "Q5_0",
            GgmlType::Q5_1 => "Q5_1",
            GgmlType::Q8_0 => "Q8_0",
            GgmlType::Q4K => "Q4_K",
            GgmlType::Q5K => "Q5_K",
            GgmlType::Q6K => "Q6_K",
        }
    }

    /// Values per block.
    pub fn block_size(self) -> usize {
        match self {
            GgmlType::F32 | GgmlType::F16 | GgmlType::BF16 => 1,
            GgmlType::Q4_0 | GgmlType::Q4_1 | GgmlType::Q5_0 | GgmlType::Q5_1 | GgmlType::Q8_0 => 32,
            GgmlType::Q4K | GgmlType::Q5K | GgmlType::Q6K => QK_K,
        }
    }

    /// Bytes per block.
    pub fn block_bytes(self) -> usize {
        match self {
            GgmlType::F32 => 4,
            GgmlType::F16 | GgmlType::BF16 => 2,
            GgmlType::Q4_0 => 18,
            GgmlType::Q4_1 => 20,
            GgmlType::Q5_0 => 22,
            GgmlType::Q5_1 => 24,
            GgmlType::Q8_0 => 34,
            GgmlType::Q4K => 144,
            GgmlType::Q5K => 176,
            GgmlType::Q6K => 210,
        }
    }

    /// Bytes of one row of `n` values (`n` a multiple of the block size).
    pub fn row_bytes(self, n: usize) -> usize {
        n / self.block_size() * self.block_bytes()
    }
}

#[inline]
pub(crate) fn f16_at(b: &[u8], i: usize) -> f32 {
    f16_bits_to_f32(u16::from_le_bytes([b[i], b[i + 1]]))
}

/// An f16 (as its bits) to f32, exactly. wasm has no f16 instructions: there the magnitude's
/// bits are shifted into an f32's place and the exponent rebiased by an integer add (normal
/// f16s), or, for subnormal f16s, made the normal `2^-14·(1 + m/1024)` from which `2^-14` is
/// taken away in f32 — no operand is ever an f32 subnormal, on which x86 takes a microcode
/// assist of ~100 cycles per instruction (the scaling by 2^112 of the subnormal bit pattern this
/// replaced did: Q6_K's scales are subnormal f16s in real files, and a Qwen2.5-0.5B with its
/// FFN down matrices in Q6_K decoded 15 tok/s against Q4_K's 21). A few integer operations and
/// one float one, without the branches of a software conversion; infinities and NaNs, which no
/// sane scale is, take `half`'s path. Natively `half` uses the CPU's conversion instruction.
#[inline(always)]
pub fn f16_bits_to_f32(h: u16) -> f32 {
    if cfg!(not(target_arch = "wasm32")) || h & 0x7C00 == 0x7C00 {
        return f16::from_bits(h).to_f32();
    }
    const TWO_POW_MINUS_14: f32 = f32::from_bits(0x3880_0000);
    let magnitude = ((h & 0x7FFF) as u32) << 13;
    let value = if magnitude < 0x0080_0000 { f32::from_bits(magnitude + 0x3880_0000) - TWO_POW_MINUS_14 } else { f32::from_bits(magnitude + 0x3800_0000) };
    f32::from_bits(value.to_bits() | (((h & 0x8000) as u32) << 16))
}

/// Dequantizes `out.len()` values from `src` (whole blocks of type `ty`) into `out`.
pub fn dequantize(ty: GgmlType, src: &[u8], out: &mut [f32]) {
    let bs = ty.block_size();
    let bb = ty.block_bytes();
    assert_eq!(src.len(), out.len() / bs * bb, "dequantize: byte length does not match");
    match ty {
        GgmlType::F32 => {
            for (o, c) in out.iter_mut().zip(src.chunks_exact(4)) {
                *o = f32::from_le_bytes(c.try_into().unwrap());
            }
        }
        GgmlType::F16 => {
            for (o, c) in out.iter_mut().zip(src.chunks_exact(2)) {
                *o = f16::from_le_bytes([c[0], c[1]]).to_f32();
            }
        }
        GgmlType::BF16 => {
            for (o, c) in out.iter_mut().zip(src.chunks_exact(2)) {
                *o = bf16::from_le_bytes([c[0], c[1]]).to_f32();
            }
        }
        _ => {
            for (o, b) in out.chunks_exact_mut(bs).zip(src.chunks_exact(bb)) {
                match ty {
                    GgmlType::Q4_0 => dequant_q4_0(b, o),
                    GgmlType::Q4_1 => dequant_q4_1(b, o),
                    GgmlType::Q5_0 => dequant_q5_0(b, o),
                    GgmlType::Q5_1 => dequant_q5_1(b, o),
                    GgmlType::Q8_0 => dequant_q8_0(b, o),
                    GgmlType::Q4K => dequant_q4_k(b, o),
                    GgmlType::Q5K => dequant_q5_k(b, o),
                    GgmlType::Q6K => dequant_q6_k(b, o),
                    _ => unreachable!(),
                }
            }
        }
    }
}

/// Quantizes `x` (a multiple of the block size long) to `ty`. Supports the types pocketlm
/// writes: Q4_0 and Q8_0 (weights quantized at load), F16 and F32.
pub fn quantize(ty: GgmlType, x: &[f32]) -> Vec<u8> {
    let mut out = Vec::with_capacity(ty.row_bytes(x.len()));
    match ty {
        GgmlType::F32 => x.iter().for_each(|v| out.extend_from_slice(&v.to_le_bytes())),
        GgmlType::F16 => x.iter().for_each(|v| out.extend_from_slice(&f16::from_f32(*v).to_le_bytes())),
        GgmlType::Q4_0 => x.chunks_exact(32).for_each(|b| quantize_q4_0_block(b, &mut out)),
        GgmlType::Q8_0 => x.chunks_exact(32).for_each(|b| quantize_q8_0_block(b, &mut out)),
        _ => panic!("quantize: pocketlm does not write {}", ty.name()),
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn f16_conversion_equals_half_for_every_bit_pattern() {
        for h in 0..=u16::MAX {
            let want = f16::from_bits(h).to_f32();
            let got = f16_bits_to_f32(h);
            assert!(got.to_bits() == want.to_bits() || (got.is_nan() && want.is_nan()), "f16 bits {h:#06x}: {got} vs half's {want}");
        }
    }
}
