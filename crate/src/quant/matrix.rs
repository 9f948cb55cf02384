//! A matrix of quantized rows as it lies in memory: the file's blocks, in the file's row order
//! or in the one the CPU kernels read fastest ([`RowOrder`]).

use std::borrow::Cow;
use std::ops::Range;
use std::sync::{Arc, OnceLock};

use super::row_order::{self, RowOrder, GROUP_ROWS};
use super::GgmlType;

/// What a matrix holds that the format allows and llama.cpp's quantizers never write, and that
/// the fastest SIMD kernels leave to exact ones.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RareCodes {
    /// A Q8_0 weight code of -128: the relaxed-SIMD Q8_0 kernel negates weights, which -128
    /// does not survive.
    pub q8_0_min: bool,
    /// A block scale that is infinite or NaN (Q4_0, Q5_0, Q8_0): the SIMD kernels convert
    /// only finite f16 scales.
    pub nonfinite_scale: bool,
}

impl RareCodes {
    /// What either holds (the codes of two parts of one matrix).
    pub fn or(self, other: RareCodes) -> RareCodes {
        RareCodes { q8_0_min: self.q8_0_min || other.q8_0_min, nonfinite_scale: self.nonfinite_scale || other.nonfinite_scale }
    }
}

/// `rows × cols` values of type `ty`, each row `ty.row_bytes(cols)` bytes, row after row or
/// interleaved ([`RowOrder`]). The bytes are a range of a shared buffer (a file read once) or a
/// buffer of their own.
#[derive(Clone)]
pub struct QMatrix {
    pub ty: GgmlType,
    pub rows: usize,
    pub cols: usize,
    buf: Arc<Vec<u8>>,
    range: Range<usize>,
    order: RowOrder,
    /// The power of two an interleaved matrix's scales were multiplied by
    /// ([`row_order::x4_normalize_scales`]); 0 in the file's order.
    scale_shift: u8,
    /// [`QMatrix::rare_codes`], scanned when first asked.
    rare: OnceLock<RareCodes>,
}

/// How [`QMatrix::reorder`] left a matrix's bytes: their order, the [`RareCodes`] found on the
/// way (when reordered) and the power of two its scales were multiplied by.
#[derive(Clone, Copy, Debug, Default)]
pub struct Reordered {
    pub order: RowOrder,
    pub rare: Option<RareCodes>,
    pub scale_shift: u8,
}

impl std::fmt::Debug for QMatrix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "QMatrix({} {}x{})", self.ty.name(), self.rows, self.cols)
    }
}

impl QMatrix {
    /// `range` must hold exactly `rows * ty.row_bytes(cols)` bytes of `buf` (callers check it),
    /// in the file's order.
    pub fn new(ty: GgmlType, rows: usize, cols: usize, buf: Arc<Vec<u8>>, range: Range<usize>) -> QMatrix {
        QMatrix::in_order(ty, rows, cols, buf, range, RowOrder::Plain)
    }

    /// As [`QMatrix::new`], the bytes already in `order` (one `ty` allows: see
    /// [`QMatrix::reorder`]).
    pub fn in_order(ty: GgmlType, rows: usize, cols: usize, buf: Arc<Vec<u8>>, range: Range<usize>, order: RowOrder) -> QMatrix {
        debug_assert_eq!(range.len(), rows * ty.row_bytes(cols));
        debug_assert!(order.holds(ty), "{} in {order:?}", ty.name());
        QMatrix { ty, rows, cols, buf, range, order, scale_shift: 0, rare: OnceLock::new() }
    }

    /// As [`QMatrix::new`], the bytes as [`QMatrix::reorder`] left them (`how`).
    pub fn reordered(ty: GgmlType, rows: usize, cols: usize, buf: Arc<Vec<u8>>, range: Range<usize>, how: Reordered) -> QMatrix {
        let mut m = QMatrix::in_order(ty, rows, cols, buf, range, how.order);
        m.scale_shift = how.scale_shift;
        if let Some(rare) = how.rare {
            let _ = m.rare.set(rare);
        }
        m
    }

    /// From `bytes` in the file's order.
    pub fn owned(ty: GgmlType, rows: usize, cols: usize, bytes: Vec<u8>) -> QMatrix {
        QMatrix::owned_in_order(ty, rows, cols, bytes, RowOrder::Plain)
    }

