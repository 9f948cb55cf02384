// Split-KV attention ("flash decoding"), pass 1 of 3: workgroup (h, s, t) scores positions
// 64s .. 64s+63 against query head h of token t (the query rounded to f16, as ggml multiplies it
// with the f16 cache; causal: token t sees positions up to its own), keeps the scores and writes
// the split's max and sum of exponentials. Per token: SCORES n_heads × capacity, STATS
// n_heads × max_splits × 2.
// dims.a = (n_heads, n_kv_heads, head_dim, kv_dim), dims.b = (max_splits, sliding window or 0,
// capacity, -), dims.f = (score scale, soft-cap or 0, -, -).
@group(0) @binding(2) var<storage, read> Q: array<f32>;
// The f16 cache: pairs read as vec2<f16> where the device has shader-f16, else as u32 words
// unpacked (kernels.rs fills in KV_WORD and KV_PAIR).
@group(0) @binding(3) var<storage, read> KC: array<KV_WORD>;
@group(0) @binding(4) var<storage, read_write> STATS: array<f32>;
@group(0) @binding(5) var<storage, read_write> SCORES: array<f32>;

const NONE: f32 = -1.0e30;
var<workgroup> exps: array<f32, 64>;

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let nh = dims.a.x;
    let hd = dims.a.z;
    let h = wid.x;
    let s = wid.y;
    let t = wid.z;
    if t >= step.n_tokens {
        return;
    }
    let len = step.pos + t + 1u;
    let ms = dims.b.x;
    let first = window_first(len, dims.b.y);
    let kvh = h / (nh / dims.a.y);
    let p = s * WG + lid;
    let valid = p < len && p >= first;
    var score = NONE;
    if valid {
        let kb = (p * dims.a.w + kvh * hd) / 2u;
        let qb = t * (nh * hd + 2u * dims.a.w) + h * hd;
        var acc = 0.0;
        for (var i = 0u; i < hd / 2u; i++) {
            let q = unpack2x16float(pack2x16float(vec2<f32>(Q[qb + 2u * i], Q[qb + 2u * i + 1u])));
            let k = KV_PAIR(KC[kb + i]);
            acc += q.x * k.x;
            acc += q.y * k.y;
        }
        score = acc * dims.f.x;
        if dims.f.y > 0.0 {
            let t = clamp(score / dims.f.y, -15.0, 15.0);
            let e = exp(2.0 * t);
            score = dims.f.y * (e - 1.0) / (e + 1.0);
        }
        SCORES[(t * nh + h) * dims.b.z + p] = score;
    }
    let m = lanes_max(score, lid, WG);
    var e = 0.0;
    if valid {
        e = exp(score - m);
    }
    // The sum in position order, as the CPU's softmax sums.
    exps[lid] = e;
    workgroupBarrier();
    if lid == 0u {
        var l = 0.0;
        for (var j = 0u; j < WG; j++) {
            l += exps[j];
        }
        let slot = (t * nh + h) * ms + s;
        STATS[slot * 2u] = m;
        STATS[slot * 2u + 1u] = l;
    }
}
