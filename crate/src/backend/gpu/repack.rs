//! Weights repacked at load into the aligned `u32` layouts the WGSL kernels read
//! (`shaders/weights.wgsl`): codes first, then a region of scales where the format has one.
//! GGUF's own blocks (18 bytes for Q4_0, 34 for Q8_0, 210 for Q6_K) are not 4-byte aligned.
//! Every layout is exact: the kernels dequantize to the values the CPU's reference gives.

use crate::quant::{f16_at, k4_scales_mins, q5_k_values, q5_values, GgmlType, QMatrix, QK_K};
use half::bf16;

/// The layouts of `weights.wgsl`, numbered as its `FORMAT` constant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GpuFormat {
    /// 4 words of nibbles per 32 values (GGUF's order), f16 scales two per word.
    Q4_0 = 0,
    /// 8 words of i8 per 32 values, f16 scales two per word.
    Q8_0 = 1,
    /// GGUF's Q4_K super-blocks, already 36 words.
    Q4K = 2,
    /// GGUF's Q6_K super-blocks padded to 53 words.
    Q6K = 3,
    /// 8 words of i8 codes per 32 values, an f32 scale and an f32 offset per 32 (Q4_1, Q5_0,
    /// Q5_1, Q5_K: each block's values are `scale * code + offset` exactly).
    I8ScaleOffset = 4,
    /// Two f16 per word.
    F16 = 5,
    /// f32 (and BF16, widened exactly).
    F32 = 6,
}

impl GpuFormat {
    pub fn for_type(ty: GgmlType) -> GpuFormat {
        match ty {
            GgmlType::Q4_0 => GpuFormat::Q4_0,
            GgmlType::Q8_0 => GpuFormat::Q8_0,
            GgmlType::Q4K => GpuFormat::Q4K,
            GgmlType::Q6K => GpuFormat::Q6K,
            GgmlType::Q4_1 | GgmlType::Q5_0 | GgmlType::Q5_1 | GgmlType::Q5K => GpuFormat::I8ScaleOffset,
            GgmlType::F16 => GpuFormat::F16,
            GgmlType::F32 | GgmlType::BF16 => GpuFormat::F32,
        }
    }

    /// Words of one row of `cols` values, scales region excluded.
    pub fn row_words(self, cols: usize) -> usize {
        match self {
            GpuFormat::Q4_0 => cols / 8,
            GpuFormat::Q8_0 | GpuFormat::I8ScaleOffset => cols / 4,
            GpuFormat::Q4K => cols / QK_K * 36,
            GpuFormat::Q6K => cols / QK_K * 53,
            GpuFormat::F16 => cols / 2,
            GpuFormat::F32 => cols,
        }
    }

    /// Words of the scales region for `rows × cols`.
    pub fn scale_words(self, rows: usize, cols: usize) -> usize {
        let blocks = rows * cols / 32;
        match self {
            GpuFormat::Q4_0 | GpuFormat::Q8_0 => blocks.div_ceil(2),
            GpuFormat::I8ScaleOffset => blocks * 2,
            _ => 0,
        }
    }
}

/// One buffer's worth of rows, packed.
pub struct PackedPart {
    pub rows: usize,
    pub words: Vec<u32>,
    /// Word index where the scales region starts.
    pub scale_offset: usize,
}

/// Columns as the kernels see them: float rows are padded with zeros to a multiple of 32 (the
/// quantized types are always whole blocks of 32).
pub fn padded_cols(cols: usize) -> usize {
    cols.next_multiple_of(32)
}

/// Packs the given row ranges (each `(matrix, first row, count)`, all of one type and width),
/// one after the other, into one part.
pub fn pack(ranges: &[(&QMatrix, usize, usize)]) -> PackedPart {
    let (m0, ..) = ranges[0];
    let (ty, cols) = (m0.ty, m0.cols);
    let fmt = GpuFormat::for_type(ty);
    let rows: usize = ranges.iter().map(|r| r.2).sum();
    if cols % 32 != 0 {
        return pack_padded_floats(ranges, fmt);
    }
    let scale_offset = rows * fmt.row_words(cols);
    let mut words = Vec::with_capacity(scale_offset + fmt.scale_words(rows, cols));
    let mut scales16: Vec<u16> = Vec::new();
    let mut scales32: Vec<u32> = Vec::new();
    for &(m, first, n) in ranges {
        debug_assert!(m.ty == ty && m.cols == cols);
        // In the file's order, whatever order the CPU kernels keep the matrix in.
        let bytes = m.plain_rows(first, n);
        pack_bytes(ty, &bytes, &mut words, &mut scales16, &mut scales32);
    }
    debug_assert_eq!(words.len(), scale_offset);
    if !scales16.is_empty() {
        scales16.resize(scales16.len().next_multiple_of(2), 0);
        words.extend(scales16.chunks_exact(2).map(|p| p[0] as u32 | (p[1] as u32) << 16));
    }
    words.extend(scales32);
    PackedPart { rows, words, scale_offset }
}

