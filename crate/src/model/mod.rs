//! A loaded model: spec, weights, tokenizer and chat template, from either format.

pub mod forward;
pub mod spec;
pub mod weights;

use crate::chat::ChatTemplate;
use crate::error::{Error, Result};
use crate::format::gguf::{GgufFile, Value};
use crate::format::safetensors::SafetensorsFile;
use crate::quant::GgmlType;
use crate::tokenizer::Tokenizer;
pub use spec::{Arch, ModelSpec};
use weights::{GgufSource, HfSource, ModelWeights};

/// How to load a model.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// The type f32/f16/bf16 safetensors matrices are quantized to at load; `None` keeps f32.
    pub quantize: Option<GgmlType>,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions { quantize: Some(GgmlType::Q4_0) }
    }
}

pub struct Model {
    /// File or directory name, for messages.
    pub name: String,
    pub spec: ModelSpec,
    pub weights: ModelWeights,
    pub tokenizer: Tokenizer,
    pub chat_template: Option<ChatTemplate>,
}

/// What a GGUF file's header alone gives: its metadata and tensor table, the model's spec, its
/// tokenizer and chat template. The web loader reads it as soon as the header has arrived, so
/// that the tokenizer (a third of a second for a 150k vocabulary) is built while the weights are
/// still on their way.
pub struct GgufHeader {
    name: String,
    gguf: GgufFile,
    file_len: usize,
    spec: ModelSpec,
    tokenizer: Tokenizer,
    chat_template: Option<ChatTemplate>,
}

impl GgufHeader {
    /// From `prefix`, the first bytes of the GGUF file `name` of `file_len` bytes: the whole
    /// file or at least its header (a shorter prefix is a truncation error).
    pub fn parse(name: &str, prefix: &[u8], file_len: usize) -> Result<GgufHeader> {
        let mut gguf = GgufFile::parse(name, prefix, file_len)?;
        let spec = ModelSpec::from_gguf(&gguf)?;
        let tokenizer = Tokenizer::from_gguf(&mut gguf)?;
        let chat_template = gguf.get("tokenizer.chat_template").and_then(Value::as_str).map(ChatTemplate::new).transpose()?;
        Ok(GgufHeader { name: name.to_string(), gguf, file_len, spec, tokenizer, chat_template })
    }
}

impl Model {
    /// From the bytes of a GGUF file.
    pub fn from_gguf(name: &str, bytes: Vec<u8>) -> Result<Model> {
        let header = GgufHeader::parse(name, &bytes, bytes.len())?;
        Model::from_gguf_header(header, bytes)
    }

    /// From a GGUF file's header, read before, and the file's `bytes`.
    pub fn from_gguf_header(header: GgufHeader, bytes: Vec<u8>) -> Result<Model> {
        let GgufHeader { name, gguf, file_len, mut spec, tokenizer, chat_template } = header;
        if bytes.len() != file_len {
            return Err(Error::format(&name, format!("its header was read from a file of {file_len} bytes, the file has {}", bytes.len())));
        }
        let src = GgufSource::new(&gguf, bytes);
        let weights = ModelWeights::load(&src, &mut spec)?;
        Ok(Model { name, spec, weights, tokenizer, chat_template })
    }

    /// From the files of a Hugging Face directory.
    pub fn from_hf(name: &str, config_json: &[u8], tokenizer_json: &[u8], tokenizer_config_json: Option<&[u8]>, safetensors: Vec<u8>, opts: &LoadOptions) -> Result<Model> {
        let parse_json = |file: &str, b: &[u8]| -> Result<serde_json::Value> { serde_json::from_slice(b).map_err(|e| Error::format(&format!("{name}/{file}"), format!("not valid JSON: {e}"))) };
        let config = parse_json("config.json", config_json)?;
        let tok_config = tokenizer_config_json.map(|b| parse_json("tokenizer_config.json", b)).transpose()?;
        let mut spec = ModelSpec::from_hf_config(&format!("{name}/config.json"), &config)?;
        let tokenizer = Tokenizer::from_json(&format!("{name}/tokenizer.json"), tokenizer_json, tok_config.as_ref())?;
        let st = SafetensorsFile::parse(&format!("{name}/model.safetensors"), safetensors)?;
        let src = HfSource::new(&st, spec.arch, opts.quantize);
        let weights = ModelWeights::load(&src, &mut spec)?;
        let chat_template = tok_config.as_ref().and_then(|c| c.get("chat_template")).and_then(|t| t.as_str()).map(ChatTemplate::new).transpose()?;
        Ok(Model { name: name.to_string(), spec, weights, tokenizer, chat_template })
    }

    /// Opens a `.gguf` file or a Hugging Face directory from disk.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn open(path: &std::path::Path, opts: &LoadOptions) -> Result<Model> {
        let read = |p: &std::path::Path| std::fs::read(p).map_err(|e| Error::Io { path: p.display().to_string(), source: e });
        let name = path.display().to_string();
        if path.is_dir() {
            let tok_config = path.join("tokenizer_config.json");
            let tok_config = if tok_config.exists() { Some(read(&tok_config)?) } else { None };
            Model::from_hf(&name, &read(&path.join("config.json"))?, &read(&path.join("tokenizer.json"))?, tok_config.as_deref(), read(&path.join("model.safetensors"))?, opts)
        } else {
            Model::from_gguf(&name, read(path)?)
        }
    }

    /// The prompt text for `messages` through the model's chat template.
    pub fn apply_chat_template(&self, messages: &[crate::chat::Message], add_generation_prompt: bool) -> Result<String> {
        let t = self.chat_template.as_ref().ok_or_else(|| Error::Template(format!("{} has no chat template", self.name)))?;
        t.render(
            messages,
            &crate::chat::RenderOptions { add_generation_prompt, bos_token: self.tokenizer.bos_token.clone(), eos_token: self.tokenizer.eos_token.clone(), extra: None },
        )
    }
}
