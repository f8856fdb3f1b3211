// Scratch (issue 17, pw49, Zen 4): the pointwise prologue alone, one thread, as Pass::load_row calls it (tile runs of
// `count` positions along a row, stride s), data in L2. Build with kernel.cpp's AVX-512 flags:
//   g++ -O3 -DNDEBUG -march=x86-64-v4 -mprefer-vector-width=512 -DTVX_KERNEL_NAME=kernel_avx512
//       -DTVX_CHUNK=64 -DTVX_BATCH_TILE=4 -DKERNEL_CPP='"path/kernel.cpp"' -I ext pw_harness.cpp
#include KERNEL_CPP
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <vector>
#include <algorithm>
#include <string>

using namespace tvx;
struct Case { const char* name; int64_t cin, c, h, w, s, count; bool nchw; };

int main(int argc, char** argv) {
    double min_s = argc > 1 ? atof(argv[1]) : 0.3;
    Case cases[] = {
        {"f2 s2 cin8 C48 96x96 nhwc", 8, 48, 96, 96, 2, 21, false},
        {"f2 s2 cin8 C48 96x96 nchw", 8, 48, 96, 96, 2, 21, true},
        {"f3 s1 cin8 C48 48x48 nhwc", 8, 48, 48, 48, 1, 22, false},
        {"f4 s2 cin8 C48 48x48 nchw", 8, 48, 48, 48, 2, 21, true},
        {"f12 s1 cin16 C96 12x12 nchw", 16, 96, 12, 12, 1, 14, true},
        {"f15 s1 cin16 C96 6x6 nchw", 16, 96, 6, 6, 1, 8, true},
        {"x1 s1 cin24 C144 48x48 nchw", 24, 144, 48, 48, 1, 22, true},
        {"x1 s2 cin24 C144 48x48 nhwc", 24, 144, 48, 48, 2, 21, false},
    };
    for (const Case& cs : cases) {
        const int64_t cols = pointwise_columns(cs.c);
        std::vector<float, Aligned<float>> x(cs.h * cs.w * cs.cin), wt(cs.cin * cols, 0.0f), b(cols, 0.0f);
        uint32_t r = 12345;
        auto rnd = [&] { r = r * 1664525u + 1013904223u; return (int32_t)(r >> 8) / float(1 << 23) - 1.0f; };
        for (auto& v : x) v = rnd();
        for (int64_t ci = 0; ci < cs.cin; ++ci) for (int64_t c = 0; c < cs.c; ++c) wt[ci * cols + c] = rnd();
        for (int64_t c = 0; c < cs.c; ++c) b[c] = rnd();
        KernelArgs a{};
        a.x = x.data(); a.c = cs.c; a.in_h = cs.h; a.in_w = cs.w; a.n = 1; a.stride = cs.s; a.k = 3;
        a.pw_weight = wt.data(); a.pw_bias = b.data(); a.cin = cs.cin; a.pw_nchw = cs.nchw;
        a.pre_clamp = true; a.pre_lo = 0.0f; a.pre_hi = 6.0f;
        const int64_t step = cs.s * (cs.nchw ? 1 : cs.cin);
        auto input = [&](int64_t iy, int64_t ix) { return cs.nchw ? x.data() + iy * cs.w + ix : x.data() + (iy * cs.w + ix) * cs.cin; };
        // runs: per row, per phase, tiles of `count` positions covering the row
        struct Run { int64_t iy, ix, n; };
        std::vector<Run> runs;
        for (int64_t iy = 0; iy < cs.h; ++iy)
            for (int64_t ph = 0; ph < cs.s; ++ph)
                for (int64_t m = 0; m * cs.s + ph < cs.w; m += cs.count) {
                    const int64_t n = std::min<int64_t>(cs.count, (cs.w - ph - m * cs.s + cs.s - 1) / cs.s);
                    runs.push_back({iy, m * cs.s + ph, n});
                }
        const int64_t slot = (cs.count * cs.c + 16) / 16 * 16 + 16;
        std::vector<float, Aligned<float>> ring(3 * slot);
        // checksum over all runs (outputs of the run's positions only)
        uint64_t hsum = 1469598103934665603ull; int64_t fma = 0;
        for (size_t i = 0; i < runs.size(); ++i) {
            const Run& u = runs[i];
            pointwise(a, ring.data(), input(u.iy, u.ix), u.n, step);
            for (int64_t f = 0; f < u.n * cs.c; ++f) { uint32_t bits; std::memcpy(&bits, &ring[f], 4); hsum = (hsum ^ bits) * 1099511628211ull; }
            fma += u.n * cs.cin * cs.c;
        }
        std::vector<double> per;
        for (int rep = 0; rep < 15; ++rep) {
            auto t0 = std::chrono::steady_clock::now();
            int64_t iters = 0; double el = 0;
            do {
                for (size_t i = 0; i < runs.size(); ++i) {
                    const Run& u = runs[i];
                    pointwise(a, ring.data() + (u.iy % 3) * slot, input(u.iy, u.ix), u.n, step);
                }
                ++iters;
                el = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
            } while (el < min_s / 15);
            per.push_back(el / iters);
        }
        std::sort(per.begin(), per.end());
        printf("%-30s %8.1f us/image  %6.2f GFMA/s (p10 %6.2f p90 %6.2f)  hash %016llx\n", cs.name, per[7] * 1e6, fma / per[7] * 1e-9,
               fma / per[13] * 1e-9, fma / per[1] * 1e-9, (unsigned long long)hsum);
    }
}
