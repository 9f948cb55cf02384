//! Bad files give typed errors that name the file and the problem: never a panic, never an
//! allocation sized by an untrusted number.

mod common;

use pocketlm::{Error, LoadOptions, Model};

const NAME: &str = "bad.gguf";

/// A minimal GGUF writer for hand-made broken files.
struct Gguf {
    kv: Vec<u8>,
    n_kv: u64,
    tensors: Vec<u8>,
    n_tensors: u64,
}

impl Gguf {
    fn new() -> Gguf {
        Gguf { kv: Vec::new(), n_kv: 0, tensors: Vec::new(), n_tensors: 0 }
    }
    fn str(buf: &mut Vec<u8>, s: &str) {
        buf.extend((s.len() as u64).to_le_bytes());
        buf.extend(s.as_bytes());
    }
    fn kv_str(mut self, k: &str, v: &str) -> Gguf {
        Gguf::str(&mut self.kv, k);
        self.kv.extend(8u32.to_le_bytes());
        Gguf::str(&mut self.kv, v);
        self.n_kv += 1;
        self
    }
    /// An array of strings, given as raw bytes (so invalid UTF-8 can be written).
    fn kv_strs(mut self, k: &str, v: &[&[u8]]) -> Gguf {
        Gguf::str(&mut self.kv, k);
        self.kv.extend(9u32.to_le_bytes());
        self.kv.extend(8u32.to_le_bytes());
        self.kv.extend((v.len() as u64).to_le_bytes());
        for s in v {
            self.kv.extend((s.len() as u64).to_le_bytes());
            self.kv.extend(*s);
        }
        self.n_kv += 1;
        self
    }
    fn kv_u32(mut self, k: &str, v: u32) -> Gguf {
        Gguf::str(&mut self.kv, k);
        self.kv.extend(4u32.to_le_bytes());
        self.kv.extend(v.to_le_bytes());
        self.n_kv += 1;
        self
    }
    fn tensor(mut self, name: &str, dims: &[u64], ty: u32, offset: u64) -> Gguf {
        Gguf::str(&mut self.tensors, name);
        self.tensors.extend((dims.len() as u32).to_le_bytes());
        dims.iter().for_each(|d| self.tensors.extend(d.to_le_bytes()));
        self.tensors.extend(ty.to_le_bytes());
        self.tensors.extend(offset.to_le_bytes());
        self.n_tensors += 1;
        self
    }
    fn bytes(&self, data_len: usize) -> Vec<u8> {
        let mut b = b"GGUF".to_vec();
        b.extend(3u32.to_le_bytes());
        b.extend(self.n_tensors.to_le_bytes());
        b.extend(self.n_kv.to_le_bytes());
        b.extend(&self.kv);
        b.extend(&self.tensors);
        b.resize(b.len().next_multiple_of(32) + data_len, 0);
        b
    }
}

fn load_err(bytes: Vec<u8>) -> Error {
    match Model::from_gguf(NAME, bytes) {
        Ok(_) => panic!("a broken file loaded"),
        Err(e) => e,
    }
}

fn assert_format(e: &Error, needle: &str) {
    let msg = e.to_string();
    assert_eq!(e.code(), "MODEL_FORMAT", "{msg}");
    assert!(msg.starts_with(NAME), "the message names the file: {msg}");
    assert!(msg.contains(needle), "{msg:?} should say {needle:?}");
}

#[test]
fn every_truncation_of_a_real_file_is_an_error() {
    let full = std::fs::read(common::shared_models().join("stories260k/stories260K.gguf")).unwrap();
    let mut cuts: Vec<usize> = (0..200).collect();
    cuts.extend((0..60).map(|i| full.len() * i / 60));
    cuts.push(full.len() - 1);
    for cut in cuts {
        let e = load_err(full[..cut].to_vec());
        assert_eq!(e.code(), "MODEL_FORMAT", "cut at {cut}: {e}");
        assert!(e.to_string().starts_with(NAME), "cut at {cut}: {e}");
    }
    assert!(Model::from_gguf(NAME, full).is_ok());
}

#[test]
fn wrong_magic_and_version() {
    assert_format(&load_err(b"GGML\x03\0\0\0".to_vec()), "not a GGUF file");
    let mut v1 = Gguf::new().bytes(0);
    v1[4] = 1;
    assert_format(&load_err(v1), "version 1");
    assert_format(&load_err(Vec::new()), "not a GGUF file");
}

