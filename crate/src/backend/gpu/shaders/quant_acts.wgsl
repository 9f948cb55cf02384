// The activations a mat-vec reads, rounded as the CPU backend and llama.cpp quantize them
// (8-bit blocks with an f16 scale per 32 for Q4_0/Q5_x/Q8_0 weights, 8-bit with an f32 scale
// per 256 for the K-quants, f16 for F16 weights), so that both backends compute the same
// products; RMSNorm is applied first when dims.a.z is 1. One workgroup.
// Workgroup (0, t) rounds row t (of the step's tokens). dims.a = (n, kind: 0 per-32, 1 per-256,
// 2 f16, 3 f32, norm, row stride of X and XQ), dims.f.x = eps.
@group(0) @binding(2) var<storage, read> X: array<f32>;
@group(0) @binding(3) var<storage, read> NW: array<f32>;
@group(0) @binding(4) var<storage, read_write> XQ: array<f32>;

var<private> norm_scale: f32 = 1.0;
var<private> row_base: u32 = 0u;
var<workgroup> ssum: f32;

fn xin(i: u32) -> f32 {
    if dims.a.z != 0u {
        return X[row_base + i] * norm_scale * NW[i];
    }
    return X[row_base + i];
}

fn f16_round(v: f32) -> f32 {
    return unpack2x16float(pack2x16float(vec2<f32>(v, 0.0))).x;
}

@compute @workgroup_size(64)
fn main(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3<u32>) {
    if wid.y >= step.n_tokens {
        return;
    }
    let n = dims.a.x;
    let kind = dims.a.y;
    row_base = wid.y * dims.a.w;
    if dims.a.z != 0u {
        // Summed in order by one invocation, as the CPU sums: the rounding that follows is
        // then fed the same values (a tree sum differs in the last bit, which can move a
        // rounded activation by one step).
        if lid == 0u {
            var ss = 0.0;
            for (var i = 0u; i < n; i++) {
                ss += X[row_base + i] * X[row_base + i];
            }
            ssum = ss;
        }
        norm_scale = 1.0 / sqrt(workgroupUniformLoad(&ssum) / f32(n) + dims.f.x);
    }
    if kind >= 2u {
        for (var i = lid; i < n; i += WG) {
            let v = xin(i);
            XQ[row_base + i] = select(v, f16_round(v), kind == 2u);
        }
        return;
    }
    let bs = select(32u, 256u, kind == 1u);
    for (var b = lid; b < n / bs; b += WG) {
        var amax = 0.0;
        var signed_max = 0.0;
        for (var j = 0u; j < bs; j++) {
            let v = xin(b * bs + j);
            if abs(v) > amax {
                amax = abs(v);
                signed_max = v;
            }
        }
        if kind == 0u {
            // 127 / amax correctly rounded (WGSL's division may be off by an ulp or two): one
            // Newton step on the quotient.
            var id = 127.0 / amax;
            id = fma(fma(-amax, id, 127.0), 1.0 / amax, id);
            id = select(0.0, id, amax != 0.0);
            let d = f16_round(amax / 127.0);
            for (var j = 0u; j < bs; j++) {
                XQ[row_base + b * bs + j] = round(xin(b * bs + j) * id) * d;
            }
        } else {
            let iscale = select(0.0, -127.0 / signed_max, amax != 0.0);
            let d = select(0.0, 1.0 / iscale, amax != 0.0);
            for (var j = 0u; j < bs; j++) {
                XQ[row_base + b * bs + j] = min(round(iscale * xin(b * bs + j)), 127.0) * d;
            }
        }
    }
}
