// Scratch (issue 17, pro44): variants for openvino_pro44_zen3_prologue_scratch.cpp
namespace tvx { namespace {
#if VARIANT == 0
#define RUN pointwise
#else
// experiment knobs: FIXDST store to a fixed spot; FIXSRC read a fixed spot
#ifndef FIXDST
#define FIXDST 0
#endif
#ifndef NOBCAST
#define NOBCAST 0
#endif
#ifndef NOCLAMP
#define NOCLAMP 0
#endif
#ifndef FIXSRC
#define FIXSRC 0
#endif
alignas(64) float g_sink[64*48];
alignas(64) float g_src[4096];
template <int KV, int NP, int CIN>
__attribute__((noinline)) void xblock(const KernelArgs& a, float* dst, const float* src, int64_t step, int64_t v0) {
    const int64_t C = a.c, cols = pointwise_columns(C), cin = CIN, plane = a.pw_nchw ? a.in_h * a.in_w : 1;
    if (FIXSRC) src = g_src;
    if (FIXDST) dst = g_sink;
    pv acc[NP][KV];
    const float* w = a.pw_weight + v0 * kPwLanes;
    for (int v = 0; v < KV; ++v) {
        const pv bias = pw_load(a.pw_bias + (v0 + v) * kPwLanes), wv = pw_load(w + v * kPwLanes);
        for (int q = 0; q < NP; ++q)
            acc[q][v] = bias + wv * (src[q * step] - pv{});
    }
    w += cols;
    src += FIXSRC ? 1 : plane;
    for (int64_t ci = 1; ci < cin; ++ci, w += cols, src += (FIXSRC ? 1 : plane)) {
        pv wv[KV];
        for (int v = 0; v < KV; ++v)
            wv[v] = pw_load(w + v * kPwLanes);
        for (int q = 0; q < NP; ++q) {
#if NOBCAST
            const pv x = pw_load(src + q * step);
#else
            const pv x = src[q * step] - pv{};
#endif
            for (int v = 0; v < KV; ++v)
                acc[q][v] += wv[v] * x;
        }
    }
    const PwRange range(NOCLAMP ? false : a.pre_clamp, a.pre_lo, a.pre_hi);
    for (int q = 0; q < NP; ++q)
        for (int v = 0; v < KV; ++v)
            pw_store(dst + q * C + (v0 + v) * kPwLanes, range(acc[q][v]));
}
#ifndef XNP
#define XNP pw_positions(KV)
#endif
#ifndef XKV
#define XKV 3
#endif
template <int KV, int CIN>
void xchunk(const KernelArgs& a, float* dst, const float* src, int64_t count, int64_t step, int64_t v0) {
    constexpr int NP = XNP;
    int64_t q = 0;
    for (; q + NP <= count; q += NP)
        xblock<KV, NP, CIN>(a, dst + q * a.c, src + q * step, step, v0);
    dst += q * a.c; src += q * step;
    switch (count - q) {
    case 1: return xblock<KV, 1, CIN>(a, dst, src, step, v0);
    case 2: return xblock<KV, 2 < NP ? 2 : 1, CIN>(a, dst, src, step, v0);
    case 3: return xblock<KV, 3 < NP ? 3 : 1, CIN>(a, dst, src, step, v0);
    case 4: return xblock<KV, 4 < NP ? 4 : 1, CIN>(a, dst, src, step, v0);
    case 5: return xblock<KV, 5 < NP ? 5 : 1, CIN>(a, dst, src, step, v0);
    default: return;
    }
}
#ifdef SKEW
}}
#include "skew.hpp"
namespace tvx { namespace {
#endif
void xrun(const KernelArgs& a, float* dst, const float* src, int64_t count, int64_t step) {
#ifdef CPL
    cpl_chunk<8>(a, dst, src, count, step, 3); cpl_chunk<8>(a, dst, src, count, step, 0); return;
#endif
// (-DPLAIN: the one-loop asm 4 x 3 chunk, now kernel.cpp's pointwise_chunk_asm)
#ifdef SKEW
    skew_chunk<8>(a, dst, src, count, step, 3); skew_chunk<8>(a, dst, src, count, step, 0); return;
#endif
    if (XKV == 6) { xchunk<6, 8>(a, dst, src, count, step, 0); return; }
    if (XKV == 4) { xchunk<2, 8>(a, dst, src, count, step, 4); xchunk<4, 8>(a, dst, src, count, step, 0); return; }
    xchunk<3, 8>(a, dst, src, count, step, 3);
    xchunk<3, 8>(a, dst, src, count, step, 0);
}
#define RUN xrun
#endif
}}