#[test]
fn string_arrays_keep_every_string_and_a_short_one_is_an_error() {
    use pocketlm::format::gguf::GgufFile;
    let strings: [&[u8]; 5] = [b"a", b"", "\u{2581}the".as_bytes(), b"x\xffy", b"last one"];
    let b = Gguf::new().kv_strs("tokenizer.ggml.tokens", &strings).kv_u32("general.alignment", 32).bytes(0);
    let g = GgufFile::parse(NAME, &b, b.len()).unwrap();
    let a = g.get("tokenizer.ggml.tokens").and_then(|v| v.as_strings()).expect("an array of strings");
    let got: Vec<&str> = a.iter().collect();
    assert_eq!(got, ["a", "", "\u{2581}the", "x\u{fffd}y", "last one"]);
    assert_eq!((a.len(), a.get(2), a.get(5)), (5, Some("\u{2581}the"), None));
    assert_eq!(g.get("general.alignment").and_then(|v| v.as_u64()), Some(32), "the value after the array parses");
    // The last string claims more bytes than the file has left: an error naming the key.
    let mut b = Gguf::new().kv_strs("tokenizer.ggml.tokens", &strings).bytes(0);
    let at = b.windows(8).position(|w| w == b"last one").unwrap() - 8;
    b[at..at + 8].copy_from_slice(&(1u64 << 20).to_le_bytes());
    b.truncate(at + 16);
    assert_format(&load_err(b), "tokenizer.ggml.tokens");
}

#[test]
fn absurd_counts_are_refused_before_allocating() {
    let mut b = Gguf::new().bytes(0);
    b[8..16].copy_from_slice(&u64::MAX.to_le_bytes());
    assert_format(&load_err(b), "tensor count");
    let mut b = Gguf::new().bytes(0);
    b[16..24].copy_from_slice(&(1u64 << 60).to_le_bytes());
    assert_format(&load_err(b), "metadata count");
    // An array claiming 2^40 strings.
    let mut g = Gguf::new();
    Gguf::str(&mut g.kv, "tokenizer.ggml.tokens");
    g.kv.extend(9u32.to_le_bytes());
    g.kv.extend(8u32.to_le_bytes());
    g.kv.extend((1u64 << 40).to_le_bytes());
    g.n_kv = 1;
    assert_format(&load_err(g.bytes(0)), "only");
    // A string claiming 2^50 bytes.
    let mut g = Gguf::new();
    g.kv.extend((1u64 << 50).to_le_bytes());
    g.kv.extend([0u8; 64]);
    g.n_kv = 1;
    assert_format(&load_err(g.bytes(0)), "metadata key");
}

#[test]
fn tensor_offsets_dims_and_types_are_checked() {
    let base = || Gguf::new().kv_str("general.architecture", "llama");
    assert_format(&load_err(base().tensor("w", &[32, 4], 0, 1 << 40).bytes(64)), "ends past the end of the file");
    assert_format(&load_err(base().tensor("w", &[32, 4], 0, 7).bytes(1024)), "not aligned");
    assert_format(&load_err(base().tensor("w", &[0, 4], 0, 0).bytes(64)), "dimension 0");
    assert_format(&load_err(base().tensor("w", &[1 << 39, 1 << 39], 0, 0).bytes(64)), "overflows");
    assert_format(&load_err(base().tensor("w", &[30, 4], 2, 0).bytes(1024)), "not a multiple");
    let e = load_err(base().tensor("w", &[256, 4], 10, 0).bytes(4096));
    assert!(matches!(e, Error::UnsupportedTensorType { .. }), "{e}");
    assert!(e.to_string().contains("Q2_K") && e.to_string().contains("'w'"), "{e}");
}

#[test]
fn unknown_architecture_and_missing_tensors() {
    let e = load_err(Gguf::new().kv_str("general.architecture", "mamba").bytes(0));
    assert!(matches!(&e, Error::UnknownArchitecture { arch, .. } if arch == "mamba"), "{e}");
    assert_eq!(e.code(), "MODEL_FORMAT");
    assert_format(&load_err(Gguf::new().bytes(0)), "general.architecture");
    let g = Gguf::new()
        .kv_str("general.architecture", "llama")
        .kv_u32("llama.embedding_length", 64)
        .kv_u32("llama.block_count", 1)
        .kv_u32("llama.feed_forward_length", 128)
        .kv_u32("llama.attention.head_count", 4)
        .kv_u32("llama.vocab_size", 32)
        .kv_str("tokenizer.ggml.model", "gpt2");
    let e = load_err(g.bytes(0));
    assert_eq!(e.code(), "TOKENIZER", "{e}");
    assert!(e.to_string().contains("tokenizer.ggml.tokens"), "{e}");
}

