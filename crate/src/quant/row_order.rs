//! The order of a matrix's rows in memory: the file's (row after row) or Q4_0 / Q5_0 / Q8_0 /
//! Q4_K rows interleaved four at a time, the order the wasm SIMD kernels read fastest. Same
//! bytes, same size: the CPU loader reorders a file's Q4_0 and Q5_0 matrices in place (and
//! Q8_0's and Q4_K's where the engine fuses the relaxed dot-add:
//! [`crate::backend::cpu::row_order`]). Q4_K's groups hold their super-blocks one after another
//! ([`Q4_K_X4_BLOCK`] has the layout); the rest of this description is the others'.
//!
//! A group of four rows of `nb` blocks (the four rows' bytes) holds first the rows' scales,
//! block by block (`8·b + 2·k`: row `k`'s f16 scale of block `b`), then the rows' codes block
//! by block, [`x4_block_bytes`] each: Q5_0's 16 bytes of fifth bits, then the codes of the four
//! rows in vectors of 16 bytes, byte `16·c + 4·k + i` of them byte `4·c + i` of row `k`'s codes
//! (Q4_0 and Q5_0: 16 bytes of nibbles a row, four vectors; Q8_0: its 32 signed bytes, eight
//! vectors). One 16-byte load then holds four bytes of each row: a 4-byte dot product against
//! the activations' four values, broadcast, leaves row `k`'s sum in lane `k`, where the file's
//! order needs a reduction across rows per block (Q4_0 and Q5_0: the low nibbles of vector `c`
//! are values `4c..4c+4`, the high ones `16+4c..16+4c+4`; Q8_0: vector `c` is values
//! `4c..4c+4`). Byte `4·k + i` of Q5_0's fifth bits holds, in bit `c`, the
//! fifth bit of value `4c + i` of row `k` and, in bit `4 + c`, that of value `16 + 4c + i`: a
//! 16-bit shift by `4 - c` (left) or `c` (right) puts the bits of a vector of nibbles at bit 4 of
//! its bytes. The rows past the last whole group keep the file's order, where they already lie.

use std::borrow::Cow;

use super::{GgmlType, RareCodes};

/// How a matrix's rows lie in its bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RowOrder {
    /// Row after row, each the file's blocks.
    #[default]
    Plain,
    /// Q4_0 rows in groups of [`GROUP_ROWS`], as this module's description lays out.
    Q4_0x4,
    /// Q5_0 rows in groups of [`GROUP_ROWS`], as this module's description lays out.
    Q5_0x4,
    /// Q8_0 rows in groups of [`GROUP_ROWS`], as this module's description lays out.
    Q8_0x4,
    /// Q4_K rows in groups of [`GROUP_ROWS`], super-block by super-block ([`Q4_K_X4_BLOCK`]).
    Q4Kx4,
}

impl RowOrder {
    /// The interleaved order of `ty`'s rows, where it has one (Q4_0, Q5_0, Q8_0).
    pub fn interleaved(ty: GgmlType) -> Option<RowOrder> {
        match ty {
            GgmlType::Q4_0 => Some(RowOrder::Q4_0x4),
            GgmlType::Q5_0 => Some(RowOrder::Q5_0x4),
            GgmlType::Q8_0 => Some(RowOrder::Q8_0x4),
            GgmlType::Q4K => Some(RowOrder::Q4Kx4),
            _ => None,
        }
    }

    /// Whether a matrix of `ty` may lie in this order.
    pub fn holds(self, ty: GgmlType) -> bool {
        self == RowOrder::Plain || RowOrder::interleaved(ty) == Some(self)
    }
}

/// Rows per interleaved group.
pub const GROUP_ROWS: usize = 4;

/// Bytes per block of an interleaved group of `ty` after the group's scales: the four rows'
/// codes ([`code_bytes`] each), after Q5_0's 16 of fifth bits.
pub const fn x4_block_bytes(ty: GgmlType) -> usize {
    match ty {
        GgmlType::Q5_0 => 16 + 4 * code_bytes(ty),
        _ => 4 * code_bytes(ty),
    }
}

/// Bytes of codes per row and block of an interleaved type: 16 of nibbles (Q4_0, Q5_0), 32
/// signed bytes (Q8_0).
const fn code_bytes(ty: GgmlType) -> usize {
    match ty {
        GgmlType::Q8_0 => 32,
        _ => 16,
    }
}

/// Panics unless `ty` has an interleaved order. In the file's blocks of Q4_0, Q5_0 and Q8_0, the scale's
/// 2 bytes lead, the codes end the block and Q5_0's 4 of fifth bits lie between.
fn check_interleaved(ty: GgmlType) {
    assert!(RowOrder::interleaved(ty).is_some(), "{} has no interleaved order", ty.name());
}

