// Scratch (issue 17, int8loop44; not a benchmarks/ script): kernel.cpp's Pass::body<1, false> (AVX2, one image,
// 9 taps, C = 48) timed with its data in L1, cycles per 16 multiply-adds (best of 100 blocks; fetch: the kernel
// prefetches on). The same code as the AVX2 object's loop (objdump), unlike a copy calling chunks directly,
// which kept the accumulators on the stack. Build and run (one CPU, under cpu bench):
//   g++ -O3 -DNDEBUG -std=c++17 -fPIC -DTVX_KERNEL_NAME=kernel_avx2 -DTVX_CHUNK=16 -DTVX_BATCH_TILE=4 -march=x86-64-v3 \
//       -Itvexport/openvino/ext benchmarks/results/openvino_int8loop44_zen3_loop_scratch.cpp -o loopb && taskset -c 1 ./loopb
#include "kernel.cpp"
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <xmmintrin.h>
#include <pmmintrin.h>
namespace tvx { namespace {
template <typename WT> struct Harness {
    KernelArgs a{};
    std::vector<WT, Aligned<WT>> w;
    std::vector<float, Aligned<float>> x, s, y, bias;
    int64_t len;
    Harness(int64_t C, int64_t len_, int nt) : len(len_) {
        a.c = C; a.k = 3; a.stride = 1; a.pad = 1; a.n = 1; a.in_h = 8; a.in_w = 8; a.out_h = 8; a.out_w = 8;
        a.w_type = std::is_same_v<WT, float> ? DType::f32 : std::is_same_v<WT, int8_t> ? DType::i8 : DType::f16;
        a.clamp = true; a.lo = 0; a.hi = 6;
        a.sw.kernel_nta = false;
        const int64_t stride = len + 64;
        w.resize(nt * stride); x.resize(nt * stride); s.resize(nt * 512 + 64); y.resize(len + 64); bias.resize(len + 64);
        for (size_t i = 0; i < w.size(); ++i) w[i] = WT(int((i * 7) % 13) - 6);
        for (size_t i = 0; i < x.size(); ++i) x[i] = float((i * 5) % 11) * 0.1f;
        for (auto& v : s) v = 0.01f;
        for (auto& v : bias) v = 0.1f;
    }
};
template <typename WT, int64_t KV>
double time_chunks(int64_t C, int64_t len, int nt, bool fetch, int64_t iters) {
    Harness<WT> h(C, len, nt);
    Pass<float, WT> pass(h.a, 8);
    const int64_t stride = len + 64;
    for (int t = 0; t < nt; ++t) {
        pass.tap_w[t] = h.w.data() + t * stride;
        pass.tap_s[t] = h.s.data() + t * 512;
        pass.tap_x[t] = h.x.data() + t * stride;
    }
    float* dst[1] = {h.y.data()};
    for (int i = 0; i < 1000; ++i) pass.template body<1, false>(nt, len, dst, h.bias.data(), 0, fetch);
    double best = 1e30;
    for (int r = 0; r < 100; ++r) {
    auto t0 = std::chrono::steady_clock::now();
    for (int64_t i = 0; i < iters / 100; ++i) {
        pass.template body<1, false>(nt, len, dst, h.bias.data(), 0, fetch);
        __asm__ volatile("" ::: "memory");
    }
    double ns = std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - t0).count();
    best = std::min(best, ns / (iters / 100) / (double(len) * nt / 16));
    }
    return best;  // ns per vector of 16 MACs, best of 100
}
}}
double ghz() {
    double best = 0;
    for (int r = 0; r < 50; ++r) {
    uint64_t x = 1; const int64_t n = 4000000;
    auto t0 = std::chrono::steady_clock::now();
    for (int64_t i = 0; i < n; ++i) __asm__ volatile("add $1, %0" : "+r"(x));
    best = std::max(best, n / std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - t0).count());
    }
    return best;
}
int main(int argc, char** argv) {
    if (argc > 1 && std::string(argv[1]) == "ftz") { _MM_SET_FLUSH_ZERO_MODE(_MM_FLUSH_ZERO_ON); _MM_SET_DENORMALS_ZERO_MODE(_MM_DENORMALS_ZERO_ON); }
    const double g = ghz();
    std::printf("clock %.2f GHz\n", g);
    const int64_t C = 48; const int nt = 9; const int64_t it = 200000;
    using namespace tvx;
    for (int64_t len : {256, 448}) for (bool fetch : {false, true}) {
        std::printf("len %ld fetch=%d  body<1,false> cycles per 16 MACs: ", len, fetch);
        std::printf("f32 %.2f  f16 %.2f  i8 %.2f\n", g * time_chunks<float, 4>(C, len, nt, fetch, it), g * time_chunks<half, 4>(C, len, nt, fetch, it), g * time_chunks<int8_t, 4>(C, len, nt, fetch, it));
    }
}
