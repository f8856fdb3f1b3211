// skewed prologue (scratch): two groups of 2 positions x 3 vectors, half an input-channel sweep apart, asm
#include "skew_asm.hpp"
namespace tvx { namespace {
template <int CIN>
__attribute__((noinline)) void skew_chunk(const KernelArgs& a, float* dst, const float* src, int64_t count, int64_t step, int64_t v0) {
    static_assert(CIN == 8 || CIN == 16, "");
    const int64_t C = a.c, cols = pointwise_columns(C), plane = a.pw_nchw ? a.in_h * a.in_w : 1;
    const int64_t pairs = count / 2;
    if (pairs < 2)
        return pointwise_chunk<3, CIN>(a, dst, src, count, step, v0);
    alignas(32) float lim[2][8];
    for (int u = 0; u < 8; ++u) {
        lim[0][u] = a.pre_clamp ? a.pre_lo : -__builtin_inff();
        lim[1][u] = a.pre_clamp ? a.pre_hi : __builtin_inff();
    }
    const float* w = a.pw_weight + v0 * 8;
    const float* b = a.pw_bias + v0 * 8;
    const float* s = src;
    float* d = dst + v0 * 8;
    int64_t n = pairs - 1;
    const int64_t st = step * 4, cb = cols * 4, pb = plane * 4, hb = CIN / 2 * cols * 4, hp = CIN / 2 * plane * 4, cs = C * 4;
    const float *wt, *sn, *so;
    typedef float v8 __attribute__((vector_size(32)));
    const v8* bv = reinterpret_cast<const v8*>(b);
    const v8* lv = reinterpret_cast<const v8*>(&lim[0][0]);
#define SKEW_OPERANDS : [src] "+r"(s), [dst] "+r"(d), [n] "+m"(n), [wt] "=&r"(wt), [sn] "=&r"(sn), [so] "=&r"(so) \
        : [w] "m"(w), [b0] "m"(bv[0]), [b1] "m"(bv[1]), [b2] "m"(bv[2]), [lo] "m"(lv[0]), [hi] "m"(lv[1]), [st] "r"(st), [cb] "m"(cb), [pb] "m"(pb), [hb] "r"(hb), [hp] "m"(hp), [cs] "r"(cs) \
        : "memory", "cc", "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", "xmm11", "xmm12", "xmm13", "xmm14", "xmm15"
    if constexpr (CIN == 8)
        asm volatile(SKEW_ASM_8 SKEW_OPERANDS);
    else
        asm volatile(SKEW_ASM_16 SKEW_OPERANDS);
    const int64_t done = 2 * pairs;
    if (count > done)
        pointwise_block<3, 1, CIN>(a, dst + done * C, src + done * step, step, v0);
}
}}
namespace tvx { namespace {
// C++ version of the one-loop 4 x 3 chunk (scratch)
template <int CIN>
__attribute__((noinline)) void cpl_chunk(const KernelArgs& a, float* dst, const float* src, int64_t count, int64_t step, int64_t v0) {
    constexpr int NP = 4, KV = 3;
    const int64_t C = a.c, cols = pointwise_columns(C), plane = a.pw_nchw ? a.in_h * a.in_w : 1;
    const float lo = a.pre_clamp ? a.pre_lo : -__builtin_inff(), hi = a.pre_clamp ? a.pre_hi : __builtin_inff();
    const float* w0 = a.pw_weight + v0 * kPwLanes;
    const float* b0 = a.pw_bias + v0 * kPwLanes;
    int64_t q0 = 0;
    for (; q0 + NP <= count; q0 += NP) {
        const float* s = src + q0 * step;
        const float* w = w0;
        pv acc[NP][KV];
#pragma GCC unroll 32
        for (int ci = 0; ci < CIN; ++ci, w += cols, s += plane) {
            pv wv[KV];
            for (int v = 0; v < KV; ++v)
                wv[v] = pw_load(w + v * kPwLanes);
            for (int q = 0; q < NP; ++q) {
                const pv x = s[q * step] - pv{};
                for (int v = 0; v < KV; ++v)
                    acc[q][v] = ci == 0 ? pw_load(b0 + v * kPwLanes) + wv[v] * x : acc[q][v] + wv[v] * x;
            }
        }
        const pv l = pv{} + lo, h = pv{} + hi;
        float* d = dst + q0 * C + v0 * kPwLanes;
        for (int q = 0; q < NP; ++q)
            for (int v = 0; v < KV; ++v) {
                pv r = acc[q][v];
                r = l > r ? l : r;
                r = r > h ? h : r;
                pw_store(d + q * C + v * kPwLanes, r);
            }
    }
    if (count > q0)
        pointwise_chunk<3, CIN>(a, dst + q0 * C, src + q0 * step, count - q0, step, v0);
}
}}