/// The fifth-bit byte `4·k + i` of the layout (bits `c` and `4 + c`) from a Q5_0 block's `qh`.
fn fifth_bits_byte(qh: u32, i: usize) -> u8 {
    (0..4).fold(0, |byte, c| byte | (((qh >> (4 * c + i)) & 1) << c) as u8 | (((qh >> (16 + 4 * c + i)) & 1) << (4 + c)) as u8)
}

/// A Q5_0 block's `qh` from the four fifth-bit bytes of its row (the inverse of
/// [`fifth_bits_byte`]).
fn qh_of(bytes: &[u8]) -> u32 {
    bytes.iter().enumerate().fold(0, |qh, (i, &byte)| {
        (0..4).fold(qh, |qh, c| qh | ((byte as u32 >> c) & 1) << (4 * c + i) | ((byte as u32 >> (4 + c)) & 1) << (16 + 4 * c + i))
    })
}

/// Reorders the whole groups of `rows` rows of `ty` (Q4_0, Q5_0 or Q8_0) of `cols` values (`bytes`,
/// in the file's order) into its interleaved order ([`RowOrder::interleaved`]), in place, and
/// returns the matrix's [`RareCodes`]: each group scanned while its copy is in the cache, so
/// that the first prefill need not read the whole matrix again for them (SmolLM2-135M Q8_0:
/// 16 ms of it, one thread).
pub fn interleave(ty: GgmlType, bytes: &mut [u8], rows: usize, cols: usize) -> RareCodes {
    check_interleaved(ty);
    if ty == GgmlType::Q4K {
        return q4_k_interleave(bytes, rows, cols);
    }
    let (rb, bb, xb, cb) = (ty.row_bytes(cols), ty.block_bytes(), x4_block_bytes(ty), code_bytes(ty));
    assert_eq!(bytes.len(), rows * rb, "{} matrix of {rows}x{cols}", ty.name());
    let nb = rb / bb;
    let grouped = rows / GROUP_ROWS * GROUP_ROWS * rb;
    let mut rare = super::block_rare_codes(ty, &bytes[grouped..]);
    let mut plain = vec![0u8; GROUP_ROWS * rb];
    for group in bytes.chunks_exact_mut(GROUP_ROWS * rb) {
        plain.copy_from_slice(group);
        rare = rare.or(super::block_rare_codes(ty, &plain));
        let (scales, codes) = group.split_at_mut(8 * nb);
        for (b, (sc, x)) in scales.chunks_exact_mut(8).zip(codes.chunks_exact_mut(xb)).enumerate() {
            let (fifth, vectors) = x.split_at_mut(xb - 4 * cb);
            for k in 0..GROUP_ROWS {
                let block = &plain[k * rb + b * bb..][..bb];
                sc[2 * k..2 * k + 2].copy_from_slice(&block[..2]);
                let qs = &block[bb - cb..];
                for c in 0..cb / 4 {
                    vectors[16 * c + 4 * k..][..4].copy_from_slice(&qs[4 * c..4 * c + 4]);
                }
                if !fifth.is_empty() {
                    let qh = u32::from_le_bytes(block[2..6].try_into().expect("4 bytes"));
                    for i in 0..4 {
                        fifth[4 * k + i] = fifth_bits_byte(qh, i);
                    }
                }
            }
        }
    }
    rare
}

/// Row `r` of an interleaved matrix of `ty` of `rows × cols` in the file's order, into `out`
/// (one row's bytes), its scales as the file's (`scale_shift`: [`x4_normalize_scales`]'s).
pub fn x4_row(ty: GgmlType, bytes: &[u8], rows: usize, cols: usize, scale_shift: u8, r: usize, out: &mut [u8]) {
    check_interleaved(ty);
    let (rb, bb, xb, cb) = (ty.row_bytes(cols), ty.block_bytes(), x4_block_bytes(ty), code_bytes(ty));
    assert!(r < rows && out.len() == rb && bytes.len() == rows * rb);
    if r >= rows / GROUP_ROWS * GROUP_ROWS {
        return out.copy_from_slice(&bytes[r * rb..][..rb]);
    }
    if ty == GgmlType::Q4K {
        return q4_k_x4_row(&bytes[r / GROUP_ROWS * GROUP_ROWS * rb..][..GROUP_ROWS * rb], r % GROUP_ROWS, out);
    }
    let nb = rb / bb;
    let (group, k) = (&bytes[r / GROUP_ROWS * GROUP_ROWS * rb..][..GROUP_ROWS * rb], r % GROUP_ROWS);
    for (b, block) in out.chunks_exact_mut(bb).enumerate() {
        let scale = u16::from_le_bytes([group[8 * b + 2 * k], group[8 * b + 2 * k + 1]]);
        block[..2].copy_from_slice(&unshifted_scale(scale, scale_shift).to_le_bytes());
        let x = &group[8 * nb + xb * b..][..xb];
        let (fifth, vectors) = x.split_at(xb - 4 * cb);
        for c in 0..cb / 4 {
            block[bb - cb + 4 * c..][..4].copy_from_slice(&vectors[16 * c + 4 * k..][..4]);
        }
        if !fifth.is_empty() {
            block[2..6].copy_from_slice(&qh_of(&fifth[4 * k..4 * k + 4]).to_le_bytes());
        }
    }
}

