// Per head of each token's QKV row: Q/K RMSNorm (Qwen3, Gemma 3), RoPE, then Q back in place
// and K, V into the f16 KV cache at the token's position. Workgroup (g, t): head g of token t —
// the n_heads Q heads, then the n_kv_heads K heads, then the V heads, in QKV's order.
// dims.a = (n_heads, n_kv_heads, head_dim, rope_dims)
// dims.b = (flags: 1 Q norm, 2 K norm, 4 interleaved pairs, kv_dim), dims.f = (eps, -, -, -);
// a QKV row is n_heads * head_dim + 2 * kv_dim values.
@group(0) @binding(2) var<storage, read_write> QKV: array<f32>;
@group(0) @binding(3) var<storage, read> QN: array<f32>;
@group(0) @binding(4) var<storage, read> KN: array<f32>;
// cos and sin (times the attention factor) per position and pair, computed once by the host
// exactly as the CPU backend computes them.
@group(0) @binding(5) var<storage, read> ROPE: array<vec2<f32>>;
@group(0) @binding(6) var<storage, read_write> KC: array<u32>;
@group(0) @binding(7) var<storage, read_write> VC: array<u32>;

var<workgroup> head: array<f32, 256>;

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let nh = dims.a.x;
    let nkv = dims.a.y;
    let hd = dims.a.z;
    let flags = dims.b.x;
    let g = wid.x;
    let t = wid.y;
    if t >= step.n_tokens {
        return;
    }
    let pos = step.pos + t;
    let row = t * (nh * hd + 2u * dims.b.w);
    let is_q = g < nh;
    let is_v = g >= nh + nkv;
    for (var i = lid; i < hd; i += WG) {
        head[i] = QKV[row + g * hd + i];
    }
    workgroupBarrier();
    if (is_q && (flags & 1u) != 0u) || (!is_q && !is_v && (flags & 2u) != 0u) {
        var ss = 0.0;
        for (var i = lid; i < hd; i += WG) {
            ss += head[i] * head[i];
        }
        let scale = inverseSqrt(lanes_sum(ss, lid, WG) / f32(hd) + dims.f.x);
        for (var i = lid; i < hd; i += WG) {
            head[i] *= scale * select(KN[i], QN[i], is_q);
        }
        workgroupBarrier();
    }
    if !is_v {
        let half = dims.a.w / 2u;
        for (var i = lid; i < half; i += WG) {
            var a = i;
            var b = i + half;
            if (flags & 4u) != 0u {
                a = 2u * i;
                b = 2u * i + 1u;
            }
            let cs = ROPE[pos * half + i];
            let c = cs.x;
            let s = cs.y;
            let x0 = head[a];
            let x1 = head[b];
            head[a] = x0 * c - x1 * s;
            head[b] = x0 * s + x1 * c;
        }
        workgroupBarrier();
    }
    if is_q {
        for (var i = lid; i < hd; i += WG) {
            QKV[row + g * hd + i] = head[i];
        }
        return;
    }
    let kh = select(g - nh, g - nh - nkv, is_v);
    let base = (pos * dims.b.w + kh * hd) / 2u;
    for (var p = lid; p < hd / 2u; p += WG) {
        let packed = pack2x16float(vec2<f32>(head[2u * p], head[2u * p + 1u]));
        if is_v {
            VC[base + p] = packed;
        } else {
            KC[base + p] = packed;
        }
    }
}
