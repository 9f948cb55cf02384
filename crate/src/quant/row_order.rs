//! The order of a matrix's rows in memory: the file's (row after row) or Q4_0 rows interleaved
//! four at a time, the order the wasm SIMD mat-vec reads fastest. Same bytes, same size: the
//! CPU loader reorders a file's Q4_0 matrices in place.
//!
//! A group of four Q4_0 rows of `nb` blocks (`72·nb` bytes, the four rows' bytes) holds first
//! the rows' scales, block by block (`8·b + 2·k`: row `k`'s f16 scale of block `b`), then their
//! nibbles, 64 bytes per block in four vectors of 16 (`8·nb + 64·b + 16·c + 4·k + i`: byte
//! `4·c + i` of row `k`'s 16 bytes of block `b`). One 16-byte load then holds four bytes of each
//! row, whose low nibbles are values `4c..4c+4` and high ones `16+4c..16+4c+4`: a 4-byte dot
//! product against the activations' four values, broadcast, leaves row `k`'s sum in lane `k`,
//! where the file's order needs a reduction across rows per block. The rows past the last whole
//! group keep the file's order, where they already lie.

use std::borrow::Cow;

use super::GgmlType;

/// How a matrix's rows lie in its bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RowOrder {
    /// Row after row, each the file's blocks.
    #[default]
    Plain,
    /// Q4_0 rows in groups of [`GROUP_ROWS`], as this module's description lays out.
    Q4_0x4,
}

/// Rows per interleaved group.
pub const GROUP_ROWS: usize = 4;

const Q4_0_BYTES: usize = 18;

/// Reorders the whole groups of `rows` Q4_0 rows of `cols` values (`bytes`, in the file's
/// order) into [`RowOrder::Q4_0x4`], in place.
pub fn interleave_q4_0(bytes: &mut [u8], rows: usize, cols: usize) {
    let rb = GgmlType::Q4_0.row_bytes(cols);
    assert_eq!(bytes.len(), rows * rb, "Q4_0 matrix of {rows}x{cols}");
    let nb = rb / Q4_0_BYTES;
    let mut plain = vec![0u8; GROUP_ROWS * rb];
    for group in bytes.chunks_exact_mut(GROUP_ROWS * rb) {
        plain.copy_from_slice(group);
        let (scales, nibbles) = group.split_at_mut(8 * nb);
        // Block by block, fixed-size pieces (so the copies compile to plain loads and stores).
        for (b, (sc, nib)) in scales.chunks_exact_mut(8).zip(nibbles.chunks_exact_mut(64)).enumerate() {
            for k in 0..GROUP_ROWS {
                let block: &[u8; Q4_0_BYTES] = plain[k * rb + b * Q4_0_BYTES..][..Q4_0_BYTES].try_into().unwrap();
                sc[2 * k..2 * k + 2].copy_from_slice(&block[..2]);
                for c in 0..4 {
                    nib[16 * c + 4 * k..16 * c + 4 * k + 4].copy_from_slice(&block[2 + 4 * c..6 + 4 * c]);
                }
            }
        }
    }
}

/// Row `r` of a [`RowOrder::Q4_0x4`] matrix of `rows × cols` in the file's order, into `out`
/// (one row's bytes).
pub fn q4_0x4_row(bytes: &[u8], rows: usize, cols: usize, r: usize, out: &mut [u8]) {
    let rb = GgmlType::Q4_0.row_bytes(cols);
    assert!(r < rows && out.len() == rb && bytes.len() == rows * rb);
    if r >= rows / GROUP_ROWS * GROUP_ROWS {
        return out.copy_from_slice(&bytes[r * rb..][..rb]);
    }
    let nb = rb / Q4_0_BYTES;
    let (group, k) = (&bytes[r / GROUP_ROWS * GROUP_ROWS * rb..][..GROUP_ROWS * rb], r % GROUP_ROWS);
    for (b, block) in out.chunks_exact_mut(Q4_0_BYTES).enumerate() {
        block[..2].copy_from_slice(&group[8 * b + 2 * k..][..2]);
        for c in 0..4 {
            block[2 + 4 * c..][..4].copy_from_slice(&group[8 * nb + 64 * b + 16 * c + 4 * k..][..4]);
        }
    }
}