/// Rows `first..first + n` of a matrix in `order` in the file's order: borrowed when they lie so
/// (`scale_shift`: an interleaved matrix's, [`x4_normalize_scales`]).
#[allow(clippy::too_many_arguments)]
pub fn plain_rows(order: RowOrder, ty: GgmlType, bytes: &[u8], rows: usize, cols: usize, scale_shift: u8, first: usize, n: usize) -> Cow<'_, [u8]> {
    let rb = ty.row_bytes(cols);
    assert!(first + n <= rows, "rows {first}..{} of {rows}", first + n);
    match order {
        RowOrder::Plain => Cow::Borrowed(&bytes[first * rb..(first + n) * rb]),
        RowOrder::Q4_0x4 | RowOrder::Q5_0x4 | RowOrder::Q8_0x4 | RowOrder::Q4Kx4 => {
            let mut out = vec![0u8; n * rb];
            for (i, row) in out.chunks_exact_mut(rb).enumerate() {
                x4_row(ty, bytes, rows, cols, scale_shift, first + i, row);
            }
            Cow::Owned(out)
        }
    }
}

/// Makes every nonzero scale of the groups of an interleaved matrix a normal f16 where one
/// power of two can: the scales times `2^k`, exactly, for the least `k` that lifts the smallest
/// subnormal one to 2^-14, unless that would take the largest past f16's range (or the matrix
/// holds an infinite or NaN scale); returns `k` (0: the scales as they were). The SIMD kernels
/// convert a group's four scales by scaling their bits by `2^(112 - k)`, one multiply, which
/// on x86 takes a microcode assist where those bits are an f32 subnormal (a subnormal f16:
/// Q8_0's scale of a block of weights below 0.0078): 10× slower decode for such a matrix.
/// [`x4_row`] gives the file's scales back. The rows past the last group keep theirs.
pub fn x4_normalize_scales(ty: GgmlType, bytes: &mut [u8], rows: usize, cols: usize) -> u8 {
    check_interleaved(ty);
    if ty == GgmlType::Q4K {
        // Its kernels convert `d` and `dmin` by the subnormal-safe conversion, once a
        // super-block.
        return 0;
    }
    let rb = ty.row_bytes(cols);
    let (nb, grouped) = (rb / ty.block_bytes(), rows / GROUP_ROWS * GROUP_ROWS * rb);
    let scale_bytes = 8 * nb;
    // The shift the smallest subnormal needs (10 - ⌊log2 m⌋ for its mantissa m), and the
    // largest exponent.
    let (mut need, mut top) = (0u16, 0u16);
    for group in bytes[..grouped].chunks_exact(GROUP_ROWS * rb) {
        for h in group[..scale_bytes].chunks_exact(2).map(|h| u16::from_le_bytes([h[0], h[1]]) & 0x7FFF) {
            match h >> 10 {
                0 if h != 0 => need = need.max(10 - (15 - h.leading_zeros() as u16)),
                e => top = top.max(e),
            }
        }
    }
    if need == 0 || top + need > 30 {
        return 0;
    }
    for group in bytes[..grouped].chunks_exact_mut(GROUP_ROWS * rb) {
        for h in group[..scale_bytes].chunks_exact_mut(2) {
            let shifted = shifted_scale(u16::from_le_bytes([h[0], h[1]]), need as u8);
            h.copy_from_slice(&shifted.to_le_bytes());
        }
    }
    need as u8
}

/// The f16 `h` times `2^k` (exact: no result past f16's normals, as [`x4_normalize_scales`]
/// picks `k`), a subnormal one renormalized.
fn shifted_scale(h: u16, k: u8) -> u16 {
    let (sign, magnitude, k) = (h & 0x8000, h & 0x7FFF, k as u16);
    if magnitude == 0 || k == 0 {
        return h;
    }
    if magnitude >> 10 != 0 {
        return sign | (magnitude + (k << 10));
    }
    // m·2^-24 with m's top bit at p: 2^(p - 24 + k)·(m / 2^p), exponent field p - 9 + k ≥ 1.
    let p = 15 - magnitude.leading_zeros() as u16;
    sign | ((p + k - 9) << 10) | ((magnitude << (10 - p)) & 0x3FF)
}

