// Scratch (issue 17, int8asm45; not a benchmarks/ script): kernel.cpp's Pass::body<1, false> (AVX2, one image, 9
// taps, contiguous input as through the ring or in place at stride 1) timed with its data in L1, cycles per 16
// multiply-adds (best of 100 blocks; fetch: the kernel prefetches on), for C = 8, 48, 96 over one segment's
// floats. Which kernel.cpp it times is the -I path's. Build and run (one CPU, under cpu bench):
//   g++ -O3 -DNDEBUG -std=c++17 -fPIC -DTVX_KERNEL_NAME=kernel_avx2 -DTVX_CHUNK=16 -DTVX_BATCH_TILE=4 -march=x86-64-v3 \
//       -I<dir of kernel.cpp> benchmarks/results/openvino_int8asm45_zen3_loop_scratch.cpp -o loop && taskset -c 1 ./loop
// (int8loop44's openvino_int8loop44_zen3_loop_scratch.cpp, with C and the run's length as parameters.)
#include "kernel.cpp"
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
namespace tvx { namespace {
template <typename WT> struct Harness {
    KernelArgs a{};
    std::vector<WT, Aligned<WT>> w;
    std::vector<float, Aligned<float>> x, s, y, bias;
    Harness(int64_t C, int64_t len, int nt) {
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
template <typename WT>
double time_body(int64_t C, int64_t len, int nt, bool fetch, int64_t iters, float* check) {
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
    double sum = 0;
    for (int64_t q = 0; q < len; ++q) sum += h.y[q];
    *check = float(sum);
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
int main() {
    const double g = ghz();
    std::printf("clock %.2f GHz\n", g);
    const int nt = 9; const int64_t it = 200000;
    using namespace tvx;
    for (int64_t C : {8, 48, 96}) {
        const int64_t len = segment_floats(C);
        for (bool fetch : {false, true}) {
            float c8, c16, c32;
            const double i8 = g * time_body<int8_t>(C, len, nt, fetch, it, &c8);
            const double f16 = g * time_body<half>(C, len, nt, fetch, it, &c16);
            const double f32 = g * time_body<float>(C, len, nt, fetch, it, &c32);
            std::printf("C %3ld len %ld fetch=%d cycles per 16 MACs: i8 %.2f  f16 %.2f  f32 %.2f   (output sums %.6g %.6g %.6g)\n",
                        C, len, fetch, i8, f16, f32, c8, c16, c32);
        }
    }
}
