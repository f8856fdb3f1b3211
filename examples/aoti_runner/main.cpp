// aoti_runner: run a tvexport AOTInductor package (.pt2) without Python.
//
//   aoti_runner MODEL.pt2 --shape N,C,H,W [--input in.f32] [--output out.f32]
//               [--iters K] [--warmup W] [--threads T] [--times t.txt]
//
// The input is raw little-endian float32 in NCHW order (numpy: x.astype("<f4").tofile(path));
// without --input a deterministic input is made: x[i] = sin(0.01 * i). The first output is
// written as raw float32 to --output, and its shape, sum, mean |value| and first values are
// printed. With --iters, the run is repeated and the min/p50/p90 latency is reported (p50 and p90
// linearly interpolated, as numpy); --times writes the per-run latencies in ms, one a line.

// The headers it uses, not <torch/torch.h> (the whole C++ frontend: about 3x the compile time).
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/core/grad_mode.h>
#include <ATen/ops/empty.h>
#include <torch/csrc/inductor/aoti_package/model_package_loader.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

struct Options {
  std::string model;
  std::vector<int64_t> shape;
  std::string input;
  std::string output;
  std::string times;
  int iters = 0;
  int warmup = 3;
  int threads = 0;
};

// The q-th percentile (0..100) of sorted samples, linearly interpolated between the closest ranks:
// numpy's default, as tvexport/profile/stats.py (for 10 runs, p90 lies between the 9th and the 10th).
double percentile(const std::vector<double>& sorted, double q) {
  const double pos = q / 100.0 * static_cast<double>(sorted.size() - 1);
  const size_t lo = static_cast<size_t>(pos), hi = std::min(lo + 1, sorted.size() - 1);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - static_cast<double>(lo));
}

// One line on stderr (what is wrong, then how to call), exit status 2.
[[noreturn]] void usage(const std::string& error) {
  std::cerr << "error: " << error
            << "; usage: aoti_runner MODEL.pt2 --shape N,C,H,W [--input in.f32] [--output out.f32]"
               " [--iters K] [--warmup W] [--threads T] [--times t.txt]\n";
  std::exit(2);
}

// A count option's value: a whole non-negative int, or the usage error (std::stoi alone would throw
// on "x", uncaught, and take "-3" or "2x").
int parse_count(const std::string& option, const std::string& text) {
  try {
    size_t used = 0;
    const int v = std::stoi(text, &used);
    if (used != text.size() || v < 0) throw std::invalid_argument(text);
    return v;
  } catch (const std::exception&) {
    usage(option + " takes a non-negative integer, got '" + text + "'");
  }
}

std::vector<int64_t> parse_shape(const std::string& text) {
  std::vector<int64_t> dims;
  std::stringstream ss(text);
  std::string item;
  while (std::getline(ss, item, ',')) {
    try {
      size_t used = 0;
      long long v = std::stoll(item, &used);
      if (used != item.size() || v <= 0) throw std::invalid_argument(item);
      dims.push_back(v);
    } catch (const std::exception&) {
      usage("--shape takes positive integers separated by commas, got '" + text + "'");
    }
  }
  if (dims.empty()) usage("--shape is empty");
  return dims;
}

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) usage(a + " needs a value");
      return argv[++i];
    };
    if (a == "--shape") o.shape = parse_shape(value());
    else if (a == "--input") o.input = value();
    else if (a == "--output") o.output = value();
    else if (a == "--times") o.times = value();
    else if (a == "--iters") o.iters = parse_count(a, value());
    else if (a == "--warmup") o.warmup = parse_count(a, value());
    else if (a == "--threads") o.threads = parse_count(a, value());
    else if (a == "-h" || a == "--help") usage("help requested");
    else if (!a.empty() && a[0] == '-') usage("unknown option " + a);
    else if (o.model.empty()) o.model = a;
    else usage("more than one model path given");
  }
  if (o.model.empty()) usage("no model path given");
  if (o.shape.empty()) usage("--shape is required");
  return o;
}

at::Tensor make_input(const Options& o) {
  int64_t numel = 1;
  for (int64_t d : o.shape) numel *= d;
  at::Tensor x = at::empty(o.shape, at::kFloat);
  float* p = x.data_ptr<float>();
  if (o.input.empty()) {
    for (int64_t i = 0; i < numel; ++i) p[i] = static_cast<float>(std::sin(0.01 * static_cast<double>(i)));
    return x;
  }
  std::ifstream f(o.input, std::ios::binary | std::ios::ate);
  if (!f) usage("cannot open input file " + o.input);
  const auto bytes = static_cast<int64_t>(f.tellg());
  if (bytes != numel * static_cast<int64_t>(sizeof(float))) {
    usage("input file " + o.input + " has " + std::to_string(bytes) + " bytes, shape needs " +
          std::to_string(numel * sizeof(float)));
  }
  f.seekg(0);
  f.read(reinterpret_cast<char*>(p), bytes);
  return x;
}

}  // namespace

int main(int argc, char** argv) {
  const Options o = parse(argc, argv);
  if (o.threads > 0) at::set_num_threads(o.threads);
  try {
    at::NoGradGuard no_grad;
    torch::inductor::AOTIModelPackageLoader loader(o.model);
    const std::vector<at::Tensor> inputs{make_input(o)};

    std::vector<at::Tensor> outputs = loader.run(inputs);
    if (outputs.empty()) throw std::runtime_error("the package returned no outputs");
    const at::Tensor out = outputs[0].contiguous().to(at::kCPU, at::kFloat);

    std::cout << "output shape [";
    for (int64_t d = 0; d < out.dim(); ++d) std::cout << (d ? ", " : "") << out.size(d);
    std::cout << "]\n";
    std::printf("sum %.9g\nmean_abs %.9g\nfirst", out.sum().item<double>(), out.abs().mean().item<double>());
    const float* q = out.data_ptr<float>();
    for (int64_t i = 0; i < std::min<int64_t>(8, out.numel()); ++i) std::printf(" %.9g", q[i]);
    std::printf("\n");

    if (!o.output.empty()) {
      std::ofstream f(o.output, std::ios::binary);
      f.write(reinterpret_cast<const char*>(q), static_cast<std::streamsize>(out.numel() * sizeof(float)));
      if (!f) throw std::runtime_error("cannot write " + o.output);
    }

    if (o.iters > 0) {
      for (int i = 0; i < o.warmup; ++i) loader.run(inputs);
      std::vector<double> ms;
      for (int i = 0; i < o.iters; ++i) {
        const auto t0 = std::chrono::steady_clock::now();
        loader.run(inputs);
        ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
      }
      if (!o.times.empty()) {  // per-run latencies in ms, in run order, one a line
        std::ofstream f(o.times);
        for (const double v : ms) f << std::setprecision(17) << v << "\n";
        if (!f) throw std::runtime_error("cannot write " + o.times);
      }
      std::sort(ms.begin(), ms.end());
      std::printf("latency_ms min %.4f p50 %.4f p90 %.4f (%d runs, %d threads)\n", ms.front(), percentile(ms, 50),
                  percentile(ms, 90), o.iters, at::get_num_threads());
    }
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