/// The inverse of [`shifted_scale`]: `h` (so shifted by `k`) divided by `2^k`.
fn unshifted_scale(h: u16, k: u8) -> u16 {
    let (sign, magnitude, k) = (h & 0x8000, h & 0x7FFF, k as u16);
    if magnitude == 0 || k == 0 {
        return h;
    }
    let e = magnitude >> 10;
    if e > k {
        return sign | (magnitude - (k << 10));
    }
    // Back to a subnormal: the mantissa with its leading one, shifted right by 1 + k - e.
    sign | ((0x400 | (magnitude & 0x3FF)) >> (1 + k - e))
}

/// Whether some block scale of an interleaved matrix of `ty` is infinite or NaN (as
/// [`super::has_nonfinite_block_scale`] for the file's order).
pub fn x4_has_nonfinite_scale(ty: GgmlType, bytes: &[u8], rows: usize, cols: usize) -> bool {
    check_interleaved(ty);
    if ty == GgmlType::Q4K {
        // As the file order's scan, which leaves the K-quants' scales to their kernels.
        return super::has_nonfinite_block_scale(ty, bytes);
    }
    let rb = ty.row_bytes(cols);
    let grouped = rows / GROUP_ROWS * GROUP_ROWS * rb;
    let nb = rb / ty.block_bytes();
    // Each group's scales lie together, four f16 to a u64 (8·nb bytes): a lane's exponent all
    // ones is a zero lane of `(v & E) ^ E`, found by the carry test of a zero 16-bit lane.
    const E: u64 = 0x7C00_7C00_7C00_7C00;
    let exponent_ones = |scales: &[u8]| {
        let zero_lanes = scales.chunks_exact(8).fold(0u64, |seen, s| {
            let x = (u64::from_le_bytes(s.try_into().expect("8 bytes")) & E) ^ E;
            seen | (x.wrapping_sub(0x0001_0001_0001_0001) & !x & 0x8000_8000_8000_8000)
        });
        zero_lanes != 0
    };
    bytes[..grouped].chunks_exact(GROUP_ROWS * rb).any(|g| exponent_ones(&g[..8 * nb])) || super::has_nonfinite_block_scale(ty, &bytes[grouped..])
}

/// Whether some code of an interleaved Q8_0 matrix is -128 (as the file order's scan,
/// [`super::q8_0_rare_codes`], whose code scan takes the rows past the last group; the other
/// types hold no such code).
pub fn x4_has_q8_0_min(ty: GgmlType, bytes: &[u8], rows: usize, cols: usize) -> bool {
    check_interleaved(ty);
    if ty != GgmlType::Q8_0 {
        return false;
    }
    let rb = ty.row_bytes(cols);
    let grouped = rows / GROUP_ROWS * GROUP_ROWS * rb;
    let scales = 8 * (rb / ty.block_bytes());
    // A group's bytes past its scales are all codes (no fifth bits).
    bytes[..grouped].chunks_exact(GROUP_ROWS * rb).any(|g| super::blocks::codes_hold_min(&g[scales..])) || super::blocks::q8_0_has_min_code(&bytes[grouped..])
}

/// Bytes of a super-block of a [`RowOrder::Q4Kx4`] group: the four rows' 144 each. The group
/// holds its super-blocks one after another, each laid out as
/// - bytes 0..8: the rows' `d` (f16, row `k` at `2k`), 8..16 their `dmin`;
/// - 16..64: their six-bit scales and mins, repacked for the kernels ([`q4_k_x4_scales`]):
///   at index `i = 8p + 2k + j` (`p` in 0..2, `j` in 0..2) of the 16 of each half `h`, row `k`'s
///   scale (or min) of sub-block `4h + 2p + j`, so that the bytes widened to u16 put each row's
///   pair of sub-blocks `2p, 2p + 1` (of a half) in its own 32-bit lane; bytes 16..32 hold the
///   low four bits of the scales (half 0 in the low nibbles, half 1 in the high ones), 32..48
///   those of the mins, 48..64 the two high bits of all four (at index `i`, bits `2·q..2·q + 2`
///   for q = scales of half 0, scales of half 1, mins of half 0, mins of half 1);
/// - 64..576: the eight sub-blocks of 32 values, 64 bytes each, as an interleaved Q4_0 block's
///   codes: vector `c` (16 bytes) holds at byte `4k + i` row `k`'s value `4c + i` of the
///   sub-block in its low nibble and value `16 + 4c + i` in its high one.
pub const Q4_K_X4_BLOCK: usize = GROUP_ROWS * 144;

/// The repacked scale index `i` (of a half) of row `k`, sub-block `j` of pair `p`.
const fn q4_k_x4_index(k: usize, p: usize, j: usize) -> usize {
    8 * p + 2 * k + j
}

