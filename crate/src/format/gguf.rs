//! GGUF v2/v3 reader: header, every metadata type, alignment, tensor infos.

use std::collections::BTreeMap;

use super::TensorInfo;
use crate::error::{Error, Result};
use crate::quant::GgmlType;

/// One metadata value, in the type the file stores it.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    U8(u8),
    I8(i8),
    U16(u16),
    I16(i16),
    U32(u32),
    I32(i32),
    U64(u64),
    I64(i64),
    F32(f32),
    F64(f64),
    Bool(bool),
    String(Box<str>),
    /// An array of strings (a vocabulary, merges: 100k+ of them), in one buffer.
    Strings(Box<StringArray>),
    /// An array of any other element type.
    Array(Vec<Value>),
}

/// The strings of one metadata array, kept in a single buffer with their end offsets: a 150k
/// vocabulary as 150k separate allocations and values would cost ~10 MB more at load.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StringArray {
    text: String,
    ends: Vec<usize>,
}

impl StringArray {
    fn with_capacity(n: usize, bytes: usize) -> StringArray {
        StringArray { text: String::with_capacity(bytes), ends: Vec::with_capacity(n) }
    }
    fn push(&mut self, s: &str) {
        self.text.push_str(s);
        self.ends.push(self.text.len());
    }
    pub fn len(&self) -> usize {
        self.ends.len()
    }
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }
    pub fn get(&self, i: usize) -> Option<&str> {
        let end = *self.ends.get(i)?;
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        Some(&self.text[start..end])
    }
    pub fn iter(&self) -> impl ExactSizeIterator<Item = &str> + '_ {
        (0..self.len()).map(|i| self.get(i).unwrap_or_default())
    }
}

impl Value {
    /// The value as an unsigned integer, when it is a non-negative integer of any width.
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            Value::U8(v) => Some(v as u64),
            Value::U16(v) => Some(v as u64),
            Value::U32(v) => Some(v as u64),
            Value::U64(v) => Some(v),
            Value::I8(v) => u64::try_from(v).ok(),
            Value::I16(v) => u64::try_from(v).ok(),
            Value::I32(v) => u64::try_from(v).ok(),
            Value::I64(v) => u64::try_from(v).ok(),
            Value::Bool(v) => Some(v as u64),
            _ => None,
        }
    }
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            Value::F32(v) => Some(v as f64),
            Value::F64(v) => Some(v),
            _ => self.as_u64().map(|v| v as f64).or(match *self {
                Value::I8(v) => Some(v as f64),
                Value::I16(v) => Some(v as f64),
                Value::I32(v) => Some(v as f64),
                Value::I64(v) => Some(v as f64),
                _ => None,
            }),
        }
    }
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }
    pub fn as_strings(&self) -> Option<&StringArray> {
        match self {
            Value::Strings(a) => Some(a),
            _ => None,
        }
    }
    /// The elements of an array that is not of strings (those are [`Value::as_strings`]).
    pub fn as_array(&self) -> Option<&[Value]> {
        match self {
            Value::Array(a) => Some(a),
            _ => None,
        }
    }
    pub fn as_bool(&self) -> Option<bool> {
        match *self {
            Value::Bool(b) => Some(b),
            _ => None,
        }
    }
}

/// A parsed GGUF header: metadata and tensor infos (offsets are absolute in the file).
#[derive(Debug, Clone)]
pub struct GgufFile {
    pub file: String,
    pub version: u32,
    pub metadata: BTreeMap<String, Value>,
    pub tensors: Vec<TensorInfo>,
    pub alignment: usize,
    /// Byte offset where the tensor data section starts.
    pub data_offset: usize,
}

const MAGIC: &[u8; 4] = b"GGUF";
/// Metadata keys and strings longer than this are refused (the longest real ones, chat
/// templates, are tens of KiB).
const MAX_STRING: usize = 64 << 20;
const MAX_DIMS: usize = 4;