/// Float rows (F32, F16, BF16) of any width, padded with zeros to [`padded_cols`].
fn pack_padded_floats(ranges: &[(&QMatrix, usize, usize)], fmt: GpuFormat) -> PackedPart {
    let (m0, ..) = ranges[0];
    let padded = padded_cols(m0.cols);
    let mut words = Vec::new();
    let mut row = vec![0.0f32; padded];
    for &(m, first, n) in ranges {
        for r in first..first + n {
            m.dequantize_row(r, &mut row[..m.cols]);
            match fmt {
                GpuFormat::F16 => words.extend(row.chunks_exact(2).map(|p| half::f16::from_f32(p[0]).to_bits() as u32 | (half::f16::from_f32(p[1]).to_bits() as u32) << 16)),
                _ => words.extend(row.iter().map(|v| v.to_bits())),
            }
        }
    }
    let rows = ranges.iter().map(|r| r.2).sum();
    PackedPart { rows, scale_offset: words.len(), words }
}

fn le_words(b: &[u8]) -> impl Iterator<Item = u32> + '_ {
    b.chunks_exact(4).map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
}

fn i8_words(codes: impl IntoIterator<Item = i8>) -> Vec<u32> {
    let bytes: Vec<u8> = codes.into_iter().map(|c| c as u8).collect();
    le_words(&bytes).collect()
}

fn pack_bytes(ty: GgmlType, bytes: &[u8], words: &mut Vec<u32>, scales16: &mut Vec<u16>, scales32: &mut Vec<u32>) {
    let f16_bits = |b: &[u8], i: usize| u16::from_le_bytes([b[i], b[i + 1]]);
    let mut push_scale_offset = |codes: &[i8], scale: f32, offset: f32, words: &mut Vec<u32>| {
        words.extend(i8_words(codes.iter().copied()));
        scales32.push(scale.to_bits());
        scales32.push(offset.to_bits());
    };
    let blocks = bytes.chunks_exact(ty.block_bytes());
    match ty {
        GgmlType::Q4_0 => blocks.for_each(|b| {
            scales16.push(f16_bits(b, 0));
            words.extend(le_words(&b[2..18]));
        }),
        GgmlType::Q8_0 => blocks.for_each(|b| {
            scales16.push(f16_bits(b, 0));
            words.extend(le_words(&b[2..34]));
        }),
        GgmlType::Q4K => words.extend(le_words(bytes)),
        GgmlType::Q6K => blocks.for_each(|b| {
            words.extend(le_words(&b[..208]));
            words.push(u16::from_le_bytes([b[208], b[209]]) as u32);
        }),
        GgmlType::Q4_1 => blocks.for_each(|b| {
            let codes: Vec<i8> = (0..32).map(|j| (if j < 16 { b[4 + j] & 0xF } else { b[4 + j - 16] >> 4 }) as i8).collect();
            push_scale_offset(&codes, f16_at(b, 0), f16_at(b, 2), words);
        }),
        GgmlType::Q5_0 => blocks.for_each(|b| {
            let codes: Vec<i8> = q5_values(&b[2..6], &b[6..22]).iter().map(|&q| q as i8 - 16).collect();
            push_scale_offset(&codes, f16_at(b, 0), 0.0, words);
        }),
        GgmlType::Q5_1 => blocks.for_each(|b| {
            let codes: Vec<i8> = q5_values(&b[4..8], &b[8..24]).iter().map(|&q| q as i8).collect();
            push_scale_offset(&codes, f16_at(b, 0), f16_at(b, 2), words);
        }),
        GgmlType::Q5K => blocks.for_each(|b| {
            let (d, dmin) = (f16_at(b, 0), f16_at(b, 2));
            let (sc, mn) = k4_scales_mins(&b[4..16]);
            let v = q5_k_values(&b[16..48], &b[48..176]);
            for s in 0..8 {
                let codes: Vec<i8> = v[s * 32..(s + 1) * 32].iter().map(|&q| q as i8).collect();
                push_scale_offset(&codes, d * sc[s] as f32, -(dmin * mn[s] as f32), words);
            }
        }),
        GgmlType::F16 => words.extend(le_words(bytes)),
        GgmlType::F32 => words.extend(le_words(bytes)),
        GgmlType::BF16 => words.extend(bytes.chunks_exact(2).map(|c| bf16::from_le_bytes([c[0], c[1]]).to_f32().to_bits())),
    }
}
