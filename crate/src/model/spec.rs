//! `ModelSpec`: one struct describing every supported architecture of the Llama family. The
//! differences between Llama, Qwen2, Qwen3, Mistral, Phi-3 and Gemma are fields here, not
//! copies of the forward pass.

use crate::error::{Error, Result};
use crate::format::gguf::{GgufFile, Value};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arch {
    Llama,
    Mistral,
    Qwen2,
    Qwen3,
    Phi3,
    Gemma,
    Gemma2,
    Gemma3,
}

impl Arch {
    /// From GGUF's `general.architecture` or Hugging Face's `model_type`.
    pub fn from_name(name: &str) -> Option<Arch> {
        Some(match name {
            "llama" => Arch::Llama,
            "mistral" => Arch::Mistral,
            "qwen2" => Arch::Qwen2,
            "qwen3" => Arch::Qwen3,
            "phi3" => Arch::Phi3,
            "gemma" => Arch::Gemma,
            "gemma2" => Arch::Gemma2,
            "gemma3" | "gemma3_text" => Arch::Gemma3,
            _ => return None,
        })
    }

    fn is_gemma(self) -> bool {
        matches!(self, Arch::Gemma | Arch::Gemma2 | Arch::Gemma3)
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Activation {
    Silu,
    GeluTanh,
}

/// How rotary frequencies are stretched for long contexts.
#[derive(Debug, Clone, PartialEq)]
pub enum RopeScaling {
    None,
    /// Positions divided by `factor`.
    Linear { factor: f32 },
    /// Llama 3's piecewise frequency scaling.
    Llama3 { factor: f32, low_freq_factor: f32, high_freq_factor: f32, original_context: f32 },
    /// One divisor per frequency (GGUF `rope_freqs.weight`, Phi-3's short factors), with an
    /// attention factor applied to cos/sin.
    Factors { factors: Vec<f32>, attn_factor: f32 },
}

#[derive(Debug, Clone)]
pub struct ModelSpec {
    pub arch: Arch,
    pub vocab_size: usize,
    pub dim: usize,
    pub n_layers: usize,
    pub n_heads: usize,
    pub n_kv_heads: usize,
    pub head_dim: usize,
    pub ffn_dim: usize,
    /// The context the model was trained for.
    pub context_length: usize,
    pub norm_eps: f32,
    pub rope_theta: f32,
    /// Gemma 3's sliding-window layers use their own base.
    pub rope_theta_local: Option<f32>,
    pub rope_dims: usize,
    /// GGUF `llama` stores Q/K permuted for adjacent-pair rotation; everything else rotates halves.
    pub rope_interleaved: bool,
    pub rope_scaling: RopeScaling,
    pub activation: Activation,
    /// Gemma multiplies embeddings by sqrt(dim).
    pub embed_scale: Option<f32>,
    pub attn_scale: f32,
    pub attn_softcap: Option<f32>,
    pub final_softcap: Option<f32>,
    pub sliding_window: Option<usize>,
    /// Layer `i` uses the sliding window when `(i + 1) % period != 0` (Gemma 3: 6) or
    /// `i % 2 == 0` (Gemma 2: period 2).
    pub sliding_window_period: usize,
}

impl ModelSpec {
    pub fn is_sliding_layer(&self, layer: usize) -> bool {
        match (self.sliding_window, self.arch) {
            (None, _) => false,
            (Some(_), Arch::Gemma2) => layer % 2 == 0,
            (Some(_), _) => self.sliding_window_period <= 1 || (layer + 1) % self.sliding_window_period != 0,
        }
    }

    pub fn q_dim(&self) -> usize {
        self.n_heads * self.head_dim
    }
    pub fn kv_dim(&self) -> usize {
        self.n_kv_heads * self.head_dim
    }

    /// Rotation angle per position of each pair, for `layer`.
    pub fn inv_freq(&self, layer: usize) -> Vec<f32> {
        let theta = match self.rope_theta_local {
            Some(t) if self.is_sliding_layer(layer) => t,
            _ => self.rope_theta,
        } as f64;
        let n = self.rope_dims / 2;
        let base: Vec<f64> = (0..n).map(|i| theta.powf(-2.0 * i as f64 / self.rope_dims as f64)).collect();
        let sliding_local = self.rope_theta_local.is_some() && self.is_sliding_layer(layer);
        let scaled: Vec<f64> = match &self.rope_scaling {
            _ if sliding_local => base,
            RopeScaling::None => base,
            RopeScaling::Linear { factor } => base.iter().map(|f| f / *factor as f64).collect(),
            RopeScaling::Factors { factors, .. } => base.iter().zip(factors).map(|(f, d)| f / *d as f64).collect(),
            RopeScaling::Llama3 { factor, low_freq_factor, high_freq_factor, original_context } => {
                let (factor, low, high, orig) = (*factor as f64, *low_freq_factor as f64, *high_freq_factor as f64, *original_context as f64);
                let (low_wl, high_wl) = (orig / low, orig / high);
                base.iter()
                    .map(|&f| {
                        let wl = 2.0 * std::f64::consts::PI / f;
                        if wl < high_wl {
                            f
                        } else if wl > low_wl {
                            f / factor
                        } else {
                            let smooth = (orig / wl - low) / (high - low);
                            (1.0 - smooth) * f / factor + smooth * f
                        }
                    })
                    .collect()
            }
        };
        scaled.into_iter().map(|f| f as f32).collect()
    }

    pub fn rope_attn_factor(&self) -> f32 {
        match self.rope_scaling {
            RopeScaling::Factors { attn_factor, .. } => attn_factor,
            _ => 1.0,
        }
    }

    /// Reads the spec from GGUF metadata. Tensor-dependent parts (rope factors) are filled by the
    /// weight loader.
    pub fn from_gguf(g: &GgufFile) -> Result<ModelSpec> {
        let file = &g.file;
        let arch_name = g.architecture()?;
        let arch = Arch::from_name(arch_name).ok_or_else(|| Error::UnknownArchitecture { file: file.clone(), arch: arch_name.to_string() })?;
        let key = |k: &str| format!("{arch_name}.{k}");
        let get_u = |k: &str| -> Result<usize> {
            g.get(&key(k)).and_then(Value::as_u64).map(|v| v as usize).ok_or_else(|| Error::format(file, format!("metadata {} is missing or not an integer", key(k))))
        };
        let opt_u = |k: &str| g.get(&key(k)).and_then(Value::as_u64).map(|v| v as usize);
        let opt_f = |k: &str| g.get(&key(k)).and_then(Value::as_f64).map(|v| v as f32);
        let dim = get_u("embedding_length")?;
        let n_heads = get_u("attention.head_count")?;
        let n_kv_heads = opt_u("attention.head_count_kv").unwrap_or(n_heads);
        let head_dim = match opt_u("attention.key_length") {
            Some(h) => h,
            None if n_heads > 0 => dim / n_heads,
            None => 0,
        };
        let vocab_size = match opt_u("vocab_size") {
            Some(v) => v,
            None => g.get("tokenizer.ggml.tokens").and_then(Value::as_strings).map(|a| a.len()).unwrap_or(0),
        };
        let factor = opt_f("rope.scaling.factor").unwrap_or(1.0);
        let rope_scaling = match g.get(&key("rope.scaling.type")).and_then(Value::as_str) {
            Some("linear") if factor != 1.0 => RopeScaling::Linear { factor },
            _ => RopeScaling::None,
        };
        let sliding_window = opt_u("attention.sliding_window").filter(|&w| w > 0);
        let spec = ModelSpec {
            arch,
            vocab_size,
            dim,
            n_layers: get_u("block_count")?,
            n_heads,
            n_kv_heads,
            head_dim,
            ffn_dim: get_u("feed_forward_length")?,
            context_length: opt_u("context_length").unwrap_or(2048),
            norm_eps: opt_f("attention.layer_norm_rms_epsilon").unwrap_or(1e-5),
            rope_theta: opt_f("rope.freq_base").unwrap_or(10000.0),
            rope_theta_local: (arch == Arch::Gemma3).then_some(10000.0),
            rope_dims: opt_u("rope.dimension_count").unwrap_or(head_dim),
            rope_interleaved: matches!(arch, Arch::Llama | Arch::Mistral),
            rope_scaling,
            activation: if arch.is_gemma() { Activation::GeluTanh } else { Activation::Silu },
            embed_scale: arch.is_gemma().then(|| (dim as f32).sqrt()),
            attn_scale: 1.0 / (head_dim as f32).sqrt(),
            attn_softcap: opt_f("attn_logit_softcapping").filter(|&c| c > 0.0),
            final_softcap: opt_f("final_logit_softcapping").filter(|&c| c > 0.0),
            sliding_window,
            sliding_window_period: if arch == Arch::Gemma3 { 6 } else { 1 },
        };
        spec.validate(file)
    }

    /// Reads the spec from a Hugging Face `config.json`.
    pub fn from_hf_config(file: &str, cfg: &serde_json::Value) -> Result<ModelSpec> {
        let model_type = cfg.get("model_type").and_then(|v| v.as_str()).ok_or_else(|| Error::format(file, "model_type is missing"))?;
        let arch = Arch::from_name(model_type).ok_or_else(|| Error::UnknownArchitecture { file: file.to_string(), arch: model_type.to_string() })?;
        let cfg = cfg.get("text_config").unwrap_or(cfg);
        let get_u = |k: &str| -> Result<usize> { cfg.get(k).and_then(|v| v.as_u64()).map(|v| v as usize).ok_or_else(|| Error::format(file, format!("{k} is missing or not an integer"))) };
        let opt_u = |k: &str| cfg.get(k).and_then(|v| v.as_u64()).map(|v| v as usize);
        let opt_f = |k: &str| cfg.get(k).and_then(|v| v.as_f64()).map(|v| v as f32);
        let dim = get_u("hidden_size")?;
        let n_heads = get_u("num_attention_heads")?;
        let head_dim = opt_u("head_dim").unwrap_or(if n_heads > 0 { dim / n_heads } else { 0 });
        let rope_scaling = match cfg.get("rope_scaling").filter(|v| v.is_object()) {
            None => RopeScaling::None,
            Some(rs) => {
                let f = |k: &str| rs.get(k).and_then(|v| v.as_f64()).map(|v| v as f32);
                let ty = rs.get("rope_type").or_else(|| rs.get("type")).and_then(|v| v.as_str()).unwrap_or("");
                match ty {
                    "llama3" => RopeScaling::Llama3 {
                        factor: f("factor").unwrap_or(1.0),
                        low_freq_factor: f("low_freq_factor").unwrap_or(1.0),
                        high_freq_factor: f("high_freq_factor").unwrap_or(4.0),
                        original_context: f("original_max_position_embeddings").unwrap_or(8192.0),
                    },
                    "linear" => RopeScaling::Linear { factor: f("factor").unwrap_or(1.0) },
                    "longrope" | "su" => {
                        let factors: Vec<f32> = rs.get("short_factor").and_then(|v| v.as_array()).map(|a| a.iter().filter_map(|x| x.as_f64()).map(|x| x as f32).collect()).unwrap_or_default();
                        let max_pos = opt_f("max_position_embeddings").unwrap_or(4096.0);
                        let orig = opt_f("original_max_position_embeddings").unwrap_or(max_pos);
                        let scale = max_pos / orig;
                        let attn_factor = if scale <= 1.0 { 1.0 } else { (1.0 + scale.ln() / orig.ln()).sqrt() };
                        RopeScaling::Factors { factors, attn_factor }
                    }
                    "default" | "" => RopeScaling::None,
                    other => return Err(Error::format(file, format!("rope_scaling type '{other}' is not supported"))),
                }
            }
        };
        let hidden_act = cfg.get("hidden_activation").or_else(|| cfg.get("hidden_act")).and_then(|v| v.as_str()).unwrap_or("silu");
        let sliding_window = opt_u("sliding_window").filter(|_| arch.is_gemma() || cfg.get("use_sliding_window").and_then(|v| v.as_bool()).unwrap_or(false));
        let spec = ModelSpec {
            arch,
            vocab_size: get_u("vocab_size")?,
            dim,
            n_layers: get_u("num_hidden_layers")?,
            n_heads,
            n_kv_heads: opt_u("num_key_value_heads").unwrap_or(n_heads),
            head_dim,
            ffn_dim: get_u("intermediate_size")?,
            context_length: opt_u("max_position_embeddings").unwrap_or(2048),
            norm_eps: opt_f("rms_norm_eps").unwrap_or(1e-6),
            rope_theta: opt_f("rope_theta").unwrap_or(10000.0),
            rope_theta_local: if arch == Arch::Gemma3 { Some(opt_f("rope_local_base_freq").unwrap_or(10000.0)) } else { None },
            rope_dims: (head_dim as f32 * opt_f("partial_rotary_factor").unwrap_or(1.0)) as usize,
            rope_interleaved: false,
            rope_scaling,
            activation: if hidden_act.starts_with("gelu") { Activation::GeluTanh } else { Activation::Silu },
            embed_scale: arch.is_gemma().then(|| (dim as f32).sqrt()),
            attn_scale: 1.0 / opt_f("query_pre_attn_scalar").unwrap_or(head_dim as f32).sqrt(),
            attn_softcap: opt_f("attn_logit_softcapping").filter(|&c| c > 0.0),
            final_softcap: opt_f("final_logit_softcapping").filter(|&c| c > 0.0),
            sliding_window,
            sliding_window_period: if arch == Arch::Gemma3 { opt_u("sliding_window_pattern").unwrap_or(6) } else { 1 },
        };
        spec.validate(file)
    }

    fn validate(self, file: &str) -> Result<ModelSpec> {
        let bad = |m: String| Err(Error::format(file, m));
        if self.dim == 0 || self.n_layers == 0 || self.n_heads == 0 || self.n_kv_heads == 0 || self.head_dim == 0 || self.ffn_dim == 0 || self.vocab_size == 0 {
            return bad(format!("model dimensions must be positive: {self:?}"));
        }
        if self.n_heads % self.n_kv_heads != 0 {
            return bad(format!("{} attention heads are not a multiple of {} KV heads", self.n_heads, self.n_kv_heads));
        }
        if self.rope_dims > self.head_dim || self.rope_dims % 2 != 0 {
            return bad(format!("rope dimension {} does not fit head dimension {}", self.rope_dims, self.head_dim));
        }
        if self.n_layers > 1024 || self.dim > 1 << 16 || self.vocab_size > 1 << 22 || self.head_dim > 1024 {
            return bad("model dimensions are beyond any supported model".to_string());
        }
        Ok(self)
    }
}
