// Sampling on the GPU, so that decode reads back only the token id.
// penalize: repetition / frequency / presence penalties for the step.n_penalties (token, count)
// pairs of PEN (llama.cpp's formulas). pick: one workgroup; greedy when step.temperature is 0,
// else top-k, top-p and min-p (on temperature-1 probabilities) by bisection on the logit
// threshold, then a draw at step.temperature with the uniform step.draw, in token order.
// dims.a = (vocab, -, -, -). RESULT[0] = the token.
@group(0) @binding(2) var<storage, read_write> LOGITS: array<f32>;
@group(0) @binding(3) var<storage, read> PEN: array<vec2<u32>>;
@group(0) @binding(4) var<storage, read_write> RESULT: array<u32>;

const N: u32 = 256u;
var<workgroup> rv: array<f32, 256>;
var<workgroup> ri: array<u32, 256>;
var<workgroup> found: u32;

@compute @workgroup_size(64)
fn penalize(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.x;
    if i >= step.n_penalties {
        return;
    }
    let t = PEN[i].x;
    if t >= dims.a.x {
        return;
    }
    var l = LOGITS[t];
    l = select(l * step.repetition_penalty, l / step.repetition_penalty, l > 0.0);
    LOGITS[t] = l - (f32(PEN[i].y) * step.frequency_penalty + step.presence_penalty);
}

// (Each starts with a barrier: the previous workgroupUniformLoad of rv[0] may still be running.)
fn all_sum(v: f32, lid: u32) -> f32 {
    workgroupBarrier();
    rv[lid] = v;
    workgroupBarrier();
    for (var s = N / 2u; s > 0u; s >>= 1u) {
        if lid < s {
            rv[lid] += rv[lid + s];
        }
        workgroupBarrier();
    }
    return workgroupUniformLoad(&rv[0]);
}

fn all_max(v: f32, lid: u32) -> f32 {
    workgroupBarrier();
    rv[lid] = v;
    workgroupBarrier();
    for (var s = N / 2u; s > 0u; s >>= 1u) {
        if lid < s {
            rv[lid] = max(rv[lid], rv[lid + s]);
        }
        workgroupBarrier();
    }
    return workgroupUniformLoad(&rv[0]);
}

// How many logits are >= t, as f32.
fn count_from(t: f32, lid: u32) -> f32 {
    var n = 0.0;
    for (var i = lid; i < dims.a.x; i += N) {
        n += select(0.0, 1.0, LOGITS[i] >= t);
    }
    return all_sum(n, lid);
}

// Sum of exp((l - m) / temp) over logits l >= t.
fn mass_from(t: f32, m: f32, temp: f32, lid: u32) -> f32 {
    var s = 0.0;
    for (var i = lid; i < dims.a.x; i += N) {
        let l = LOGITS[i];
        s += select(0.0, exp((l - m) / temp), l >= t);
    }
    return all_sum(s, lid);
}

@compute @workgroup_size(256)
fn pick(@builtin(local_invocation_index) lid: u32) {
    let vocab = dims.a.x;
    // The largest logit, first index on ties.
    var best = -3.0e38;
    var best_i = 0u;
    var low = 3.0e38;
    for (var i = lid; i < vocab; i += N) {
        let l = LOGITS[i];
        if l > best {
            best = l;
            best_i = i;
        }
        low = min(low, l);
    }
    rv[lid] = best;
    ri[lid] = best_i;
    workgroupBarrier();
    for (var s = N / 2u; s > 0u; s >>= 1u) {
        if lid < s {
            let v = rv[lid + s];
            let j = ri[lid + s];
            if v > rv[lid] || (v == rv[lid] && j < ri[lid]) {
                rv[lid] = v;
                ri[lid] = j;
            }
        }
        workgroupBarrier();
    }
    let m = workgroupUniformLoad(&rv[0]);
    if step.temperature == 0.0 {
        if lid == 0u {
            RESULT[0] = ri[0];
        }
        return;
    }
    let lowest = -all_max(-low, lid);
    // top-k: the largest threshold keeping at least k tokens.
    var tk = lowest;
    if step.top_k > 0u && step.top_k < vocab {
        var lo = lowest;
        var hi = m;
        let at_max = count_from(m, lid) >= f32(step.top_k);
        for (var it = 0u; it < 40u; it++) {
            let mid = 0.5 * (lo + hi);
            let keep = count_from(mid, lid) >= f32(step.top_k);
            lo = select(lo, mid, keep);
            hi = select(mid, hi, keep);
        }
        tk = select(lo, m, at_max);
    }
    // top-p: the largest threshold (at or above tk) keeping at least top_p of the mass.
    var tp = tk;
    if step.top_p < 1.0 {
        let wanted = step.top_p * mass_from(tk, m, 1.0, lid);
        var lo = tk;
        var hi = m;
        let at_max = mass_from(m, m, 1.0, lid) >= wanted;
        for (var it = 0u; it < 40u; it++) {
            let mid = 0.5 * (lo + hi);
            let keep = mass_from(mid, m, 1.0, lid) >= wanted;
            lo = select(lo, mid, keep);
            hi = select(mid, hi, keep);
        }
        tp = select(lo, m, at_max);
    }
    var t = max(tk, tp);
    if step.min_p > 0.0 {
        t = max(t, m + log(step.min_p));
    }
    // The draw: each invocation owns a contiguous range of token ids.
    let span = (vocab + N - 1u) / N;
    let start = min(lid * span, vocab);
    let end = min(start + span, vocab);
    var mine = 0.0;
    for (var i = start; i < end; i++) {
        let l = LOGITS[i];
        mine += select(0.0, exp((l - m) / step.temperature), l >= t);
    }
    workgroupBarrier();
    rv[lid] = mine;
    workgroupBarrier();
    if lid == 0u {
        var total = 0.0;
        for (var j = 0u; j < N; j++) {
            total += rv[j];
        }
        var left = step.draw * total;
        var owner = 0u;
        for (var j = 0u; j < N; j++) {
            if rv[j] > 0.0 {
                owner = j;
                if left <= rv[j] {
                    break;
                }
                left -= rv[j];
            }
        }
        rv[0] = left;
        found = owner;
    }
    workgroupBarrier();
    if lid == found {
        var left = rv[0];
        var tok = best_i;
        for (var i = start; i < end; i++) {
            let l = LOGITS[i];
            if l >= t {
                tok = i;
                left -= exp((l - m) / step.temperature);
                if left <= 0.0 {
                    break;
                }
            }
        }
        RESULT[0] = tok;
    }
}
