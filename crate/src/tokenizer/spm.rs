//! SentencePiece-style (`llama`) vocabularies tokenized the way llama.cpp does: adjacent symbols
//! merge by the score of the piece they form, ties going to the leftmost pair; pieces that are
//! not in the vocabulary fall back to `<0xXX>` byte tokens.
//!
//! A BPE rank list cannot express that tie rule, and real GGUF files depend on it (TinyStories
//! stores every score as -1000), so this one algorithm is pocketlm's own; everything else about
//! these tokenizers (special tokens, decoding) stays in the `tokenizers` crate.

use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap};

pub struct SpmModel {
    vocab: HashMap<String, u32>,
    scores: Vec<f32>,
    byte_tokens: [Option<u32>; 256],
    unk: Option<u32>,
}

struct Bigram {
    score: f32,
    left: usize,
    right: usize,
    size: usize,
}

impl PartialEq for Bigram {
    fn eq(&self, o: &Self) -> bool {
        self.cmp(o) == Ordering::Equal
    }
}
impl Eq for Bigram {}
impl PartialOrd for Bigram {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Bigram {
    /// Higher score first, then the leftmost.
    fn cmp(&self, o: &Self) -> Ordering {
        self.score.total_cmp(&o.score).then(o.left.cmp(&self.left))
    }
}

#[derive(Clone, Copy)]
struct Symbol {
    prev: Option<usize>,
    next: Option<usize>,
    start: usize,
    len: usize,
}

impl SpmModel {
    pub fn new(tokens: &[&str], scores: Vec<f32>, unk: Option<u32>) -> SpmModel {
        let vocab: HashMap<String, u32> = tokens.iter().enumerate().map(|(i, t)| (t.to_string(), i as u32)).collect();
        let mut byte_tokens = [None; 256];
        for (b, slot) in byte_tokens.iter_mut().enumerate() {
            *slot = vocab.get(&format!("<0x{b:02X}>")).copied();
        }
        SpmModel { vocab, scores, byte_tokens, unk }
    }

    fn score(&self, id: u32) -> f32 {
        self.scores.get(id as usize).copied().unwrap_or(0.0)
    }

    /// Ids of `text` (already escaped: spaces as `▁`).
    pub fn encode(&self, text: &str, out: &mut Vec<u32>) {
        let mut syms: Vec<Symbol> = Vec::new();
        for (i, (start, c)) in text.char_indices().enumerate() {
            syms.push(Symbol { prev: i.checked_sub(1), next: None, start, len: c.len_utf8() });
            if i > 0 {
                syms[i - 1].next = Some(i);
            }
        }
        let mut heap = BinaryHeap::new();
        let try_add = |heap: &mut BinaryHeap<Bigram>, syms: &[Symbol], l: Option<usize>, r: Option<usize>| {
            let (Some(l), Some(r)) = (l, r) else { return };
            let (s, e) = (syms[l].start, syms[r].start + syms[r].len);
            if let Some(&id) = self.vocab.get(&text[s..e]) {
                heap.push(Bigram { score: self.score(id), left: l, right: r, size: e - s });
            }
        };
        for i in 1..syms.len() {
            try_add(&mut heap, &syms, Some(i - 1), Some(i));
        }
        while let Some(b) = heap.pop() {
            let (l, r) = (syms[b.left], syms[b.right]);
            // A bigram queued before one of its symbols merged elsewhere is stale.
            if l.len == 0 || r.len == 0 || l.len + r.len != b.size {
                continue;
            }
            syms[b.left].len += r.len;
            syms[b.right].len = 0;
            syms[b.left].next = r.next;
            if let Some(n) = r.next {
                syms[n].prev = Some(b.left);
            }
            try_add(&mut heap, &syms, syms[b.left].prev, Some(b.left));
            try_add(&mut heap, &syms, Some(b.left), syms[b.left].next);
        }
        // Every merged piece is in the vocabulary; what is left unmerged and unknown is one
        // character, written as its UTF-8 bytes.
        let mut i = if syms.is_empty() { None } else { Some(0) };
        while let Some(s) = i {
            let p = &text[syms[s].start..syms[s].start + syms[s].len];
            match self.vocab.get(p) {
                Some(&id) => out.push(id),
                None => p.bytes().for_each(|b| out.extend(self.byte_tokens[b as usize].or(self.unk))),
            }
            i = syms[s].next;
        }
    }
}