struct Cursor<'a> {
    file: &'a str,
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8]> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.buf.len()).ok_or_else(|| {
            Error::format(self.file, format!("truncated: {what} at byte {} needs {n} bytes, file has {}", self.pos, self.buf.len()))
        })?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }
    fn u8(&mut self, what: &str) -> Result<u8> {
        Ok(self.take(1, what)?[0])
    }
    fn u16(&mut self, what: &str) -> Result<u16> {
        Ok(u16::from_le_bytes(self.take(2, what)?.try_into().unwrap()))
    }
    fn u32(&mut self, what: &str) -> Result<u32> {
        Ok(u32::from_le_bytes(self.take(4, what)?.try_into().unwrap()))
    }
    fn u64(&mut self, what: &str) -> Result<u64> {
        Ok(u64::from_le_bytes(self.take(8, what)?.try_into().unwrap()))
    }
    /// A count that must be satisfiable by the bytes left, each item taking at least `min_item` bytes.
    fn count(&mut self, what: &str, min_item: usize) -> Result<usize> {
        let n = self.u64(what)?;
        let max = (self.remaining() / min_item.max(1)) as u64;
        if n > max {
            return Err(Error::format(self.file, format!("{what} is {n}, but only {} bytes remain", self.remaining())));
        }
        Ok(n as usize)
    }
    fn string(&mut self, what: &str) -> Result<std::borrow::Cow<'a, str>> {
        let n = self.count(what, 1)?;
        if n > MAX_STRING {
            return Err(Error::format(self.file, format!("{what} is {n} bytes long")));
        }
        let bytes = self.take(n, what)?;
        // Real vocabularies contain invalid UTF-8 fragments in a few token strings: keep them lossy.
        Ok(String::from_utf8_lossy(bytes))
    }
    fn value(&mut self, ty: u32, key: &str, depth: u32) -> Result<Value> {
        Ok(match ty {
            0 => Value::U8(self.u8(key)?),
            1 => Value::I8(self.u8(key)? as i8),
            2 => Value::U16(self.u16(key)?),
            3 => Value::I16(self.u16(key)? as i16),
            4 => Value::U32(self.u32(key)?),
            5 => Value::I32(self.u32(key)? as i32),
            6 => Value::F32(f32::from_bits(self.u32(key)?)),
            7 => match self.u8(key)? {
                0 => Value::Bool(false),
                1 => Value::Bool(true),
                b => return Err(Error::format(self.file, format!("metadata '{key}': bool byte {b}"))),
            },
            8 => Value::String(self.string(key)?.into()),
            9 => {
                if depth > 2 {
                    return Err(Error::format(self.file, format!("metadata '{key}': arrays nested too deep")));
                }
                let elem = self.u32(key)?;
                let min = match elem {
                    0 | 1 | 7 => 1,
                    2 | 3 => 2,
                    4 | 5 | 6 => 4,
                    8 | 10 | 11 | 12 => 8,
                    9 => 12,
                    t => return Err(Error::format(self.file, format!("metadata '{key}': unknown array element type {t}"))),
                };
                let n = self.count(key, min)?;
                if elem == 8 {
                    // A first pass sizes the buffer (growing it would double it and copy).
                    let start = self.pos;
                    let mut bytes = 0;
                    for _ in 0..n {
                        let len = self.count(key, 1)?;
                        self.take(len, key)?;
                        bytes += len;
                    }
                    self.pos = start;
                    let mut out = StringArray::with_capacity(n, bytes);
                    for _ in 0..n {
                        out.push(&self.string(key)?);
                    }
                    return Ok(Value::Strings(Box::new(out)));
                }
                let mut out = Vec::with_capacity(n);
                for _ in 0..n {
                    out.push(self.value(elem, key, depth + 1)?);
                }
                Value::Array(out)
            }
            10 => Value::U64(self.u64(key)?),
            11 => Value::I64(self.u64(key)? as i64),
            12 => Value::F64(f64::from_bits(self.u64(key)?)),
            t => return Err(Error::format(self.file, format!("metadata '{key}': unknown value type {t}"))),
        })
    }
}

