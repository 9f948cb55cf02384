//! The weights of a model, read by GGUF name from either format through [`TensorSource`].

use std::collections::BTreeMap;
use std::sync::Arc;

use super::spec::{Arch, ModelSpec, RopeScaling};
use crate::error::{Error, Result};
use crate::format::gguf::GgufFile;
use crate::format::hf::gguf_name;
use crate::format::safetensors::{SafetensorsFile, StTensor};
use crate::backend::cpu;
use crate::format::TensorInfo;
use crate::quant::{dequantize, quantize, GgmlType, QMatrix, Reordered, RowOrder};

/// A place tensors come from, addressed by GGUF names.
pub trait TensorSource {
    fn file(&self) -> &str;
    fn has(&self, name: &str) -> bool;
    /// Shape innermost first (`[cols, rows]` for a matrix).
    fn dims(&self, name: &str) -> Option<Vec<usize>>;
    /// A `rows × cols` matrix, in the file's quantization or quantized at load.
    fn matrix(&self, name: &str) -> Result<QMatrix>;
    /// A tensor as f32 values (norms, biases, small vectors).
    fn vector(&self, name: &str) -> Result<Vec<f32>>;

    fn missing(&self, name: &str) -> Error {
        Error::format(self.file(), format!("tensor '{name}' is missing"))
    }

    /// The matrix, checked to be `rows × cols`.
    fn matrix_shaped(&self, name: &str, rows: usize, cols: usize) -> Result<QMatrix> {
        let m = self.matrix(name)?;
        if m.rows != rows || m.cols != cols {
            return Err(Error::format(self.file(), format!("tensor '{name}' is {}x{}, the model needs {rows}x{cols}", m.rows, m.cols)));
        }
        Ok(m)
    }

    fn vector_len(&self, name: &str, len: usize) -> Result<Vec<f32>> {
        let v = self.vector(name)?;
        if v.len() != len {
            return Err(Error::format(self.file(), format!("tensor '{name}' has {} values, the model needs {len}", v.len())));
        }
        Ok(v)
    }

    fn opt_vector(&self, name: &str, len: usize) -> Result<Option<Vec<f32>>> {
        if self.has(name) {
            self.vector_len(name, len).map(Some)
        } else {
            Ok(None)
        }
    }
}

/// Tensors of a GGUF file held in memory, its matrices in the CPU kernels' row order.
pub struct GgufSource<'a> {
    pub gguf: &'a GgufFile,
    buf: Arc<Vec<u8>>,
    /// How each tensor's bytes were left: the order they were put in (a matrix's:
    /// [`cpu::row_order`]), the rare codes found on the way, the scales' shift.
    orders: Vec<Reordered>,
}

impl<'a> GgufSource<'a> {
    /// Takes the file's bytes and reorders each matrix (a tensor of 2 dimensions or more) in
    /// place to the row order the CPU kernels read fastest (the GPU packer reads rows in either).
    pub fn new(gguf: &'a GgufFile, mut bytes: Vec<u8>) -> GgufSource<'a> {
        let orders = gguf
            .tensors
            .iter()
            .map(|t| {
                let order = if t.dims.len() >= 2 { cpu::row_order(t.ty) } else { RowOrder::Plain };
                let cols = t.dims[0];
                QMatrix::reorder(t.ty, t.n_elements() / cols, cols, &mut bytes[t.offset..t.offset + t.size], order)
            })
            .collect();
        GgufSource { gguf, buf: Arc::new(bytes), orders }
    }

    fn tensor(&self, name: &str) -> Result<(&TensorInfo, Reordered)> {
        let i = self.gguf.tensors.iter().position(|t| t.name == name).ok_or_else(|| self.missing(name))?;
        Ok((&self.gguf.tensors[i], self.orders[i]))
    }
}

impl TensorSource for GgufSource<'_> {
    fn file(&self) -> &str {
        &self.gguf.file
    }
    fn has(&self, name: &str) -> bool {
        self.gguf.tensor(name).is_some()
    }
    fn dims(&self, name: &str) -> Option<Vec<usize>> {
        self.gguf.tensor(name).map(|t| t.dims.clone())
    }
    fn matrix(&self, name: &str) -> Result<QMatrix> {
        let (t, how) = self.tensor(name)?;
        let cols = t.dims[0];
        let rows = t.n_elements() / cols;
        Ok(QMatrix::reordered(t.ty, rows, cols, self.buf.clone(), t.offset..t.offset + t.size, how))
    }
    fn vector(&self, name: &str) -> Result<Vec<f32>> {
        let m = self.matrix(name)?;
        let mut out = vec![0.0; m.rows * m.cols];
        dequantize(m.ty, &m.plain_rows(0, m.rows), &mut out);
        Ok(out)
    }
}