/// Bytes 16..64 of a [`Q4_K_X4_BLOCK`] from the four rows' scales and mins (`sc[k]`, `mn[k]`).
fn q4_k_x4_scales(sc: &[[u8; 8]; GROUP_ROWS], mn: &[[u8; 8]; GROUP_ROWS]) -> [u8; 48] {
    let mut out = [0u8; 48];
    for k in 0..GROUP_ROWS {
        for p in 0..2 {
            for j in 0..2 {
                let i = q4_k_x4_index(k, p, j);
                let (s0, s1, m0, m1) = (sc[k][2 * p + j], sc[k][4 + 2 * p + j], mn[k][2 * p + j], mn[k][4 + 2 * p + j]);
                out[i] = (s0 & 15) | (s1 & 15) << 4;
                out[16 + i] = (m0 & 15) | (m1 & 15) << 4;
                out[32 + i] = s0 >> 4 | (s1 >> 4) << 2 | (m0 >> 4) << 4 | (m1 >> 4) << 6;
            }
        }
    }
    out
}

/// Row `k`'s scales and mins back from bytes 16..64 of a [`Q4_K_X4_BLOCK`].
fn q4_k_x4_scales_of(packed: &[u8], k: usize) -> ([u8; 8], [u8; 8]) {
    let (mut sc, mut mn) = ([0u8; 8], [0u8; 8]);
    for p in 0..2 {
        for j in 0..2 {
            let i = q4_k_x4_index(k, p, j);
            let (lo, mlo, high) = (packed[i], packed[16 + i], packed[32 + i]);
            sc[2 * p + j] = (lo & 15) | (high & 3) << 4;
            sc[4 + 2 * p + j] = lo >> 4 | ((high >> 2) & 3) << 4;
            mn[2 * p + j] = (mlo & 15) | ((high >> 4) & 3) << 4;
            mn[4 + 2 * p + j] = mlo >> 4 | (high >> 6) << 4;
        }
    }
    (sc, mn)
}

/// The file's 12 bytes of six-bit scales and mins (the inverse of
/// [`super::k4_scales_mins`]).
fn k4_pack_scales_mins(sc: &[u8; 8], mn: &[u8; 8]) -> [u8; 12] {
    let mut q = [0u8; 12];
    for j in 0..4 {
        q[j] = sc[j] | (sc[j + 4] >> 4) << 6;
        q[j + 4] = mn[j] | (mn[j + 4] >> 4) << 6;
        q[j + 8] = (sc[j + 4] & 15) | (mn[j + 4] & 15) << 4;
    }
    q
}

/// The file's codes of a Q4_K super-block hold, in word `c` (0..8) of 64-value chunk `j`
/// (bytes `32j + 4c..`), values `4c..4c + 4` of the chunk: sub-block `2j` in the low nibbles,
/// `2j + 1` in the high ones. For `j` in 0..4 and `c` in 0..4, calls `f(j, c, (low, high))`
/// with the byte offsets, within a group's 512 bytes of interleaved codes, of row `k`'s word of
/// vector `c` of sub-blocks `2j` and `2j + 1`: each of those holds its sub-block's nibbles of
/// the file's words `c` (as its low nibbles) and `4 + c` (as its high ones).
fn q4_k_x4_words(k: usize, mut f: impl FnMut(usize, usize, (usize, usize))) {
    for j in 0..4 {
        for c in 0..4 {
            f(j, c, (64 * 2 * j + 16 * c + 4 * k, 64 * (2 * j + 1) + 16 * c + 4 * k));
        }
    }
}

