// Quantized mat-vec (decode, TB = 1) and mat-mat (prefill, TB tokens per workgroup): OUT rows
// = W · X rows for one part of a matrix, dequantizing inside the kernel. TPR invocations share a
// weight row and a workgroup of 64 covers 64 / TPR rows; each weight chunk is dequantized once
// into registers and multiplied with the TB token rows of the workgroup (workgroup z picks the
// tokens), so prefill reads every weight once per TB tokens.
// dims.a = (rows of the part, cols, scales word offset, first output index)
// dims.b = (bias index of the part's first row, OUT row stride, X row stride in vec4s, -)
// dims.f.x = RMSNorm epsilon (NORM: decode only).
@group(0) @binding(3) var<storage, read> X: array<vec4<f32>>;
// RMSNorm weight, applied to X before the product when NORM.
@group(0) @binding(4) var<storage, read> NW: array<vec4<f32>>;
@group(0) @binding(5) var<storage, read> BIAS: array<f32>;
@group(0) @binding(6) var<storage, read_write> OUT: array<f32>;

override NORM: bool = false;
override HAS_BIAS: bool = false;
// 0: OUT = W·X; 1: OUT += W·X; 2: gated SiLU, 3: gated GELU: the part holds `rows` gate rows
// then `rows` up rows, and OUT = act(gate·X) * (up·X).
override MODE: u32 = 0u;
override TPR: u32 = 16u;
// Tokens per workgroup (at most 8).
override TB: u32 = 1u;

var<private> x_scale: f32 = 1.0;

fn xv(t: u32, i: u32) -> vec4<f32> {
    let v = X[t * dims.b.z + i];
    if NORM {
        return v * NW[i] * x_scale;
    }
    return v;
}

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let rows = dims.a.x;
    let cols = dims.a.y;
    let t0 = wid.z * TB;
    if t0 >= step.n_tokens {
        return;
    }
    let nt = min(TB, step.n_tokens - t0);
    if NORM {
        var ss = 0.0;
        for (var i = lid; i < cols / 4u; i += WG) {
            let v = X[i];
            ss += dot(v, v);
        }
        x_scale = inverseSqrt(lanes_sum(ss, lid, WG) / f32(cols) + dims.f.x);
    }
    let lane = lid % TPR;
    let row = (wid.x + wid.y * nwg.x) * (WG / TPR) + lid / TPR;
    var acc = array<f32, 8>();
    var acc_up = array<f32, 8>();
    if row < rows {
        for (var c = lane; c < cols / 32u; c += TPR) {
            for (var k = 0u; k < 8u; k++) {
                let w = chunk4(row, c, k);
                var w_up = vec4<f32>(0.0);
                if MODE >= 2u {
                    w_up = chunk4(row + rows, c, k);
                }
                for (var t = 0u; t < TB; t++) {
                    if t < nt {
                        let x = xv(t0 + t, c * 8u + k);
                        acc[t] += dot(w, x);
                        if MODE >= 2u {
                            acc_up[t] += dot(w_up, x);
                        }
                    }
                }
            }
        }
    }
    for (var t = 0u; t < TB; t++) {
        var v = lanes_sum(acc[t], lid, TPR);
        var u = 0.0;
        if MODE >= 2u {
            u = lanes_sum(acc_up[t], lid, TPR);
        }
        if lane == 0u && row < rows && t < nt {
            if HAS_BIAS {
                v += BIAS[dims.b.x + row];
            }
            let o = (t0 + t) * dims.b.y + dims.a.w + row;
            switch MODE {
                case 0u: { OUT[o] = v; }
                case 1u: { OUT[o] += v; }
                case 2u: { OUT[o] = silu(v) * u; }
                default: { OUT[o] = gelu_tanh(v) * u; }
            }
        }
    }
}
