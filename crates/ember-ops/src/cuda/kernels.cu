// Ember's own CUDA kernels, compiled at run time with NVRTC (see mod.rs): only what no
// NVIDIA library provides. Every kernel computes in f32 and reads and writes f32, bf16 or
// f16 through the load/store helpers below, which need no CUDA headers.

__device__ unsigned short to_bf16(float x) {
    unsigned int u = __float_as_uint(x);
    if ((u & 0x7fffffffu) > 0x7f800000u) return 0x7fc0;  // NaN stays NaN
    u += 0x7fffu + ((u >> 16) & 1u);                    // round to nearest even
    return (unsigned short)(u >> 16);
}

__device__ unsigned short to_f16(float x) {
    unsigned short h;
    asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(x));
    return h;
}

__device__ float load_f32(const float* p, long long i) { return p[i]; }
__device__ void store_f32(float* p, long long i, float x) { p[i] = x; }
__device__ float load_bf16(const unsigned short* p, long long i) {
    return __uint_as_float(((unsigned int)p[i]) << 16);
}
__device__ void store_bf16(unsigned short* p, long long i, float x) { p[i] = to_bf16(x); }
__device__ float load_f16(const unsigned short* p, long long i) {
    float f;
    asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(p[i]));
    return f;
}
__device__ void store_f16(unsigned short* p, long long i, float x) { p[i] = to_f16(x); }

__device__ float warp_max(float v) {
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

__device__ float warp_sum(float v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

// AdamW (torch.optim.AdamW's update) of one f32 parameter with its moments, in place, and
// its bf16 (work_kind 1) or f16 (2) working copy when it is a master weight.
extern "C" __global__ void ember_adamw(
    float* w, const float* g, float* m, float* v, unsigned short* work, int work_kind,
    long long n, float lr, float beta1, float beta2, float eps, float decay, float bc1,
    float bc2_sqrt) {
    long long stride = (long long)blockDim.x * gridDim.x;
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += stride) {
        float gi = g[i];
        float mi = beta1 * m[i] + (1.0f - beta1) * gi;
        float vi = beta2 * v[i] + (1.0f - beta2) * gi * gi;
        m[i] = mi;
        v[i] = vi;
        float wi = w[i] * decay - (mi / bc1) / (sqrtf(vi) / bc2_sqrt + eps) * lr;
        w[i] = wi;
        if (work_kind == 1) work[i] = to_bf16(wi);
        else if (work_kind == 2) work[i] = to_f16(wi);
    }
}

// SGD (torch.optim.SGD's update) of one f32 parameter with its momentum buffer, in place:
// d = g + wd w; buf = d on the first step, else momentum buf + d; the step is
// d + momentum buf (Nesterov) or buf; and the working copy as for AdamW.
extern "C" __global__ void ember_sgd(
    float* w, const float* g, float* buf, unsigned short* work, int work_kind, long long n,
    float lr, float momentum, float wd, int nesterov, int first) {
    long long stride = (long long)blockDim.x * gridDim.x;
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += stride) {
        float d = g[i];
        if (wd != 0.0f) d += w[i] * wd;
        if (momentum != 0.0f) {
            float b = first ? d : buf[i] * momentum + d;
            buf[i] = b;
            d = nesterov ? d + b * momentum : b;
        }
        float wi = w[i] - d * lr;
        w[i] = wi;
        if (work_kind == 1) work[i] = to_bf16(wi);
        else if (work_kind == 2) work[i] = to_f16(wi);
    }
}

// The warp-per-row loop shared by the row kernels: `base` is the row's first element.
#define FOR_EACH_ROW(rows, n)                                                              \
    int lane = threadIdx.x & 31;                                                           \
    long long warp = (blockIdx.x * (long long)blockDim.x + threadIdx.x) >> 5;              \
    long long warps = ((long long)gridDim.x * blockDim.x) >> 5;                            \
    for (long long r = warp, base = warp * (n); r < (rows); r += warps, base = r * (n))

// Softmax over rows of n contiguous elements, one warp per row: max, sum of exponentials,
// scale. A NaN is skipped by the max but makes the sum, hence the row, NaN (as PyTorch).
#define SOFTMAX(T, S)                                                                      \
    extern "C" __global__ void ember_softmax_##S(const T* x, T* y, long long rows, int n) { \
        FOR_EACH_ROW(rows, n) {                                                            \
            float mx = __int_as_float(0xff800000);                                         \
            for (int i = lane; i < n; i += 32) mx = fmaxf(mx, load_##S(x, base + i));      \
            mx = warp_max(mx);                                                             \
            float s = 0.0f;                                                                \
            for (int i = lane; i < n; i += 32) s += expf(load_##S(x, base + i) - mx);      \
            float inv = 1.0f / warp_sum(s);                                                \
            for (int i = lane; i < n; i += 32)                                             \
                store_##S(y, base + i, expf(load_##S(x, base + i) - mx) * inv);            \
        }                                                                                  \
    }

// Its backward: dx = y (dy - sum(y dy)) per row.
#define SOFTMAX_BACKWARD(T, S)                                                             \
    extern "C" __global__ void ember_softmax_backward_##S(                                 \
        const T* y, const T* dy, T* dx, long long rows, int n) {                           \
        FOR_EACH_ROW(rows, n) {                                                            \
            float s = 0.0f;                                                                \
            for (int i = lane; i < n; i += 32)                                             \
                s += load_##S(y, base + i) * load_##S(dy, base + i);                       \
            s = warp_sum(s);                                                               \
            for (int i = lane; i < n; i += 32) {                                           \
                float yi = load_##S(y, base + i);                                          \
                store_##S(dx, base + i, yi * (load_##S(dy, base + i) - s));                \
            }                                                                              \
        }                                                                                  \
    }