/// Tensors of a Hugging Face safetensors file, renamed to GGUF names; matrices quantized at load.
pub struct HfSource<'a> {
    pub st: &'a SafetensorsFile,
    names: BTreeMap<String, String>,
    /// `None` keeps matrices in f32.
    quantize_to: Option<GgmlType>,
    /// Gemma stores norm weights as offsets from 1.
    norm_offset: f32,
}

impl<'a> HfSource<'a> {
    pub fn new(st: &'a SafetensorsFile, arch: Arch, quantize_to: Option<GgmlType>) -> HfSource<'a> {
        let gemma = matches!(arch, Arch::Gemma | Arch::Gemma2 | Arch::Gemma3);
        let names = st.tensors.keys().filter_map(|hf| gguf_name(hf, matches!(arch, Arch::Gemma2 | Arch::Gemma3)).map(|g| (g, hf.clone()))).collect();
        HfSource { st, names, quantize_to, norm_offset: if gemma { 1.0 } else { 0.0 } }
    }

    fn tensor(&self, name: &str) -> Result<(&str, &StTensor)> {
        let hf = self.names.get(name).ok_or_else(|| self.missing(name))?;
        Ok((hf, &self.st.tensors[hf]))
    }
}

impl TensorSource for HfSource<'_> {
    fn file(&self) -> &str {
        &self.st.file
    }
    fn has(&self, name: &str) -> bool {
        self.names.contains_key(name)
    }
    fn dims(&self, name: &str) -> Option<Vec<usize>> {
        self.tensor(name).ok().map(|(_, t)| t.shape.iter().rev().copied().collect())
    }
    fn matrix(&self, name: &str) -> Result<QMatrix> {
        let (hf, t) = self.tensor(name)?;
        if t.shape.len() != 2 {
            return Err(Error::format(self.file(), format!("tensor '{hf}' has shape {:?}, expected a matrix", t.shape)));
        }
        let (rows, cols) = (t.shape[0], t.shape[1]);
        let values = self.st.to_f32(hf, t)?;
        let ty = match self.quantize_to {
            Some(q) if cols % q.block_size() == 0 => q,
            _ => GgmlType::F32,
        };
        Ok(QMatrix::owned_in_order(ty, rows, cols, quantize(ty, &values), cpu::row_order(ty)))
    }
    fn vector(&self, name: &str) -> Result<Vec<f32>> {
        let (hf, t) = self.tensor(name)?;
        let mut v = self.st.to_f32(hf, t)?;
        if self.norm_offset != 0.0 && name.ends_with("norm.weight") {
            v.iter_mut().for_each(|x| *x += self.norm_offset);
        }
        Ok(v)
    }
}

/// One transformer block's weights.
pub struct LayerWeights {
    pub attn_norm: Vec<f32>,
    pub wq: QMatrix,
    pub wk: QMatrix,
    pub wv: QMatrix,
    pub bq: Option<Vec<f32>>,
    pub bk: Option<Vec<f32>>,
    pub bv: Option<Vec<f32>>,
    pub q_norm: Option<Vec<f32>>,
    pub k_norm: Option<Vec<f32>>,
    pub wo: QMatrix,
    pub post_attn_norm: Option<Vec<f32>>,
    pub ffn_norm: Vec<f32>,
    pub w_gate: QMatrix,
    pub w_up: QMatrix,
    pub w_down: QMatrix,
    pub post_ffn_norm: Option<Vec<f32>>,
}

pub struct ModelWeights {
    pub token_embd: QMatrix,
    pub output_norm: Vec<f32>,
    /// The output projection; the embedding matrix itself when embeddings are tied.
    pub output: QMatrix,
    pub layers: Vec<LayerWeights>,
}

