// The channels-last translation-variant depthwise kernel: plain C++, no OpenVINO headers, so that
// kernel.cpp can be compiled once per instruction set (see CMakeLists.txt) and picked at run time.
//
// Layouts (row-major):
//   x      (N, H, W, C)   float32 | float16
//   weight (h, w, k*k, C) float32 | float16 | int8      (one kernel per output position)
//   scale  (k*k, C)       float32, int8 weights only    (w_real = float(w) * scale)
//   bias   (h, w, C) or (C)  float32, optional
//   y      (N, h, w, C)   same type as x
//
//   y[n, i, j, c] = bias + sum_{ky, kx} w[i, j, ky*k + kx, c] * x[n, i*s + ky - p, j*s + kx - p, c]
//
// taps outside the input are zero (padding p). Accumulation is float32.
#pragma once

#include <cstdint>

namespace tvx {

enum class DType : int { f32 = 0, f16 = 1, i8 = 2 };

struct KernelArgs {
    const void* x;
    const void* weight;
    const float* scale;  // nullptr unless weight is int8
    const float* bias;   // nullptr when absent
    void* y;
    int64_t n, in_h, in_w, c;  // input (N, H, W, C)
    int64_t out_h, out_w;      // output positions
    int64_t k, stride, pad;
    bool bias_map;  // bias is (h, w, C) rather than (C)
    DType x_type, w_type;
};

// Computes output positions [begin, end) (position = i * out_w + j) for every batch row.
using KernelFn = void (*)(const KernelArgs&, int64_t begin, int64_t end);

void kernel_generic(const KernelArgs&, int64_t, int64_t);
#if defined(TVX_MULTI_ISA)
void kernel_avx2(const KernelArgs&, int64_t, int64_t);
void kernel_avx512(const KernelArgs&, int64_t, int64_t);
#endif

}  // namespace tvx