/// Rows `first..first + n` of a matrix in `order` in the file's order: borrowed when they lie so.
pub fn plain_rows(order: RowOrder, ty: GgmlType, bytes: &[u8], rows: usize, cols: usize, first: usize, n: usize) -> Cow<'_, [u8]> {
    let rb = ty.row_bytes(cols);
    assert!(first + n <= rows, "rows {first}..{} of {rows}", first + n);
    match order {
        RowOrder::Plain => Cow::Borrowed(&bytes[first * rb..(first + n) * rb]),
        RowOrder::Q4_0x4 => {
            let mut out = vec![0u8; n * rb];
            for (i, row) in out.chunks_exact_mut(rb).enumerate() {
                q4_0x4_row(bytes, rows, cols, first + i, row);
            }
            Cow::Owned(out)
        }
    }
}

/// Whether some block scale of a [`RowOrder::Q4_0x4`] matrix is infinite or NaN (as
/// [`super::has_nonfinite_block_scale`] for the file's order).
pub fn q4_0x4_has_nonfinite_scale(bytes: &[u8], rows: usize, cols: usize) -> bool {
    let rb = GgmlType::Q4_0.row_bytes(cols);
    let grouped = rows / GROUP_ROWS * GROUP_ROWS * rb;
    let nb = rb / Q4_0_BYTES;
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
    bytes[..grouped].chunks_exact(GROUP_ROWS * rb).any(|g| exponent_ones(&g[..8 * nb])) || super::has_nonfinite_block_scale(GgmlType::Q4_0, &bytes[grouped..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interleaving_keeps_every_row_and_puts_each_byte_where_the_layout_says() {
        let mut rng = fastrand::Rng::with_seed(3);
        let (rows, cols) = (11, 96);
        let rb = GgmlType::Q4_0.row_bytes(cols);
        let plain: Vec<u8> = (0..rows * rb).map(|_| rng.u8(..)).collect();
        let mut x4 = plain.clone();
        interleave_q4_0(&mut x4, rows, cols);
        assert_ne!(x4, plain);
        // Row 6 (group 1, k = 2), block 1: its scale, then byte 4·3 + 1 of its nibbles.
        let (g, nb) = (&x4[4 * rb..8 * rb], rb / 18);
        assert_eq!(g[8 + 4..8 + 6], plain[6 * rb + 18..6 * rb + 20]);
        assert_eq!(g[8 * nb + 64 + 48 + 8 + 1], plain[6 * rb + 18 + 2 + 13]);
        // The rows past the last group stay where they were.
        assert_eq!(x4[8 * rb..], plain[8 * rb..]);
        for r in 0..rows {
            assert_eq!(*plain_rows(RowOrder::Q4_0x4, GgmlType::Q4_0, &x4, rows, cols, r, 1), plain[r * rb..(r + 1) * rb], "row {r}");
        }
        assert_eq!(*plain_rows(RowOrder::Q4_0x4, GgmlType::Q4_0, &x4, rows, cols, 2, 9), plain[2 * rb..]);
    }

    #[test]
    fn a_nonfinite_scale_is_found_in_either_order() {
        let (rows, cols) = (6, 64);
        let rb = GgmlType::Q4_0.row_bytes(cols);
        // Every scale the largest finite f16 (0x7BFF: its exponent one short of all ones), then
        // one of them +inf, a NaN or -inf, in each row (each lane of a group) and block.
        let mut finite = vec![0x11u8; rows * rb];
        finite.chunks_exact_mut(18).for_each(|b| b[..2].copy_from_slice(&0x7BFFu16.to_le_bytes()));
        let mut x4 = finite.clone();
        interleave_q4_0(&mut x4, rows, cols);
        assert!(!q4_0x4_has_nonfinite_scale(&x4, rows, cols));
        for r in 0..rows {
            for (b, special) in [(0, 0x7C00u16), (1, 0x7E01), (1, 0xFC00)] {
                let mut plain = finite.clone();
                plain[r * rb + 18 * b..][..2].copy_from_slice(&special.to_le_bytes());
                let mut x4 = plain.clone();
                interleave_q4_0(&mut x4, rows, cols);
                assert!(q4_0x4_has_nonfinite_scale(&x4, rows, cols), "row {r} block {b}: {special:#06x}");
            }
        }
    }
}