#[test]
fn broken_hugging_face_files_name_the_file() {
    let dir = common::shared_models().join("tinystories-656k-hf");
    let cfg = std::fs::read(dir.join("config.json")).unwrap();
    let tok = std::fs::read(dir.join("tokenizer.json")).unwrap();
    let st = std::fs::read(dir.join("model.safetensors")).unwrap();
    let opts = LoadOptions::default();
    let e = Model::from_hf("m", &cfg, b"{ not json", None, st.clone(), &opts).err().unwrap();
    assert_eq!(e.code(), "TOKENIZER");
    assert!(e.to_string().starts_with("m/tokenizer.json"), "{e}");
    let e = Model::from_hf("m", br#"{"model_type": "mamba"}"#, &tok, None, st.clone(), &opts).err().unwrap();
    assert!(matches!(e, Error::UnknownArchitecture { .. }) && e.to_string().contains("m/config.json"), "{e}");
    let e = Model::from_hf("m", b"[1,", &tok, None, st.clone(), &opts).err().unwrap();
    assert!(e.to_string().contains("config.json") && e.to_string().contains("not valid JSON"), "{e}");
    let e = Model::from_hf("m", &cfg, &tok, None, st[..st.len() / 2].to_vec(), &opts).err().unwrap();
    assert!(e.to_string().starts_with("m/model.safetensors"), "{e}");
    let e = Model::open(std::path::Path::new("/nonexistent/model.gguf"), &opts).err().unwrap();
    assert_eq!(e.code(), "IO");
    assert!(e.to_string().contains("/nonexistent/model.gguf"), "{e}");
}

#[test]
fn context_overflow_is_an_error_not_a_crash() {
    let model = Model::open(&common::shared_models().join("stories260k/stories260K.gguf"), &LoadOptions::default()).unwrap();
    let mut s = pocketlm::Session::new(&model, 8).unwrap();
    let prompt: Vec<u32> = (1..20).collect();
    let e = s.generate(&prompt, &Default::default(), |_| true).err().unwrap();
    assert!(matches!(e, Error::ContextFull { needed: 19, capacity: 8 }), "{e}");
    let g = s.generate(&[1, 403, 407], &pocketlm::GenerateOptions { max_tokens: 100, ..Default::default() }, |_| true).unwrap();
    assert_eq!(g.finish_reason, pocketlm::FinishReason::ContextFull);
    assert_eq!(g.ids.len(), 8 - 3 + 1, "fills the cache, plus the token sampled from its last logits");
    assert!(s.step(5, true).is_err());
    let e = s.generate(&[1, 9999], &Default::default(), |_| true).err().unwrap();
    assert_eq!(e.code(), "INVALID_ARGUMENT", "{e}");
}

/// The web loader reads a GGUF header from the first bytes to arrive (the tokenizer is built
/// while the weights are still coming): the model is the one read from the whole file; a prefix
/// short of the header, and a header joined to a file of another length, are errors.
#[test]
fn a_header_read_from_the_first_bytes_gives_the_same_model() {
    use pocketlm::model::GgufHeader;
    let full = std::fs::read(common::shared_models().join("tinystories-656k-q8_0/TinyStories-656K-Q8_0.gguf")).unwrap();
    let whole = Model::from_gguf(NAME, full.clone()).unwrap();
    // The shortest prefix that holds the header (by bisection); one byte less is an error.
    let parses = |n: usize| GgufHeader::parse(NAME, &full[..n], full.len()).is_ok();
    let (mut short, mut enough) = (0, full.len());
    while enough - short > 1 {
        let mid = (short + enough) / 2;
        if parses(mid) {
            enough = mid;
        } else {
            short = mid;
        }
    }
    let header_end = enough;
    assert!(header_end < full.len() / 2, "the header is {header_end} of {} bytes", full.len());
    let e = GgufHeader::parse(NAME, &full[..header_end - 1], full.len()).err().unwrap();
    assert_format(&e, "truncated");
    let early = Model::from_gguf_header(GgufHeader::parse(NAME, &full[..header_end], full.len()).unwrap(), full.clone()).unwrap();
    let prompt = "Once upon a time, there was a little dog";
    let ids = whole.tokenizer.encode(prompt, true).unwrap();
    assert_eq!(early.tokenizer.encode(prompt, true).unwrap(), ids);
    let run = |m: &Model| common::session(m, "cpu", 256).generate(&ids, &pocketlm::GenerateOptions { max_tokens: 24, ..Default::default() }, |_| true).unwrap().ids;
    assert_eq!(run(&early), run(&whole));
    // A header of this file with the bytes of a shorter one.
    let header = GgufHeader::parse(NAME, &full[..header_end], full.len()).unwrap();
    let e = Model::from_gguf_header(header, full[..full.len() - 1].to_vec()).err().unwrap();
    assert_format(&e, "header was read from a file of");
}