impl ModelWeights {
    /// Every weight matrix: the embedding, then each layer's projections (a tied output is the
    /// embedding and is not repeated).
    pub fn matrices(&self) -> impl Iterator<Item = &QMatrix> {
        std::iter::once(&self.token_embd).chain(self.layers.iter().flat_map(|l| [&l.wq, &l.wk, &l.wv, &l.wo, &l.w_gate, &l.w_up, &l.w_down]))
    }

    /// Reads every tensor the spec needs from `src`, checking shapes; fills rope factors into `spec`.
    pub fn load(src: &dyn TensorSource, spec: &mut ModelSpec) -> Result<ModelWeights> {
        let (dim, q_dim, kv_dim, ffn, hd) = (spec.dim, spec.q_dim(), spec.kv_dim(), spec.ffn_dim, spec.head_dim);
        // Tied embeddings: either name may be the one stored (TinyStories' HF copy keeps only lm_head).
        let embd_name = if src.has("token_embd.weight") { "token_embd.weight" } else { "output.weight" };
        let token_embd = src.matrix_shaped(embd_name, spec.vocab_size, dim)?;
        let output = if src.has("output.weight") { src.matrix_shaped("output.weight", spec.vocab_size, dim)? } else { token_embd.clone() };
        if src.has("rope_freqs.weight") || src.has("rope_factors_short.weight") {
            let name = if src.has("rope_freqs.weight") { "rope_freqs.weight" } else { "rope_factors_short.weight" };
            let factors = src.vector_len(name, spec.rope_dims / 2)?;
            let attn_factor = match &spec.rope_scaling {
                RopeScaling::Factors { attn_factor, .. } => *attn_factor,
                _ => 1.0,
            };
            spec.rope_scaling = RopeScaling::Factors { factors, attn_factor };
        }
        let mut layers = Vec::with_capacity(spec.n_layers);
        for i in 0..spec.n_layers {
            let n = |s: &str| format!("blk.{i}.{s}");
            let (wq, wk, wv) = if src.has(&n("attn_qkv.weight")) {
                let qkv = src.matrix_shaped(&n("attn_qkv.weight"), q_dim + 2 * kv_dim, dim)?;
                (qkv.rows_range(0, q_dim), qkv.rows_range(q_dim, kv_dim), qkv.rows_range(q_dim + kv_dim, kv_dim))
            } else {
                (src.matrix_shaped(&n("attn_q.weight"), q_dim, dim)?, src.matrix_shaped(&n("attn_k.weight"), kv_dim, dim)?, src.matrix_shaped(&n("attn_v.weight"), kv_dim, dim)?)
            };
            let (w_gate, w_up) = if src.has(&n("ffn_gate.weight")) {
                (src.matrix_shaped(&n("ffn_gate.weight"), ffn, dim)?, src.matrix_shaped(&n("ffn_up.weight"), ffn, dim)?)
            } else {
                let gate_up = src.matrix_shaped(&n("ffn_up.weight"), 2 * ffn, dim)?;
                (gate_up.rows_range(0, ffn), gate_up.rows_range(ffn, ffn))
            };
            layers.push(LayerWeights {
                attn_norm: src.vector_len(&n("attn_norm.weight"), dim)?,
                wq,
                wk,
                wv,
                bq: src.opt_vector(&n("attn_q.bias"), q_dim)?,
                bk: src.opt_vector(&n("attn_k.bias"), kv_dim)?,
                bv: src.opt_vector(&n("attn_v.bias"), kv_dim)?,
                q_norm: src.opt_vector(&n("attn_q_norm.weight"), hd)?,
                k_norm: src.opt_vector(&n("attn_k_norm.weight"), hd)?,
                wo: src.matrix_shaped(&n("attn_output.weight"), dim, q_dim)?,
                post_attn_norm: src.opt_vector(&n("post_attention_norm.weight"), dim)?,
                ffn_norm: src.vector_len(&n("ffn_norm.weight"), dim)?,
                w_gate,
                w_up,
                w_down: src.matrix_shaped(&n("ffn_down.weight"), dim, ffn)?,
                post_ffn_norm: src.opt_vector(&n("post_ffw_norm.weight"), dim)?,
            });
        }
        Ok(ModelWeights { token_embd, output_norm: src.vector_len("output_norm.weight", dim)?, output, layers })
    }
}