SOFTMAX(float, f32)
SOFTMAX(unsigned short, bf16)
SOFTMAX(unsigned short, f16)
SOFTMAX_BACKWARD(float, f32)
SOFTMAX_BACKWARD(unsigned short, bf16)
SOFTMAX_BACKWARD(unsigned short, f16)

// Mean and 1/std of the row at `base` (two passes, biased variance, as PyTorch).
#define ROW_MOMENTS(S, x, base, c, eps, mean, rstd)                                        \
    float mean, rstd;                                                                      \
    {                                                                                      \
        float s_ = 0.0f;                                                                   \
        for (int i = lane; i < (c); i += 32) s_ += load_##S(x, (base) + i);                \
        mean = warp_sum(s_) / (c);                                                         \
        float q_ = 0.0f;                                                                   \
        for (int i = lane; i < (c); i += 32) {                                             \
            float d_ = load_##S(x, (base) + i) - mean;                                     \
            q_ += d_ * d_;                                                                 \
        }                                                                                  \
        rstd = rsqrtf(warp_sum(q_) / (c) + (eps));                                         \
    }

// Layer norm over the last dim: y = (x - mean) / std * g + b, one warp per row.
#define LAYER_NORM(T, S)                                                                   \
    extern "C" __global__ void ember_layer_norm_##S(                                       \
        const T* x, const T* g, const T* b, T* y, long long rows, int c, float eps) {      \
        FOR_EACH_ROW(rows, c) {                                                            \
            ROW_MOMENTS(S, x, base, c, eps, mean, rstd)                                    \
            for (int i = lane; i < c; i += 32) {                                           \
                float xh = (load_##S(x, base + i) - mean) * rstd;                          \
                store_##S(y, base + i, xh * load_##S(g, i) + load_##S(b, i));              \
            }                                                                              \
        }                                                                                  \
    }

// Its backward: dx per row into out[0 .. rows c), and dgamma, dbeta summed over the rows into
// the f32 buffer dgb[0 .. 2c): per block in shared memory (2c floats), then once per block
// into dgb, so that few atomics meet on one address.
#define LAYER_NORM_BACKWARD(T, S)                                                          \
    extern "C" __global__ void ember_layer_norm_backward_##S(                              \
        const T* x, const T* g, const T* dy, T* out, float* dgb, long long rows, int c,    \
        float eps) {                                                                       \
        extern __shared__ float acc[];                                                     \
        for (int i = threadIdx.x; i < 2 * c; i += blockDim.x) acc[i] = 0.0f;               \
        __syncthreads();                                                                   \
        FOR_EACH_ROW(rows, c) {                                                            \
            ROW_MOMENTS(S, x, base, c, eps, mean, rstd)                                    \
            float a = 0.0f, p = 0.0f;                                                      \
            for (int i = lane; i < c; i += 32) {                                           \
                float xh = (load_##S(x, base + i) - mean) * rstd;                          \
                float dxh = load_##S(dy, base + i) * load_##S(g, i);                       \
                a += dxh;                                                                  \
                p += dxh * xh;                                                             \
            }                                                                              \
            a = warp_sum(a) / c;                                                           \
            p = warp_sum(p) / c;                                                           \
            for (int i = lane; i < c; i += 32) {                                           \
                float xh = (load_##S(x, base + i) - mean) * rstd;                          \
                float d = load_##S(dy, base + i);                                          \
                store_##S(out, base + i, rstd * (d * load_##S(g, i) - a - xh * p));        \
                atomicAdd(&acc[i], d * xh);                                                \
                atomicAdd(&acc[c + i], d);                                                 \
            }                                                                              \
        }                                                                                  \
        __syncthreads();                                                                   \
        for (int i = threadIdx.x; i < 2 * c; i += blockDim.x) atomicAdd(&dgb[i], acc[i]);  \
    }

// dgamma and dbeta from the f32 sums into the tail of the gradient buffer.
#define STORE_TAIL(T, S)                                                                   \
    extern "C" __global__ void ember_store_tail_##S(const float* src, T* dst, int n) {     \
        for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += blockDim.x * gridDim.x) \
            store_##S(dst, i, src[i]);                                                     \
    }

LAYER_NORM(float, f32)
LAYER_NORM(unsigned short, bf16)
LAYER_NORM(unsigned short, f16)
LAYER_NORM_BACKWARD(float, f32)
LAYER_NORM_BACKWARD(unsigned short, bf16)
LAYER_NORM_BACKWARD(unsigned short, f16)
STORE_TAIL(float, f32)
STORE_TAIL(unsigned short, bf16)
STORE_TAIL(unsigned short, f16)
