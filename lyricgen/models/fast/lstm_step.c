/* The elementwise part of one LSTM time step, forward and backward, as one loop each.
 *
 * The maths of cell.lstm_cell (the reference; change both together) and of its gradient.
 * Built and loaded by c_kernels.py; bptt.py calls these between the steps' matmuls. Every
 * array is float32, row-major and contiguous: B rows of H cells, or of 4H gate values in
 * nn.LSTM's order input i, forget f, candidate g, output o. */

#include <math.h>
#include <stdint.h>
#include <string.h>

/* e^x in float32 to ~1 ulp, written out so the compiler can vectorise the loops below on any
 * libc (Cody-Waite range reduction and Cephes' polynomial). The input is clamped to where
 * e^x and 2^n are normal floats; the functions below only need e^x to saturate there. */
static inline float exp_(float x) {
    x = x < -87.0f ? -87.0f : x > 88.0f ? 88.0f : x;
    float n = floorf(x * 1.44269504f + 0.5f);  /* x = n ln 2 + r, |r| <= ln(2) / 2 */
    float r = fmaf(n, -0.693359375f, x);
    r = fmaf(n, 2.12194440e-4f, r);
    float p = 1.9875691500e-4f;
    p = fmaf(p, r, 1.3981999507e-3f);
    p = fmaf(p, r, 8.3334519073e-3f);
    p = fmaf(p, r, 4.1665795894e-2f);
    p = fmaf(p, r, 1.6666665459e-1f);
    p = fmaf(p, r, 5.0000001201e-1f);
    p = fmaf(p * r, r, r) + 1.0f;
    int32_t bits = ((int32_t)n + 127) << 23;  /* 2^n */
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return p * scale;
}

static inline float sigmoid(float x) { return 1.0f / (1.0f + exp_(-x)); }

/* 1 - 2 / (e^{2x} + 1): exact at the ends, within ~1e-7 (absolute) near 0. */
static inline float tanh_(float x) { return 1.0f - 2.0f / (exp_(2.0f * x) + 1.0f); }

/* a (B, 4H): the gates' pre-activations, replaced by their activations.
 * c_prev (B, H) -> c = f c_prev + i g, tanh_c = tanh(c), h = o tanh(c), each (B, H). */
void lstm_step_forward(long B, long H, float *restrict a, const float *restrict c_prev,
                       float *restrict c, float *restrict tanh_c, float *restrict h) {
    for (long b = 0; b < B; ++b) {
        float *restrict i = a + b * 4 * H, *restrict f = i + H, *restrict g = f + H,
                        *restrict o = g + H;
        const float *restrict cp = c_prev + b * H;
        float *restrict cb = c + b * H, *restrict tb = tanh_c + b * H, *restrict hb = h + b * H;
#pragma omp simd
        for (long j = 0; j < H; ++j) {
            i[j] = sigmoid(i[j]);
            f[j] = sigmoid(f[j]);
            g[j] = tanh_(g[j]);
            o[j] = sigmoid(o[j]);
            cb[j] = f[j] * cp[j] + i[j] * g[j];
            tb[j] = tanh_(cb[j]);
            hb[j] = o[j] * tb[j];
        }
    }
}

/* One step back in time. a (B, 4H): the step's activated gates; c_prev, tanh_c (B, H): its
 * c_{t-1} and tanh(c_t); dh (B, H): dL/dh_t. dc (B, H) holds dL/dc_t from the later steps and
 * leaves holding dL/dc_{t-1}; d_pre (B, 4H) receives dL/d(pre-activations). */
void lstm_step_backward(long B, long H, const float *restrict a, const float *restrict c_prev,
                        const float *restrict tanh_c, const float *restrict dh,
                        float *restrict dc, float *restrict d_pre) {
    for (long b = 0; b < B; ++b) {
        const float *restrict i = a + b * 4 * H, *restrict f = i + H, *restrict g = f + H,
                              *restrict o = g + H;
        const float *restrict cp = c_prev + b * H, *restrict tb = tanh_c + b * H,
                              *restrict dhb = dh + b * H;
        float *restrict dcb = dc + b * H, *restrict di = d_pre + b * 4 * H, *restrict df = di + H,
                        *restrict dg = df + H, *restrict d_o = dg + H;
#pragma omp simd
        for (long j = 0; j < H; ++j) {
            float dct = dcb[j] + dhb[j] * o[j] * (1.0f - tb[j] * tb[j]);  /* dL/dc_t in all */
            di[j] = dct * g[j] * i[j] * (1.0f - i[j]);
            df[j] = dct * cp[j] * f[j] * (1.0f - f[j]);
            dg[j] = dct * i[j] * (1.0f - g[j] * g[j]);
            d_o[j] = dhb[j] * tb[j] * o[j] * (1.0f - o[j]);
            dcb[j] = dct * f[j];
        }
    }
}
