// openvino_runner: run a tvexport ONNX file (plugin form, with the tvexport OpenVINO extension, or
// portable form) on OpenVINO's CPU plugin without Python.
//
//   openvino_runner MODEL.onnx --shape N,C,H,W [--extension libtvexport_openvino.so]
//                   [--input in.f32] [--output out.f32] [--iters K] [--warmup W] [--threads T]
//                   [--times t.txt] [--precision f32|bf16]
//
// The input is raw little-endian float32 in NCHW order (numpy: x.astype("<f4").tofile(path));
// without --input a deterministic input is made: x[i] = sin(0.01 * i). The first output is
// written as raw float32 to --output, and its shape, sum, mean |value| and first values are
// printed. With --iters, the run is repeated and the min/p50/p90 latency is reported (p50 and p90
// linearly interpolated, as numpy); --times writes the per-run latencies in ms, one a line. Inference
// runs in float32 (INFERENCE_PRECISION_HINT f32) unless --precision bf16 is given: on CPUs with
// AMX/AVX512-BF16 the CPU plugin would otherwise pick bfloat16. With --extension, a tv_dwconv node
// with an attribute the node does not take is refused before the model is read (one line, exit
// 1): OpenVINO's conversion would drop it unsaid (tvexport/openvino/ext/node_attrs.hpp).
#include <openvino/openvino.hpp>

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

#include "node_attrs.hpp"  // tvexport/openvino/ext: the tv_dwconv node's attributes

namespace {

struct Options {
    std::string model;
    std::string extension;
    std::vector<size_t> shape;
    std::string input;
    std::string output;
    std::string times;
    std::string precision = "f32";
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
              << "; usage: openvino_runner MODEL.onnx --shape N,C,H,W [--extension LIB] [--input in.f32]"
                 " [--output out.f32] [--iters K] [--warmup W] [--threads T] [--times t.txt] [--precision f32|bf16]\n";
    std::exit(2);
}

int parse_int(const std::string& option, const std::string& text) {
    try {
        size_t used = 0;
        const int v = std::stoi(text, &used);
        if (used != text.size() || v < 0) throw std::invalid_argument(text);
        return v;
    } catch (const std::exception&) {
        usage(option + " takes a non-negative integer, got '" + text + "'");
    }
}

std::vector<size_t> parse_shape(const std::string& text) {
    std::vector<size_t> dims;
    std::stringstream ss(text);
    std::string item;
    if (!text.empty() && text.back() == ',')  // getline would drop the empty last field
        usage("--shape takes positive integers separated by commas, got '" + text + "'");
    while (std::getline(ss, item, ',')) {
        const int v = parse_int("--shape", item);
        if (v == 0) usage("--shape takes positive integers separated by commas, got '" + text + "'");
        dims.push_back(static_cast<size_t>(v));
    }
    if (dims.empty()) usage("--shape is empty");
    return dims;
}

Options parse(int argc, char** argv) {
    Options o;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        auto value = [&]() -> std::string {
            if (i + 1 >= argc) usage(a + " needs a value");
            return argv[++i];
        };
        if (a == "--shape") o.shape = parse_shape(value());
        else if (a == "--extension") o.extension = value();
        else if (a == "--input") o.input = value();
        else if (a == "--output") o.output = value();
        else if (a == "--times") o.times = value();
        else if (a == "--iters") o.iters = parse_int(a, value());
        else if (a == "--warmup") o.warmup = parse_int(a, value());
        else if (a == "--threads") o.threads = parse_int(a, value());
        else if (a == "--precision") o.precision = value();
        else if (a == "-h" || a == "--help") usage("help requested");
        else if (!a.empty() && a[0] == '-') usage("unknown option " + a);
        else if (o.model.empty()) o.model = a;
        else usage("more than one model path given");
    }
    if (o.model.empty()) usage("no model path given");
    if (o.shape.empty()) usage("--shape is required");
    if (o.precision != "f32" && o.precision != "bf16") usage("--precision is f32 or bf16, got '" + o.precision + "'");
    return o;
}

void fill_input(const Options& o, ov::Tensor& x) {
    float* p = x.data<float>();
    const size_t numel = x.get_size();
    if (o.input.empty()) {
        for (size_t i = 0; i < numel; ++i) p[i] = static_cast<float>(std::sin(0.01 * static_cast<double>(i)));
        return;
    }
    std::ifstream f(o.input, std::ios::binary | std::ios::ate);
    if (!f) usage("cannot open input file " + o.input);
    const auto bytes = static_cast<size_t>(f.tellg());
    if (bytes != numel * sizeof(float))
        usage("input file " + o.input + " has " + std::to_string(bytes) + " bytes, shape needs " + std::to_string(numel * sizeof(float)));
    f.seekg(0);
    f.read(reinterpret_cast<char*>(p), static_cast<std::streamsize>(bytes));
}

}  // namespace