impl GgufFile {
    /// Parses the header of a GGUF file held in `buf` (the whole file, or at least its header;
    /// tensor extents are checked against `file_len`).
    pub fn parse(file: &str, buf: &[u8], file_len: usize) -> Result<GgufFile> {
        let mut c = Cursor { file, buf, pos: 0 };
        let magic = c.take(4, "magic").map_err(|_| Error::format(file, "not a GGUF file: shorter than its magic"))?;
        if magic != MAGIC {
            return Err(Error::format(file, format!("not a GGUF file: magic {:02x?}, expected \"GGUF\"", magic)));
        }
        let version = c.u32("version")?;
        if !(2..=3).contains(&version) {
            return Err(Error::format(file, format!("GGUF version {version} is not supported (2 and 3 are)")));
        }
        // A tensor info takes at least 8 (name len) + 4 (n_dims) + 8 (dim) + 4 (type) + 8 (offset) bytes,
        // a metadata pair at least 8 (key len) + 4 (type) + 1 bytes.
        let n_tensors = c.count("tensor count", 32)?;
        let n_kv = c.count("metadata count", 13)?;
        let mut metadata = BTreeMap::new();
        for _ in 0..n_kv {
            let key = String::from(c.string("metadata key")?);
            let ty = c.u32(&key)?;
            let v = c.value(ty, &key, 0)?;
            metadata.insert(key, v);
        }
        let alignment = match metadata.get("general.alignment") {
            None => 32,
            Some(v) => match v.as_u64() {
                Some(a) if a.is_power_of_two() && a <= 1 << 20 => a as usize,
                _ => return Err(Error::format(file, format!("general.alignment {v:?} is not a power of two"))),
            },
        };
        let mut raw = Vec::with_capacity(n_tensors);
        for _ in 0..n_tensors {
            let name = c.string("tensor name")?;
            let n_dims = c.u32(&name)? as usize;
            if n_dims == 0 || n_dims > MAX_DIMS {
                return Err(Error::format(file, format!("tensor '{name}' has {n_dims} dimensions")));
            }
            let mut dims = Vec::with_capacity(n_dims);
            for _ in 0..n_dims {
                let d = c.u64(&name)?;
                if d == 0 || d > 1 << 40 {
                    return Err(Error::format(file, format!("tensor '{name}' has dimension {d}")));
                }
                dims.push(d as usize);
            }
            let ty_id = c.u32(&name)?;
            let offset = c.u64(&name)?;
            let ty = GgmlType::from_id(ty_id).ok_or_else(|| Error::UnsupportedTensorType {
                file: file.to_string(),
                tensor: name.to_string(),
                ty: GgmlType::id_name(ty_id),
            })?;
            raw.push((name, dims, ty, offset));
        }
        let data_offset = c.pos.next_multiple_of(alignment);
        let mut tensors = Vec::with_capacity(raw.len());
        for (name, dims, ty, offset) in raw {
            let n: usize = dims.iter().try_fold(1usize, |a, &d| a.checked_mul(d)).ok_or_else(|| Error::format(file, format!("tensor '{name}': element count overflows")))?;
            if dims[0] % ty.block_size() != 0 {
                return Err(Error::format(file, format!("tensor '{name}': row length {} is not a multiple of {}'s block of {}", dims[0], ty.name(), ty.block_size())));
            }
            let size = n / ty.block_size() * ty.block_bytes();
            if offset % alignment as u64 != 0 {
                return Err(Error::format(file, format!("tensor '{name}': offset {offset} is not aligned to {alignment}")));
            }
            let start = (data_offset as u64).saturating_add(offset);
            if start.checked_add(size as u64).is_none_or(|end| end > file_len as u64) {
                return Err(Error::format(file, format!("truncated: tensor '{name}' ({size} bytes at offset {start}) ends past the end of the file ({file_len} bytes)")));
            }
            tensors.push(TensorInfo { name: name.into(), dims, ty, offset: start as usize, size });
        }
        Ok(GgufFile { file: file.to_string(), version, metadata, tensors, alignment, data_offset })
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        self.metadata.get(key)
    }

    /// Takes a metadata value out (so large arrays can be consumed rather than copied).
    pub fn take(&mut self, key: &str) -> Option<Value> {
        self.metadata.remove(key)
    }

    pub fn architecture(&self) -> Result<&str> {
        self.get("general.architecture").and_then(Value::as_str).ok_or_else(|| Error::format(&self.file, "metadata general.architecture is missing"))
    }

    pub fn tensor(&self, name: &str) -> Option<&TensorInfo> {
        self.tensors.iter().find(|t| t.name == name)
    }
}