    /// From `bytes` in the file's order, reordered in place to `order` where `ty` has it.
    pub fn owned_in_order(ty: GgmlType, rows: usize, cols: usize, mut bytes: Vec<u8>, order: RowOrder) -> QMatrix {
        let how = QMatrix::reorder(ty, rows, cols, &mut bytes, order);
        let n = bytes.len();
        QMatrix::reordered(ty, rows, cols, Arc::new(bytes), 0..n, how)
    }

    /// Reorders the file-ordered `bytes` of a `rows × cols` matrix of `ty` to `order` in place
    /// when `ty` has that order (Q4_0, Q5_0, Q8_0 and Q4_K are interleaved), its scales made normal
    /// f16s where they can be ([`row_order::x4_normalize_scales`]); says how it left them.
    pub fn reorder(ty: GgmlType, rows: usize, cols: usize, bytes: &mut [u8], order: RowOrder) -> Reordered {
        if order != RowOrder::Plain && order.holds(ty) && rows >= GROUP_ROWS {
            let rare = row_order::interleave(ty, bytes, rows, cols);
            let scale_shift = row_order::x4_normalize_scales(ty, bytes, rows, cols);
            Reordered { order, rare: Some(rare), scale_shift }
        } else {
            Reordered::default()
        }
    }

    pub fn order(&self) -> RowOrder {
        self.order
    }

    /// The power of two this matrix's scales were multiplied by (an interleaved matrix's,
    /// [`row_order::x4_normalize_scales`]): its kernels take it back.
    pub fn scale_shift(&self) -> u8 {
        self.scale_shift
    }

    /// The bytes as they lie, in [`QMatrix::order`].
    pub fn bytes(&self) -> &[u8] {
        &self.buf[self.range.clone()]
    }

    pub fn row_bytes(&self) -> usize {
        self.ty.row_bytes(self.cols)
    }

    /// Row `r`'s bytes in the file's order (copied out of an interleaved group).
    pub fn row(&self, r: usize) -> Cow<'_, [u8]> {
        self.plain_rows(r, 1)
    }

    /// Rows `first..first + n` in the file's order (borrowed when they lie so).
    pub fn plain_rows(&self, first: usize, n: usize) -> Cow<'_, [u8]> {
        row_order::plain_rows(self.order, self.ty, self.bytes(), self.rows, self.cols, self.scale_shift, first, n)
    }

    /// The matrix's [`RareCodes`], its bytes scanned once, when first asked.
    pub fn rare_codes(&self) -> RareCodes {
        *self.rare.get_or_init(|| match self.order {
            RowOrder::Plain => super::block_rare_codes(self.ty, self.bytes()),
            RowOrder::Q4_0x4 | RowOrder::Q5_0x4 | RowOrder::Q8_0x4 | RowOrder::Q4Kx4 => RareCodes {
                q8_0_min: row_order::x4_has_q8_0_min(self.ty, self.bytes(), self.rows, self.cols),
                nonfinite_scale: row_order::x4_has_nonfinite_scale(self.ty, self.bytes(), self.rows, self.cols),
            },
        })
    }

    /// Whether this is a Q8_0 matrix with a weight code of -128 ([`RareCodes::q8_0_min`]).
    pub fn has_q8_0_min(&self) -> bool {
        self.rare_codes().q8_0_min
    }

    /// Row `r` as f32 values (used for embedding lookups).
    pub fn dequantize_row(&self, r: usize, out: &mut [f32]) {
        super::dequantize(self.ty, &self.row(r), out);
    }

    /// A contiguous block of rows as its own matrix (for fused tensors such as Phi-3's QKV):
    /// a view of the same bytes where the rows' groups are whole (an interleaved range starting
    /// on a group and ending on one or at the last row), else a copy in the file's order.
    pub fn rows_range(&self, start: usize, n: usize) -> QMatrix {
        let rb = self.row_bytes();
        let whole_groups = self.order == RowOrder::Plain || (start % GROUP_ROWS == 0 && (n % GROUP_ROWS == 0 || start + n == self.rows));
        if !whole_groups {
            return QMatrix::owned(self.ty, n, self.cols, self.plain_rows(start, n).into_owned());
        }
        let s = self.range.start + start * rb;
        let mut view = QMatrix::in_order(self.ty, n, self.cols, self.buf.clone(), s..s + n * rb, self.order);
        view.scale_shift = self.scale_shift;
        view
    }
}