/// A little-endian u32 at byte `at` of `b`.
fn word(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

/// [`interleave`] of Q4_K ([`Q4_K_X4_BLOCK`]).
fn q4_k_interleave(bytes: &mut [u8], rows: usize, cols: usize) -> RareCodes {
    let ty = GgmlType::Q4K;
    let rb = ty.row_bytes(cols);
    assert_eq!(bytes.len(), rows * rb, "Q4_K matrix of {rows}x{cols}");
    let rare = super::block_rare_codes(ty, bytes);
    let mut plain = vec![0u8; GROUP_ROWS * rb];
    for group in bytes.chunks_exact_mut(GROUP_ROWS * rb) {
        plain.copy_from_slice(group);
        for (b, x) in group.chunks_exact_mut(Q4_K_X4_BLOCK).enumerate() {
            let block = |k: usize| &plain[k * rb + 144 * b..][..144];
            let (mut sc, mut mn) = ([[0u8; 8]; GROUP_ROWS], [[0u8; 8]; GROUP_ROWS]);
            for k in 0..GROUP_ROWS {
                x[2 * k..2 * k + 2].copy_from_slice(&block(k)[..2]);
                x[8 + 2 * k..8 + 2 * k + 2].copy_from_slice(&block(k)[2..4]);
                (sc[k], mn[k]) = super::k4_scales_mins(&block(k)[4..16]);
            }
            x[16..64].copy_from_slice(&q4_k_x4_scales(&sc, &mn));
            for k in 0..GROUP_ROWS {
                let qs = &block(k)[16..];
                q4_k_x4_words(k, |j, c, (lo, hi)| {
                    let (a, b) = (word(qs, 32 * j + 4 * c), word(qs, 32 * j + 16 + 4 * c));
                    const NIBBLES: u32 = 0x0F0F_0F0F;
                    x[64 + lo..][..4].copy_from_slice(&((a & NIBBLES) | (b & NIBBLES) << 4).to_le_bytes());
                    x[64 + hi..][..4].copy_from_slice(&((a >> 4 & NIBBLES) | (b & !NIBBLES)).to_le_bytes());
                });
            }
        }
    }
    rare
}

/// Row `k` of a [`RowOrder::Q4Kx4`] group (`group`: its four rows' bytes) in the file's order.
fn q4_k_x4_row(group: &[u8], k: usize, out: &mut [u8]) {
    for (block, x) in out.chunks_exact_mut(144).zip(group.chunks_exact(Q4_K_X4_BLOCK)) {
        block[..2].copy_from_slice(&x[2 * k..2 * k + 2]);
        block[2..4].copy_from_slice(&x[8 + 2 * k..8 + 2 * k + 2]);
        let (sc, mn) = q4_k_x4_scales_of(&x[16..64], k);
        block[4..16].copy_from_slice(&k4_pack_scales_mins(&sc, &mn));
        let qs = &mut block[16..];
        q4_k_x4_words(k, |j, c, (lo, hi)| {
            let (l, h) = (word(&x[64..], lo), word(&x[64..], hi));
            const NIBBLES: u32 = 0x0F0F_0F0F;
            qs[32 * j + 4 * c..][..4].copy_from_slice(&((l & NIBBLES) | (h & NIBBLES) << 4).to_le_bytes());
            qs[32 * j + 16 + 4 * c..][..4].copy_from_slice(&((l >> 4 & NIBBLES) | (h & !NIBBLES)).to_le_bytes());
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interleaving_keeps_every_row_and_puts_each_byte_where_the_layout_says() {
        let mut rng = fastrand::Rng::with_seed(3);
        let (rows, cols) = (11, 96);
        for ty in [GgmlType::Q4_0, GgmlType::Q5_0, GgmlType::Q8_0] {
            let (rb, bb, xb) = (ty.row_bytes(cols), ty.block_bytes(), x4_block_bytes(ty));
            let order = RowOrder::interleaved(ty).unwrap();
            let plain: Vec<u8> = (0..rows * rb).map(|_| rng.u8(..)).collect();
            let mut x4 = plain.clone();
            interleave(ty, &mut x4, rows, cols);
            assert_ne!(x4, plain);
            // Row 6 (group 1, k = 2), block 1: its scale, then byte 4·3 + 1 of its nibbles.
            let (g, nb, row6) = (&x4[4 * rb..8 * rb], rb / bb, &plain[6 * rb..7 * rb]);
            assert_eq!(g[8 + 4..8 + 6], row6[bb..bb + 2], "{}", ty.name());
            if ty == GgmlType::Q8_0 {
                // Byte 4·6 + 1 of its 32 codes: vector 6, lane 4·2 + 1.
                assert_eq!(g[8 * nb + xb + 16 * 6 + 8 + 1], row6[bb + 2 + 25]);
            } else {
                assert_eq!(g[8 * nb + xb + (xb - 64) + 48 + 8 + 1], row6[2 * bb - 16 + 13], "{}", ty.name());
            }
            if ty == GgmlType::Q5_0 {
                // Its fifth bits: value 4·2 + 1 (bit 2) and value 16 + 4·3 + 1 (bit 7) of byte 8 + 1.
                let qh = u32::from_le_bytes(row6[bb + 2..bb + 6].try_into().unwrap());
                let byte = g[8 * nb + xb + 8 + 1];
                assert_eq!((byte >> 2) & 1, ((qh >> 9) & 1) as u8);
                assert_eq!((byte >> 7) & 1, ((qh >> 29) & 1) as u8);
            }
            // The rows past the last group stay where they were.
            assert_eq!(x4[8 * rb..], plain[8 * rb..]);
            for r in 0..rows {
                assert_eq!(*plain_rows(order, ty, &x4, rows, cols, 0, r, 1), plain[r * rb..(r + 1) * rb], "{} row {r}", ty.name());
            }
            assert_eq!(*plain_rows(order, ty, &x4, rows, cols, 0, 2, 9), plain[2 * rb..]);
        }
    }

    #[test]
    fn normalized_scales_are_normal_f16s_a_power_of_two_apart_and_give_the_file_back() {
        let mut rng = fastrand::Rng::with_seed(8);
        let (rows, cols) = (10, 64);
        let scale = |b: &mut [u8], h: u16| b[..2].copy_from_slice(&h.to_le_bytes());
        for ty in [GgmlType::Q4_0, GgmlType::Q5_0, GgmlType::Q8_0] {
            let (rb, bb) = (ty.row_bytes(cols), ty.block_bytes());
            let order = RowOrder::interleaved(ty).unwrap();
            // Scales from the least subnormal (±1) to 2^5, zeros among them: k = 10 (for
            // the subnormal 1), the largest exponent 20 + 10 within range.
            let mut plain: Vec<u8> = (0..rows * rb).map(|_| rng.u8(..)).collect();
            for (i, b) in plain.chunks_exact_mut(bb).enumerate() {
                let h = match i % 5 {
                    0 => 1,
                    1 => rng.u16(1..0x400),
                    2 => 0,
                    3 => rng.u16(0x400..0x5000),
                    _ => 0x5000,
                };
                scale(b, h | if rng.bool() { 0x8000 } else { 0 });
            }
            let mut x4 = plain.clone();
            interleave(ty, &mut x4, rows, cols);
            let before = x4.clone();
            assert_eq!(x4_normalize_scales(ty, &mut x4, rows, cols), 10, "{}", ty.name());
            let nb = rb / bb;
            for (g, (x, b)) in x4[..8 * rb].chunks_exact(4 * rb).zip(before.chunks_exact(4 * rb)).enumerate() {
                for (i, (h, h0)) in x[..8 * nb].chunks_exact(2).zip(b[..8 * nb].chunks_exact(2)).enumerate() {
                    let (h, h0) = (u16::from_le_bytes([h[0], h[1]]), u16::from_le_bytes([h0[0], h0[1]]));
                    let (v, v0) = (half::f16::from_bits(h).to_f32(), half::f16::from_bits(h0).to_f32());
                    assert_eq!(v, v0 * 1024.0, "{} group {g} scale {i}: {h:#06x} from {h0:#06x}", ty.name());
                    assert!(h & 0x7FFF == 0 || h & 0x7C00 != 0, "{} group {g} scale {i}: {h:#06x} is subnormal", ty.name());
                }
            }
            // The codes and the rows past the groups as they were.
            for g in 0..2 {
                assert_eq!(x4[g * 4 * rb + 8 * nb..(g + 1) * 4 * rb], before[g * 4 * rb + 8 * nb..(g + 1) * 4 * rb]);
            }
            assert_eq!(x4[8 * rb..], plain[8 * rb..]);
            assert_eq!(*plain_rows(order, ty, &x4, rows, cols, 10, 0, rows), plain[..], "{}", ty.name());
            // A scale of 2^6 (exponent 21) would pass f16's range shifted by 10: left as it is;
            // as is a matrix without subnormal scales.
            for extra in [0x5400u16, 0x3C00] {
                let mut p = plain.clone();
                if extra == 0x3C00 {
                    p.chunks_exact_mut(bb).for_each(|b| scale(b, 0x3C00));
                } else {
                    scale(&mut p[bb..], extra);
                }
                let mut x4 = p.clone();
                interleave(ty, &mut x4, rows, cols);
                let before = x4.clone();
                assert_eq!(x4_normalize_scales(ty, &mut x4, rows, cols), 0, "{} with {extra:#06x}", ty.name());
                assert_eq!(x4, before);
            }
        }
    }

    #[test]
    fn a_nonfinite_scale_is_found_in_either_order() {
        let (rows, cols) = (6, 64);
        for ty in [GgmlType::Q4_0, GgmlType::Q5_0, GgmlType::Q8_0] {
            let (rb, bb) = (ty.row_bytes(cols), ty.block_bytes());
            // Every scale the largest finite f16 (0x7BFF: its exponent one short of all ones), then
            // one of them +inf, a NaN or -inf, in each row (each lane of a group) and block.
            let mut finite = vec![0x11u8; rows * rb];
            finite.chunks_exact_mut(bb).for_each(|b| b[..2].copy_from_slice(&0x7BFFu16.to_le_bytes()));
            let mut x4 = finite.clone();
            assert_eq!(interleave(ty, &mut x4, rows, cols), RareCodes::default());
            assert!(!x4_has_nonfinite_scale(ty, &x4, rows, cols));
            for r in 0..rows {
                for (b, special) in [(0, 0x7C00u16), (1, 0x7E01), (1, 0xFC00)] {
                    let mut plain = finite.clone();
                    plain[r * rb + bb * b..][..2].copy_from_slice(&special.to_le_bytes());
                    let mut x4 = plain.clone();
                    let rare = interleave(ty, &mut x4, rows, cols);
                    assert!(rare.nonfinite_scale && !rare.q8_0_min, "{} row {r} block {b}: {special:#06x}, as interleaved", ty.name());
                    assert!(x4_has_nonfinite_scale(ty, &x4, rows, cols), "{} row {r} block {b}: {special:#06x}", ty.name());
                }
            }
        }
    }

    #[test]
    fn a_q8_0_code_of_minus_128_is_found_in_either_order() {
        let (ty, rows, cols) = (GgmlType::Q8_0, 6, 64);
        let (rb, bb) = (ty.row_bytes(cols), ty.block_bytes());
        // Scales 1.0, codes 0x7F; then one code -128 in each row (in a group and past it) and
        // at each end of a block.
        let mut none = vec![0x7Fu8; rows * rb];
        none.chunks_exact_mut(bb).for_each(|b| b[..2].copy_from_slice(&0x3C00u16.to_le_bytes()));
        let mut x4 = none.clone();
        assert_eq!(interleave(ty, &mut x4, rows, cols), RareCodes::default());
        assert!(!x4_has_q8_0_min(ty, &x4, rows, cols));
        for r in 0..rows {
            for at in [bb + 2, 2 * bb - 1] {
                let mut plain = none.clone();
                plain[r * rb + at] = 0x80;
                let mut x4 = plain.clone();
                assert_eq!(interleave(ty, &mut x4, rows, cols), RareCodes { q8_0_min: true, nonfinite_scale: false }, "row {r} byte {at}");
                assert!(x4_has_q8_0_min(ty, &x4, rows, cols), "row {r} byte {at}");
            }
        }
        // Q4_0's and Q5_0's bytes 0x80 are nibbles, no such code.
        for ty in [GgmlType::Q4_0, GgmlType::Q5_0] {
            let mut x4 = vec![0x80u8; rows * ty.row_bytes(cols)];
            x4.chunks_exact_mut(ty.block_bytes()).for_each(|b| b[..2].copy_from_slice(&0x3C00u16.to_le_bytes()));
            assert!(!interleave(ty, &mut x4, rows, cols).q8_0_min, "{}", ty.name());
        }
    }

    #[test]
    fn q4_k_interleaving_keeps_every_row_and_puts_each_field_where_the_layout_says() {
        let mut rng = fastrand::Rng::with_seed(5);
        // Every bit pattern is a Q4_K block (the 12 bytes of scales and mins are 16 six-bit
        // fields): random bytes cover every field value.
        let (ty, rows, cols) = (GgmlType::Q4K, 10, 512);
        let rb = ty.row_bytes(cols);
        let plain: Vec<u8> = (0..rows * rb).map(|_| rng.u8(..)).collect();
        let mut x4 = plain.clone();
        assert_eq!(interleave(ty, &mut x4, rows, cols), RareCodes::default());
        assert_ne!(x4, plain);
        assert_eq!(x4_normalize_scales(ty, &mut x4, rows, cols), 0);
        // Row 6 (group 1, k = 2), super-block 1.
        let (x, row6) = (&x4[4 * rb + Q4_K_X4_BLOCK..][..Q4_K_X4_BLOCK], &plain[6 * rb + 144..][..144]);
        assert_eq!(x[4..6], row6[..2], "d");
        assert_eq!(x[12..14], row6[2..4], "dmin");
        // Sub-block 5's scale (half 1, pair 0, j = 1: index 5) and sub-block 2's min (half 0,
        // pair 1, j = 0: index 12).
        let (sc, mn) = crate::quant::k4_scales_mins(&row6[4..16]);
        assert_eq!(x[16 + 5] >> 4 | ((x[48 + 5] >> 2) & 3) << 4, sc[5]);
        assert_eq!(x[32 + 12] & 15 | ((x[48 + 12] >> 4) & 3) << 4, mn[2]);
        // Value 21 of sub-block 3 (the file's high nibble of byte 32 + 21): vector 1, byte
        // 16 + 4·2 + 1 of the sub-block's 64, high nibble.
        assert_eq!(x[64 + 64 * 3 + 25] >> 4, row6[16 + 32 + 21] >> 4);
        // Value 2 of sub-block 4 (low nibble of byte 64 + 2): vector 0, byte 8 + 2, low.
        assert_eq!(x[64 + 64 * 4 + 10] & 15, row6[16 + 64 + 2] & 15);
        assert_eq!(x4[8 * rb..], plain[8 * rb..], "the rows past the last group stay");
        let order = RowOrder::interleaved(ty).unwrap();
        for r in 0..rows {
            assert_eq!(*plain_rows(order, ty, &x4, rows, cols, 0, r, 1), plain[r * rb..(r + 1) * rb], "row {r}");
        }
    }
}
