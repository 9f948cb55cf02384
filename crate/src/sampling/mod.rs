//! Choosing the next token from logits: penalties, then top-k, top-p, min-p, temperature and a
//! seeded draw (llama.cpp's order). Temperature 0 is greedy.

use crate::error::{Error, Result};

#[derive(Debug, Clone, PartialEq)]
pub struct SamplingParams {
    /// 0 → greedy.
    pub temperature: f32,
    /// 0 → off.
    pub top_k: usize,
    /// 1 → off.
    pub top_p: f32,
    /// 0 → off.
    pub min_p: f32,
    /// Divides positive logits (multiplies negative ones) of tokens seen in the last
    /// `penalty_last_n` tokens. 1 → off.
    pub repetition_penalty: f32,
    /// Subtracts `count × frequency_penalty` from a seen token's logit.
    pub frequency_penalty: f32,
    /// Subtracts `presence_penalty` once from a seen token's logit.
    pub presence_penalty: f32,
    pub penalty_last_n: usize,
    pub seed: u64,
}

impl Default for SamplingParams {
    fn default() -> Self {
        SamplingParams { temperature: 0.0, top_k: 0, top_p: 1.0, min_p: 0.0, repetition_penalty: 1.0, frequency_penalty: 0.0, presence_penalty: 0.0, penalty_last_n: 64, seed: 0 }
    }
}

impl SamplingParams {
    pub fn validate(&self) -> Result<()> {
        let bad = |m: &str| Err(Error::InvalidArgument(m.to_string()));
        if !(self.temperature >= 0.0 && self.temperature.is_finite()) {
            return bad("temperature must be a finite number >= 0");
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            return bad("top_p must be in (0, 1]");
        }
        if !(0.0..=1.0).contains(&self.min_p) {
            return bad("min_p must be in [0, 1]");
        }
        if !(self.repetition_penalty > 0.0 && self.repetition_penalty.is_finite()) {
            return bad("repetition_penalty must be > 0");
        }
        if !self.frequency_penalty.is_finite() || !self.presence_penalty.is_finite() {
            return bad("frequency_penalty and presence_penalty must be finite");
        }
        Ok(())
    }
}

/// A sampler with its own random stream: the same seed and logits give the same tokens.
pub struct Sampler {
    pub params: SamplingParams,
    rng: fastrand::Rng,
    candidates: Vec<(u32, f32)>,
}

impl Sampler {
    pub fn new(params: SamplingParams) -> Result<Sampler> {
        params.validate()?;
        let rng = fastrand::Rng::with_seed(params.seed);
        Ok(Sampler { params, rng, candidates: Vec::new() })
    }

    /// Whether any of the penalties is on.
    pub fn has_penalties(&self) -> bool {
        let p = &self.params;
        p.repetition_penalty != 1.0 || p.frequency_penalty != 0.0 || p.presence_penalty != 0.0
    }

    /// The tokens the penalties apply to, with how often each occurs in the last
    /// `penalty_last_n` tokens of `history` (empty when no penalty is on).
    pub fn penalty_counts(&self, history: &[u32]) -> Vec<(u32, u32)> {
        if !self.has_penalties() {
            return Vec::new();
        }
        let recent = &history[history.len().saturating_sub(self.params.penalty_last_n)..];
        let mut counts: Vec<(u32, u32)> = Vec::new();
        for &t in recent {
            match counts.iter_mut().find(|(id, _)| *id == t) {
                Some(c) => c.1 += 1,
                None => counts.push((t, 1)),
            }
        }
        counts
    }

    /// Applies the penalties to `logits` for the tokens in `history`.
    pub fn apply_penalties(&self, logits: &mut [f32], history: &[u32]) {
        let p = &self.params;
        for (t, n) in self.penalty_counts(history) {
            let Some(l) = logits.get_mut(t as usize) else { continue };
            if *l > 0.0 {
                *l /= p.repetition_penalty;
            } else {
                *l *= p.repetition_penalty;
            }
            *l -= n as f32 * p.frequency_penalty + p.presence_penalty;
        }
    }

    /// The uniform number in [0, 1) the next draw uses, for a sampler running elsewhere (the
    /// GPU): the same stream [`Sampler::sample`] consumes, one number per non-greedy draw.
    pub fn next_draw(&mut self) -> f32 {
        self.rng.f32()
    }