int main(int argc, char** argv) {
    const Options o = parse(argc, argv);
    try {
        ov::Core core;
        if (!o.extension.empty()) {
            core.add_extension(o.extension);  // before reading: it maps tvexport::tv_dwconv
            const std::string refusal = tvx::unknown_attributes_in_file(o.model);  // the conversion cannot list them
            if (!refusal.empty()) {
                std::cerr << "error: " << refusal << "\n";
                return 1;
            }
        }
        std::shared_ptr<ov::Model> model = core.read_model(o.model);
        ov::AnyMap config{ov::hint::inference_precision(o.precision == "bf16" ? ov::element::bf16 : ov::element::f32),
                          ov::hint::performance_mode(ov::hint::PerformanceMode::LATENCY), ov::hint::num_requests(1)};
        if (o.threads > 0) config.emplace(ov::inference_num_threads(o.threads));
        ov::CompiledModel compiled = core.compile_model(model, "CPU", config);
        ov::InferRequest request = compiled.create_infer_request();

        ov::Tensor x(ov::element::f32, ov::Shape(o.shape));
        fill_input(o, x);
        request.set_input_tensor(x);
        request.infer();
        const ov::Tensor y = request.get_output_tensor();
        if (y.get_element_type() != ov::element::f32) throw std::runtime_error("the model's output is not float32");

        std::cout << "output shape [";
        const ov::Shape ys = y.get_shape();
        for (size_t d = 0; d < ys.size(); ++d) std::cout << (d ? ", " : "") << ys[d];
        std::cout << "]\n";
        const float* q = y.data<const float>();
        double sum = 0, abs_sum = 0;
        for (size_t i = 0; i < y.get_size(); ++i) {
            sum += q[i];
            abs_sum += std::fabs(q[i]);
        }
        std::printf("sum %.9g\nmean_abs %.9g\nfirst", sum, abs_sum / static_cast<double>(y.get_size()));
        for (size_t i = 0; i < std::min<size_t>(8, y.get_size()); ++i) std::printf(" %.9g", q[i]);
        std::printf("\nprecision %s\n", o.precision.c_str());

        if (!o.output.empty()) {
            std::ofstream f(o.output, std::ios::binary);
            f.write(reinterpret_cast<const char*>(q), static_cast<std::streamsize>(y.get_byte_size()));
            if (!f) throw std::runtime_error("cannot write " + o.output);
        }
        if (o.iters > 0) {
            for (int i = 0; i < o.warmup; ++i) request.infer();
            std::vector<double> ms;
            for (int i = 0; i < o.iters; ++i) {
                const auto t0 = std::chrono::steady_clock::now();
                request.infer();
                ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
            }
            if (!o.times.empty()) {  // per-run latencies in ms, in run order, one a line
                std::ofstream f(o.times);
                for (const double v : ms) f << std::setprecision(17) << v << "\n";
                if (!f) throw std::runtime_error("cannot write " + o.times);
            }
            std::sort(ms.begin(), ms.end());
            std::printf("latency_ms min %.4f p50 %.4f p90 %.4f (%d runs, %s threads)\n", ms.front(), percentile(ms, 50),
                        percentile(ms, 90), o.iters,
                        o.threads > 0 ? std::to_string(o.threads).c_str() : "default");
        }
    } catch (const std::exception& e) {
        // OpenVINO's messages carry source locations and reports; keep the line that says what
        // is wrong, as tvexport/openvino/runtime.py (_first_line) does: a tv_dwconv refusal first,
        // else the first line naming tv_dwconv (a missing conversion rule), else the last line
        auto ends_with = [](const std::string& s, const std::string& end) {
            return s.size() >= end.size() && s.compare(s.size() - end.size(), end.size(), end) == 0;
        };
        std::stringstream ss(e.what());
        std::string line, last, tv, ours;
        while (std::getline(ss, line)) {
            if (line.empty() || line.rfind("Exception from", 0) == 0 || line.rfind("Summary:", 0) == 0 ||
                line.rfind("-- Conversion is failed for", 0) == 0 || (line.rfind("-- ", 0) == 0 && ends_with(line, " with a message:")))
                continue;  // framing: where it was raised, the frontend's report headers
            last = line;
            if (tv.empty() && line.find("tv_dwconv") != std::string::npos) tv = line;
            for (const char* mark : {"tv_dwconv node '", "tv_dwconv: "})
                if (ours.empty() && line.find(mark) != std::string::npos) ours = line.substr(line.find(mark));
        }
        if (!ours.empty()) tv = ours;
        std::string reason = !tv.empty() ? tv : !last.empty() ? last : std::string(e.what());
        if (reason.rfind("-- ", 0) == 0) reason = reason.substr(3);
        std::cerr << "error: " << reason << "\n";
        if (!tv.empty() && tv.find("No conversion rule") != std::string::npos)
            std::cerr << "hint: pass --extension with the library from `tvexport extension build openvino`\n";
        return 1;
    }
    return 0;
}