    /// The next token. `logits` is modified (penalties applied).
    pub fn sample(&mut self, logits: &mut [f32], history: &[u32]) -> u32 {
        self.apply_penalties(logits, history);
        let p = self.params.clone();
        if p.temperature == 0.0 {
            return argmax(logits);
        }
        let c = &mut self.candidates;
        c.clear();
        c.extend(logits.iter().enumerate().map(|(i, &l)| (i as u32, l)));
        c.sort_unstable_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        if p.top_k > 0 {
            c.truncate(p.top_k);
        }
        // Probabilities at temperature 1 for top-p and min-p (as llama.cpp's samplers see them).
        let max = c[0].1;
        let probs: Vec<f32> = c.iter().map(|&(_, l)| (l - max).exp()).collect();
        let total: f32 = probs.iter().sum();
        if p.top_p < 1.0 {
            let mut cum = 0.0;
            let mut keep = c.len();
            for (i, pr) in probs.iter().enumerate() {
                cum += pr / total;
                if cum >= p.top_p {
                    keep = i + 1;
                    break;
                }
            }
            c.truncate(keep);
        }
        if p.min_p > 0.0 {
            let threshold = p.min_p * probs[0];
            let keep = probs.iter().take(c.len()).take_while(|&&pr| pr >= threshold).count().max(1);
            c.truncate(keep);
        }
        let weights: Vec<f32> = c.iter().map(|&(_, l)| ((l - max) / p.temperature).exp()).collect();
        let total: f32 = weights.iter().sum();
        let mut r = self.rng.f32() * total;
        for (i, w) in weights.iter().enumerate() {
            r -= w;
            if r <= 0.0 {
                return c[i].0;
            }
        }
        c[c.len() - 1].0
    }
}

/// Index of the largest value (the first one on ties).
pub fn argmax(x: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &v) in x.iter().enumerate() {
        if v > x[best] {
            best = i;
        }
    }
    best as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn logits() -> Vec<f32> {
        vec![1.0, 3.0, 2.5, -1.0, 0.5, 2.9]
    }

    #[test]
    fn greedy_takes_the_largest() {
        let mut s = Sampler::new(SamplingParams::default()).unwrap();
        assert_eq!(s.sample(&mut logits(), &[]), 1);
    }

    #[test]
    fn penalties_follow_llama_cpp_formulas() {
        let s = Sampler::new(SamplingParams { repetition_penalty: 2.0, frequency_penalty: 0.5, presence_penalty: 0.25, ..Default::default() }).unwrap();
        let mut l = logits();
        s.apply_penalties(&mut l, &[1, 1, 3]);
        assert_eq!(l[1], 3.0 / 2.0 - 2.0 * 0.5 - 0.25);
        assert_eq!(l[3], -1.0 * 2.0 - 0.5 - 0.25);
        assert_eq!(l[2], 2.5);
        let mut greedy = Sampler::new(SamplingParams { repetition_penalty: 2.0, ..Default::default() }).unwrap();
        assert_eq!(greedy.sample(&mut logits(), &[1]), 5, "the repeated best token loses to the next");
    }

    #[test]
    fn same_seed_same_draws_and_filters_hold() {
        let params = SamplingParams { temperature: 1.5, seed: 42, ..Default::default() };
        let draw = |p: SamplingParams| {
            let mut s = Sampler::new(p).unwrap();
            (0..200).map(|_| s.sample(&mut logits(), &[])).collect::<Vec<_>>()
        };
        assert_eq!(draw(params.clone()), draw(params.clone()));
        assert_ne!(draw(params.clone()), draw(SamplingParams { seed: 7, ..params.clone() }));
        let all = draw(params.clone());
        assert!(all.contains(&3) || all.contains(&0), "high temperature reaches unlikely tokens");
        let top2 = draw(SamplingParams { top_k: 2, ..params.clone() });
        assert!(top2.iter().all(|&t| t == 1 || t == 5) && top2.contains(&1) && top2.contains(&5));
        // top_p 0.5 keeps the smallest set reaching half the mass: tokens 1 and 5.
        let nucleus = draw(SamplingParams { top_p: 0.5, ..params.clone() });
        assert!(nucleus.iter().all(|&t| t == 1 || t == 5));
        // min_p 0.8: only tokens with p >= 0.8 p_max: exp(-0.1)=0.905 (token 5) stays, exp(-0.5)=0.61 (token 2) goes.
        let minp = draw(SamplingParams { min_p: 0.8, ..params });
        assert!(minp.iter().all(|&t| t == 1 || t == 5) && minp.contains(&5));
    }

    #[test]
    fn bad_params_are_errors() {
        assert!(Sampler::new(SamplingParams { temperature: -1.0, ..Default::default() }).is_err());
        assert!(Sampler::new(SamplingParams { top_p: 0.0, ..Default::default() }).is_err());
        assert!(Sampler::new(SamplingParams { min_p: 2.0, ..Default::default() }).is_err());
    }
}
