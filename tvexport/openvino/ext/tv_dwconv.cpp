// OpenVINO extension for tvexport's plugin-form ONNX graphs: the `tvexport::tv_dwconv` node.
//
// ONNX node (see tvexport/export/_onnx_tv.py: emit_plugin):
//   y = tv_dwconv(x (N, C, H, W), weight (C, k*k, h, w) [, bias (C, h, w) | (C, 1, 1) | ''] [, scale])
//   INT attributes k (odd, <= 63), stride (>= 1), padding (0..k-1); weight float32 | float16 | int8 (then scale (C, k*k, 1, 1)
//   float32 is the 4th input: w_real = weight * scale); output dtype = x dtype.
//
// The ONNX frontend converts each node into
//   Transpose(x -> NHWC) -> TVDWConvNHWC(x, weight (h, k*k, w, C), bias, scale) -> Transpose(-> NCHW)
// with bias (h, w, C) or per channel (1, P, C) and scale (k*k, P*C) (see TVDWConvNHWC below).
// The Transposes, Reshapes and Tiles of the constant weights, bias and scale are constant-folded when the model is
// compiled; those of the activations meet the CPU plugin's own channels-last layout, where they
// cost a cheap reorder instead of the two generic reorders an NCHW custom op gets.
// TVDWConvNHWC runs as a CPU-plugin reference node: evaluate() splits the output rows over
// OpenVINO's own thread pool (ov::parallel_nt, oneTBB in the wheel) and calls the kernel variant
// (kernel.cpp) for the best instruction set of the running CPU.
#include <openvino/core/extension.hpp>
#include <openvino/core/op_extension.hpp>
#include <openvino/core/parallel.hpp>
#include <openvino/frontend/onnx/extension/conversion.hpp>
#include <openvino/op/broadcast.hpp>
#include <openvino/op/constant.hpp>
#include <openvino/op/convert.hpp>
#include <openvino/op/op.hpp>
#include <openvino/op/reshape.hpp>
#include <openvino/op/tile.hpp>
#include <openvino/op/transpose.hpp>

#include <cstdint>
#include <cstdlib>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

#include "kernel.hpp"

namespace tvx {
namespace {

template <typename... Parts>
[[noreturn]] void refuse(const std::string& node, const Parts&... parts) {
    std::ostringstream os;
    os << "tv_dwconv node '" << node << "': ";
    (os << ... << parts);
    OPENVINO_THROW(os.str());
}

std::string dims(const ov::PartialShape& s, const std::vector<int64_t>& order = {}) {
    std::ostringstream os;
    os << "(";
    for (size_t d = 0; d < s.size(); ++d) {
        const auto& dim = s[order.empty() ? d : static_cast<size_t>(order[d])];
        os << (d ? ", " : "") << (dim.is_static() ? std::to_string(dim.get_length()) : std::string("?"));
    }
    return os.str() + ")";
}

// The largest k the op takes: TVConv layers use 3..7, and with k and padding this small neither
// k*k nor a window's reach can overflow int64. The Python sides' bound is tvexport/_depthwise.py's
// MAX_NODE_K: keep the two equal.
constexpr int64_t kMaxK = 63;

// The attribute checks, shared by the ONNX conversion (before anything there uses k) and the op.
void check_attributes(const std::string& name, int64_t k, int64_t stride, int64_t padding) {
    if (k < 1 || k % 2 == 0)
        refuse(name, "k must be a positive odd number, got ", k);
    if (k > kMaxK)
        refuse(name, "k must be at most ", kMaxK, ", got ", k);
    if (stride < 1)
        refuse(name, "stride must be >= 1, got ", stride);
    if (padding < 0 || padding >= k)
        refuse(name, "padding must be between 0 and k-1 = ", k - 1, " for k=", k, ", got ", padding);
}

// The weight (C, k*k, h, w), its dimensions in `order` (as for dims), holds k*k taps per channel:
// checked by the op and, before the scale is compared with the weight's taps, by the ONNX
// conversion, so that a weight of the wrong k is blamed rather than a scale that agrees with k.
void check_taps(const std::string& name, const ov::PartialShape& weight, const std::vector<int64_t>& order, int64_t k) {
    const auto& taps = weight[order.empty() ? 1 : static_cast<size_t>(order[1])];
    if (taps.is_static() && taps.get_length() != k * k)
        refuse(name, "weight ", dims(weight, order), " must hold k*k = ", k * k, " taps per channel (k=", k, ")");
}

// Output positions of a k-tap window at `stride` over `in` >= 0 values padded by `pad` on each side
// (attributes as check_attributes allows); 0 when the padded input is shorter than the window (no
// position at all: torch and ONNX Conv refuse such a shape). Exact floor with no overflow for any
// size: 2*pad - k lies in [-k, k-2], so the span fits in uint64 (a declared dimension may be up to
// 2^63 - 2); a count above INT64_MAX (which no dimension holds) is returned as INT64_MAX.
int64_t window_positions(int64_t in, int64_t k, int64_t stride, int64_t pad) {
    const int64_t reach = 2 * pad - k;
    if (reach < 0 && in < -reach)
        return 0;
    const uint64_t span = static_cast<uint64_t>(in) + static_cast<uint64_t>(reach);  // modulo 2^64: exact, as span >= 0
    const uint64_t positions = span / static_cast<uint64_t>(stride) + 1;
    constexpr int64_t most = std::numeric_limits<int64_t>::max();
    return positions > static_cast<uint64_t>(most) ? most : static_cast<int64_t>(positions);
}

// The widest variant this CPU runs; TVEXPORT_OV_KERNEL=generic|avx2|avx512 asks for a narrower one
// (tests use it to check every variant on one machine; a variant the CPU lacks is never chosen).
KernelFn select_kernel() {
    const char* env = std::getenv("TVEXPORT_OV_KERNEL");
    const std::string want = env ? env : "";
#if defined(TVX_MULTI_ISA)
    __builtin_cpu_init();
    const bool avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                        __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
                        __builtin_cpu_supports("avx512cd");
    const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c") &&
                      __builtin_cpu_supports("bmi2");
    if (avx512 && (want.empty() || want == "avx512"))
        return kernel_avx512;
    if (avx2 && (want.empty() || want == "avx512" || want == "avx2"))
        return kernel_avx2;
#endif
    return kernel_generic;
}

const char* kernel_name(KernelFn fn) {
#if defined(TVX_MULTI_ISA)
    if (fn == kernel_avx512)
        return "x86-64-v4 (AVX-512)";
    if (fn == kernel_avx2)
        return "x86-64-v3 (AVX2, FMA, F16C)";
#endif
    (void)fn;
    return "baseline";
}

const KernelFn kKernel = select_kernel();

// The op's switches for A/B runs (benchmarks/openvino_ab.py --switch; each is described in
// switches_from_env below). Unlike TVEXPORT_OV_KERNEL they are read when an op is constructed (as
// the model is read) and kept by its clones, so two models read in one process may differ.
// An on/off switch: `fallback` when unset or empty, off when set to 0, else on.
bool switch_from_env(const char* name, bool fallback = true) {
    const char* env = std::getenv(name);
    if (!env || !*env)
        return fallback;
    return std::string(env) != "0";
}

// A byte count: 0 unless set; anything but a whole decimal number is refused, and so is one
// outside [lo, hi] other than 0 (unset: the default), in one line saying the range.
int64_t bytes_from_env(const char* name, const char* example, int64_t lo = 0, int64_t hi = std::numeric_limits<int64_t>::max()) {
    const char* env = std::getenv(name);
    if (!env || !*env)
        return 0;
    char* end = nullptr;
    const long long v = std::strtoll(env, &end, 10);  // past int64: LLONG_MAX, so above any hi below it
    if (*end != '\0' || v < 0)
        OPENVINO_THROW("tv_dwconv: ", name, "=", env, " is not a whole number of bytes (e.g. ", example, ")");
    if (v != 0 && (v < lo || v > hi))
        OPENVINO_THROW("tv_dwconv: ", name, "=", env, " is out of range: give ", lo, " to ", hi, " bytes (e.g. ", example,
                       "), or 0 or unset for the default");
    return v;
}

Switches switches_from_env() {
    Switches s;
    // TVEXPORT_OV_CHANNEL_BLOCKS=0 turns the kernel's channel-block path off (kernel.cpp:
    // run_channel_blocks; such layers take the tile path; --switch channel-blocks).
    s.channel_blocks = switch_from_env("TVEXPORT_OV_CHANNEL_BLOCKS");
    // TVEXPORT_OV_BLOCKS_OUTER=0: the channel-block path walks each row tile through all channel
    // blocks (the order before issue 17h) instead of each block through all row tiles (--switch
    // blocks-outer).
    s.blocks_outer = switch_from_env("TVEXPORT_OV_BLOCKS_OUTER");
    // TVEXPORT_OV_SCALE_REGISTERS=0: int8 kernels one image at a time (batch 1, or a batch's last
    // single-image tile) load each scale vector beside its kernel vector instead of holding a
    // layer's scales in registers where they fit (kernel.cpp: Pass::scale_register_chunks;
    // --switch scale-registers).
    s.scale_registers = switch_from_env("TVEXPORT_OV_SCALE_REGISTERS");
    // TVEXPORT_OV_KERNEL_NTA=0|1: at batch 1 (every kernel used once) the kernel stream is
    // prefetched with the non-temporal hint (prefetchnta, 1) or with locality (0; see
    // TVEXPORT_OV_KERNEL_L2) instead of the default, non-temporal on AMD Zen 5 and later only
    // (kernel.cpp: Pass::hint; --switch nta).
    s.kernel_nta = switch_from_env("TVEXPORT_OV_KERNEL_NTA", s.kernel_nta);
    // TVEXPORT_OV_KERNEL_L2=0: the kernel stream is prefetched into L1 too (prefetcht0, the
    // kernel before issue 17q) instead of into L2 only (prefetcht1; --switch kernel-l2;
    // kernel.cpp: Pass::hint); at batch 1 only where the non-temporal hint is off.
    s.kernel_l2 = switch_from_env("TVEXPORT_OV_KERNEL_L2");
    // TVEXPORT_OV_KERNEL_ROWS=0: at batch 1 the heads of the next row's kernel runs are not
    // prefetched while a row runs; they come from memory on demand, as before issue 17aa
    // (--switch kernel-rows; kernel.cpp: the comment before run).
    s.kernel_rows = switch_from_env("TVEXPORT_OV_KERNEL_ROWS");
    // TVEXPORT_OV_SERIAL_BYTES=N: layers that move fewer than N bytes (stored kernels + input +
    // output) run on the calling thread, all rows in one kernel call, instead of being split over
    // the pool (--switch serial). Default 0, every layer on the pool: in those runs (face
    // MobileNetV2 x0.1, ShuffleNetV2 x1.0) no layer was faster on the calling thread; the 3-5 us
    // ones took the same time either way (benchmarks/results/openvino_serial_*.md).
    // Rechecked on the Zen 4 with AVX-512 (issue 17 stop 49, b1c49; x0.1, batch 1): every layer on the
    // calling thread made the TV ops 1.69x (float16) and 1.74x (int8) as long (nulls 1.00, 1.03), wall
    // 1.31x; the 4-5 us layers 1.00-1.26x, none faster (openvino_serial_zen4_b1c49_x0_1_b1.md).
    s.serial_bytes = bytes_from_env("TVEXPORT_OV_SERIAL_BYTES", "4611686018427387904 for every layer");
    // TVEXPORT_OV_INT8_WIDE_TILES=0|1: at batch > 1, int8 kernel tiles of TVX_BLOCK_BYTES (0) or
    // twice that (1) instead of the default, wide on cores with >= 2 MiB of L2 (kernel.cpp:
    // block_bytes; --switch int8-wide-tiles).
    s.int8_wide_tiles = switch_from_env("TVEXPORT_OV_INT8_WIDE_TILES", s.int8_wide_tiles);
    // TVEXPORT_OV_BLOCK_BYTES=N: at batch > 1, tiles (and channel blocks) of N stored kernel bytes
    // (int8: doubled where int8_wide_tiles) instead of the kernel's default (kernel.cpp:
    // block_bytes; --switch block-bytes); 0 or unset: the default. Taken from 4 KiB (one-position
    // tiles of kMinRows rows, the narrowest channel blocks) to 64 MiB (32x the largest L2 these
    // tiles were measured on, 2 MiB); anything else is refused: a few bytes gave one-position
    // tiles silently, and a value near 2^62 overflowed int8_wide_tiles' doubling.
    s.block_bytes = bytes_from_env("TVEXPORT_OV_BLOCK_BYTES", "196608 for 192 KiB", int64_t(4) << 10, int64_t(64) << 20);
    return s;
}

}  // namespace

// Channels-last TV depthwise op: x (N, H, W, C) (with pre_pointwise (N, H, W, cin) or
// (N, cin, H, W), see m_pointwise), weight (h, k*k, w, C) float32 | float16 | int8
// (or float16 as uint8 bytes (h, k*k, w, 2*C), see half_kernel_bytes), optional bias (h, w, C) map
// or per channel (1, P, C) float32, scale (k*k, P*C) float32 iff weight is int8, where P =
// segment_positions(C): per-channel values come repeated over a kernel segment's positions (see
// kernel.hpp), built by the ONNX conversion as constant-folded Tile nodes, so that the kernel
// reads them at the same offsets as the kernels; output (N, h, w, C) of x's type.
class TVDWConvNHWC : public ov::op::Op {
public:
    OPENVINO_OP("TVDWConvNHWC", "tvexport");

    TVDWConvNHWC() = default;
    TVDWConvNHWC(const ov::OutputVector& args, int64_t k, int64_t stride, int64_t padding)
        : Op(args), m_k(k), m_stride(stride), m_padding(padding) {
        constructor_validate_and_infer_types();
    }

    // Named before validation, so that every refusal names the ONNX node.
    static std::shared_ptr<TVDWConvNHWC> make(const std::string& name, const ov::OutputVector& args, int64_t k,
                                              int64_t stride, int64_t padding) {
        auto op = std::make_shared<TVDWConvNHWC>();
        op->m_k = k;
        op->m_stride = stride;
        op->m_padding = padding;
        op->set_friendly_name(name);
        op->set_arguments(args);
        op->constructor_validate_and_infer_types();
        return op;
    }

    // inputs before the pointwise prologue's (weight, bias), which come last when m_pointwise is set
    size_t own_inputs() const {
        return get_input_size() - (m_pointwise ? 2u : 0u);
    }
    bool has_bias() const {
        return own_inputs() == (has_scale() ? 4u : 3u);
    }
    bool has_scale() const {
        return get_input_element_type(1) == ov::element::i8;
    }

    void validate_and_infer_types() override {
        const std::string& name = get_friendly_name();
        if (m_pointwise && get_input_size() < 4)
            refuse(name, "with pre_pointwise takes 4 to 6 inputs (x, weight, bias, scale, pointwise weight, pointwise bias), got ",
                   get_input_size());
        const auto n_in = own_inputs();
        if (n_in < 2 || n_in > 4)
            refuse(name, "takes 2 to 4 inputs (x, weight, bias, scale), got ", n_in);
        check_attributes(name, m_k, m_stride, m_padding);
        const auto xt = get_input_element_type(0), wt = get_input_element_type(1);
        if (xt != ov::element::f32 && xt != ov::element::f16 && xt.is_static())
            refuse(name, "x must be float32 or float16, got ", xt);
        if (wt != ov::element::f32 && wt != ov::element::f16 && wt != ov::element::u8 && wt != ov::element::i8 &&
            wt.is_static())
            refuse(name, "weight must be float32, float16 or int8, got ", wt);
        if (has_scale() && n_in < 3)
            refuse(name, "int8 weight needs a float32 scale (C, k*k, 1, 1) as 4th input");
        if (!has_scale() && n_in == 4)
            refuse(name, "a scale input is only allowed with int8 weight, got weight ", wt);

        ov::PartialShape x = get_input_partial_shape(0);
        if (m_pointwise && m_pre_nchw && x.rank().is_static() && x.rank().get_length() == 4)
            x = ov::PartialShape{x[0], x[2], x[3], x[1]};  // the 1x1 convolution's input as the graph has it: seen as NHWC here
        auto w = get_input_partial_shape(1);
        const bool half_bytes = wt == ov::element::u8;  // float16 kernels as bytes: last dim 2*C
        if (half_bytes && w.rank().is_static() && w.rank().get_length() == 4 && w[3].is_static())
            w[3] = w[3].get_length() / 2;
        const std::vector<int64_t> nchw{0, 3, 1, 2}, ckkhw{3, 1, 0, 2};
        if (x.rank().is_static() && x.rank().get_length() != 4)
            refuse(name, "x must be 4-D (N, C, H, W), got rank ", x.rank().get_length());
        if (w.rank().is_static() && w.rank().get_length() != 4)
            refuse(name, "weight must be 4-D (C, k*k, h, w), got rank ", w.rank().get_length());
        ov::PartialShape out{ov::Dimension::dynamic(), ov::Dimension::dynamic(), ov::Dimension::dynamic(),
                             ov::Dimension::dynamic()};
        if (x.rank().is_static())
            out[0] = x[0];
        if (w.rank().is_static()) {
            out[1] = w[0];
            out[2] = w[2];
            out[3] = w[3];
            check_taps(name, w, ckkhw, m_k);
        }
        if (m_pointwise)
            check_pointwise(name, x, w, xt);
        if (x.rank().is_static() && w.rank().is_static()) {
            if (!m_pointwise && x[3].is_static() && w[3].is_static() && x[3].get_length() != w[3].get_length())
                refuse(name, "x ", dims(x, nchw), " has ", x[3].get_length(), " channels, weight ", dims(w, ckkhw), " has ",
                       w[3].get_length());
            for (int axis = 0; axis < 2; ++axis) {
                const auto& in = x[1 + axis];
                const auto& o = w[axis * 2];
                if (in.is_dynamic())
                    continue;
                const char* what = axis ? "width " : "height ";
                const int64_t got = window_positions(in.get_length(), m_k, m_stride, m_padding);
                if (got == 0)  // in + 2*padding < k here, so the sum fits
                    refuse(name, "x ", dims(x, nchw), " is smaller than the k=", m_k, " window: ", what, in.get_length(),
                           " padded by ", m_padding, " on each side is ", in.get_length() + 2 * m_padding, " < ", m_k);
                if (o.is_static() && got != o.get_length())
                    refuse(name, "x ", dims(x, nchw), " with k=", m_k, " stride=", m_stride, " padding=", m_padding, " gives ", what,
                           got == std::numeric_limits<int64_t>::max() ? "of at least " : "", got, ", but weight ", dims(w, ckkhw),
                           " is for ", o.get_length(), " (TVConv runs only at its trained input size)");
            }
        }
        // per-channel values come repeated over P = segment_positions(C) positions
        const ov::Dimension per_seg = w.rank().is_static() && w[3].is_static() ? ov::Dimension(segment_positions(w[3].get_length()))
                                                                               : ov::Dimension::dynamic();
        if (has_bias()) {
            const auto& b = get_input_partial_shape(2);
            if (get_input_element_type(2) != ov::element::f32)
                refuse(name, "bias must be float32 here, got ", get_input_element_type(2));
            const bool ok_rank = b.rank().is_static() && b.rank().get_length() == 3;
            bool ok = ok_rank;
            if (ok_rank && w.rank().is_static()) {
                const bool map = b[0].compatible(w[0]) && b[1].compatible(w[2]);
                const bool channel = b[0].compatible(1) && b[1].compatible(per_seg);
                ok = (map || channel) && b[2].compatible(w[3]);
            }
            if (!ok)
                refuse(name, "bias ", b.rank().is_static() ? dims(b, {2, 0, 1}) : std::string("of unknown rank"),
                       " must be (C, h, w) or (C, 1, 1) for weight ", dims(w, ckkhw));
        }
        if (has_scale()) {
            const auto& s = get_input_partial_shape(own_inputs() - 1);
            if (get_input_element_type(own_inputs() - 1) != ov::element::f32)
                refuse(name, "scale must be float32, got ", get_input_element_type(own_inputs() - 1));
            if (s.rank().is_dynamic() || s.rank().get_length() != 2 ||
                (w.rank().is_static() && !(s[0].compatible(w[1]) && s[1].compatible(per_seg * w[3]))))
                refuse(name, "scale must be (C, k*k, 1, 1) for weight ", dims(w, ckkhw));
        }
        set_output_type(0, xt, out);
    }

    // The pointwise prologue's inputs (kernel.hpp): x (N, H, W, cin) float32 (NCHW seen as NHWC), pointwise weight
    // (cin, Cp) and bias (Cp) float32, Cp = pointwise_columns(C) for the weight's C channels.
    void check_pointwise(const std::string& name, const ov::PartialShape& x, const ov::PartialShape& w, const ov::element::Type& xt) const {
        const size_t iw = get_input_size() - 2, ib = get_input_size() - 1;
        const auto& pw = get_input_partial_shape(iw);
        const auto& pb = get_input_partial_shape(ib);
        if (xt.is_static() && xt != ov::element::f32)
            refuse(name, "pre_pointwise needs float32 x, got ", xt);
        if (get_input_element_type(iw) != ov::element::f32 || get_input_element_type(ib) != ov::element::f32)
            refuse(name, "pre_pointwise weight and bias must be float32, got ", get_input_element_type(iw), " and ", get_input_element_type(ib));
        const ov::Dimension cols = w.rank().is_static() && w[3].is_static() ? ov::Dimension(pointwise_columns(w[3].get_length()))
                                                                            : ov::Dimension::dynamic();
        const ov::Dimension cin = x.rank().is_static() ? x[3] : ov::Dimension::dynamic();
        if (pw.rank().is_dynamic() || pw.rank().get_length() != 2 || !pw[0].compatible(cin) || !pw[1].compatible(cols) ||
            pb.rank().is_dynamic() || pb.rank().get_length() != 1 || !pb[0].compatible(cols))
            refuse(name, "pre_pointwise weight ", dims(pw), " and bias ", dims(pb), " must be (cin, Cp) and (Cp) for x ",
                   x.rank().is_static() ? dims(x) : std::string("of unknown rank"), " (NHWC), Cp = channels rounded up to 16 = ",
                   cols.is_static() ? std::to_string(cols.get_length()) : std::string("?"));
    }

    std::shared_ptr<ov::Node> clone_with_new_inputs(const ov::OutputVector& args) const override {
        auto op = std::make_shared<TVDWConvNHWC>();
        op->m_k = m_k;
        op->m_stride = m_stride;
        op->m_padding = m_padding;
        op->m_clamp = m_clamp;
        op->m_lo = m_lo;
        op->m_hi = m_hi;
        op->m_pointwise = m_pointwise;
        op->m_pre_clamp = m_pre_clamp;
        op->m_pre_nchw = m_pre_nchw;
        op->m_pre_lo = m_pre_lo;
        op->m_pre_hi = m_pre_hi;
        op->m_switches = m_switches;
        op->set_friendly_name(get_friendly_name());
        op->set_arguments(args);
        op->constructor_validate_and_infer_types();
        return op;
    }

    bool visit_attributes(ov::AttributeVisitor& visitor) override {
        visitor.on_attribute("k", m_k);
        visitor.on_attribute("stride", m_stride);
        visitor.on_attribute("padding", m_padding);
        visitor.on_attribute("clamp", m_clamp);
        visitor.on_attribute("clamp_lo", m_lo);
        visitor.on_attribute("clamp_hi", m_hi);
        visitor.on_attribute("pre_pointwise", m_pointwise);
        visitor.on_attribute("pre_clamp", m_pre_clamp);
        visitor.on_attribute("pre_nchw", m_pre_nchw);
        visitor.on_attribute("pre_lo", m_pre_lo);
        visitor.on_attribute("pre_hi", m_pre_hi);
        return true;
    }

    bool has_evaluate() const override {
        return true;
    }

    bool evaluate(ov::TensorVector& outputs, const ov::TensorVector& inputs) const override {
        const auto& x = inputs[0];
        const auto& w = inputs[1];
        ov::Shape xs = x.get_shape();
        if (m_pointwise && m_pre_nchw)
            xs = ov::Shape{xs[0], xs[2], xs[3], xs[1]};  // x (N, cin, H, W): the kernel reads it so (kernel.hpp)
        ov::Shape ws = w.get_shape();
        if (w.get_element_type() == ov::element::u8)
            ws[3] /= 2;
        KernelArgs a{};
        a.n = static_cast<int64_t>(xs[0]);
        a.in_h = static_cast<int64_t>(xs[1]);
        a.in_w = static_cast<int64_t>(xs[2]);
        a.c = static_cast<int64_t>(xs[3]);
        a.out_h = static_cast<int64_t>(ws[0]);
        a.out_w = static_cast<int64_t>(ws[2]);
        a.k = m_k;
        a.stride = m_stride;
        a.pad = m_padding;
        const int64_t oh = window_positions(a.in_h, a.k, a.stride, a.pad), ow = window_positions(a.in_w, a.k, a.stride, a.pad);
        if (m_pointwise) {  // x holds the prologue's cin channels; the op's are the weight's
            const size_t iw = inputs.size() - 2;
            a.cin = a.c;
            a.c = static_cast<int64_t>(ws[3]);
            const ov::Shape ps = inputs[iw].get_shape(), bs = inputs[iw + 1].get_shape();
            if (ps.size() != 2 || static_cast<int64_t>(ps[0]) != a.cin || static_cast<int64_t>(ps[1]) != pointwise_columns(a.c) ||
                bs.size() != 1 || static_cast<int64_t>(bs[0]) != pointwise_columns(a.c) || x.get_element_type() != ov::element::f32)
                refuse(get_friendly_name(), "input ", xs, " does not fit pre_pointwise weight ", ps, " and bias ", bs, " (NHWC)");
            a.pw_weight = inputs[iw].data<const float>();
            a.pw_bias = inputs[iw + 1].data<const float>();
            a.pw_nchw = m_pre_nchw;
            a.pre_clamp = m_pre_clamp;
            a.pre_lo = m_pre_lo;
            a.pre_hi = m_pre_hi;
        }
        if (oh < 1 || ow < 1 || oh != a.out_h || ow != a.out_w || a.c != static_cast<int64_t>(ws[3]))
            refuse(get_friendly_name(), "input ", xs, " does not fit weight ", ws, " (NHWC)");
        outputs[0].set_shape({xs[0], ws[0], ws[2], static_cast<size_t>(a.c)});
        a.x = x.data();
        a.weight = w.data();
        a.y = outputs[0].data();
        a.x_type = x.get_element_type() == ov::element::f16 ? DType::f16 : DType::f32;
        a.w_type = w.get_element_type() == ov::element::i8 ? DType::i8
                   : w.get_element_type() == ov::element::f32 ? DType::f32
                                                              : DType::f16;  // f16, or its bytes as u8
        if (has_bias()) {
            const ov::Shape bs = inputs[2].get_shape();
            a.bias = inputs[2].data<const float>();
            a.bias_map = static_cast<int64_t>(bs[0]) == a.out_h && static_cast<int64_t>(bs[1]) == a.out_w;  // else (1, P, C)
        }
        if (has_scale())
            a.scale = inputs[own_inputs() - 1].data<const float>();
        a.clamp = m_clamp;
        a.lo = m_lo;
        a.hi = m_hi;
        a.sw = m_switches;
        if (static_cast<int64_t>(x.get_byte_size() + w.get_byte_size() + outputs[0].get_byte_size()) < a.sw.serial_bytes) {
            kKernel(a, 0, a.out_h);
            return true;
        }
        // One fixed share of the rows per thread. Tried and dropped at batch 1 (issue 17 stop 43,
        // AVX2-only Zen 3, face MobileNetV2 x0.1, 2 threads): rows handed out on demand from an
        // atomic counter (guided: each piece 1/4 of the rows left, at least 2), against the
        // threads' halves running unevenly in some runs (a per-call trace of the two threads: in
        // one process either even or the calling thread ~1.5x the other's time on the same
        // layers, cause not found); TV ops 1.06x / 1.06x / 0.99x as long (int8 / float16 /
        // float32; openvino_ab.py --switch build, benchmarks/results/openvino_ab_build_zen3_int8b1_43_guided_x0_1_b1.md):
        // each piece restarts the ring and loses the next row's kernel-head prefetch (kernel.cpp).
        ov::parallel_nt(0, [&](int ithr, int nthr) {
            int64_t begin = 0, end = 0;
            ov::splitter(a.out_h, static_cast<int64_t>(nthr), static_cast<int64_t>(ithr), begin, end);
            if (begin < end)
                kKernel(a, begin, end);
        });
        return true;
    }

private:
    int64_t m_k = 3;
    int64_t m_stride = 1;
    int64_t m_padding = 1;
    // the output is clamped to [clamp_lo, clamp_hi] when `clamp` is set: a following Clamp/Relu
    // folded into the op after the model is read (tvexport/openvino/runtime.py: fuse_clamps)
    bool m_clamp = false;
    float m_lo = 0.0f, m_hi = 0.0f;
    // a preceding 1x1 convolution (+ bias, + clamp to [pre_lo, pre_hi] when pre_clamp) folded into
    // the op after the model is read (runtime.py: fuse_pointwise_convs): x is its input, (N, H, W,
    // cin) through the Transpose to NHWC, or (N, cin, H, W) as the graph has it where pre_nchw (see
    // fuse_pointwise_convs), and its weight and bias the last two inputs (kernel.hpp: the
    // pointwise prologue)
    bool m_pointwise = false;
    bool m_pre_nchw = false;
    bool m_pre_clamp = false;
    float m_pre_lo = 0.0f, m_pre_hi = 0.0f;
    Switches m_switches = switches_from_env();  // copied by clone_with_new_inputs, not re-read
};

namespace {

std::shared_ptr<ov::Node> i64_const(const std::vector<int64_t>& v) {
    return ov::op::v0::Constant::create(ov::element::i64, ov::Shape{v.size()}, v);
}

ov::Output<ov::Node> transpose(const ov::Output<ov::Node>& v, const std::vector<int64_t>& perm) {
    return std::make_shared<ov::op::v1::Transpose>(v, i64_const(perm));
}

bool is_absent(const ov::Output<ov::Node>& v) {
    const std::string type = v.get_node()->get_type_name();
    return type == "NullNode" || type == "Null";
}

// The CPU plugin converts float16 constants to float32 when it compiles a float32 model, which
// would double the kernel bytes the op streams; it keeps uint8 constants as they are. So constant
// float16 kernels are handed over as their bytes, already in the op's (h, k*k, w, C) order:
// uint8 (h, k*k, w, 2*C), two little-endian bytes per float16 value. nullptr if not applicable.
std::shared_ptr<ov::Node> half_kernel_bytes(const ov::Output<ov::Node>& w) {
    auto c = ov::as_type_ptr<ov::op::v0::Constant>(w.get_node_shared_ptr());
    if (!c || c->get_element_type() != ov::element::f16 || c->get_shape().size() != 4)
        return nullptr;
    const ov::Shape s = c->get_shape();  // (C, k*k, h, w)
    const size_t C = s[0], kk = s[1], h = s[2], wd = s[3];
    const auto* src = static_cast<const uint16_t*>(c->get_data_ptr());
    std::vector<uint16_t> dst(C * kk * h * wd);
    for (size_t ch = 0; ch < C; ++ch)
        for (size_t t = 0; t < kk; ++t)
            for (size_t i = 0; i < h; ++i)
                for (size_t j = 0; j < wd; ++j)
                    dst[((i * kk + t) * wd + j) * C + ch] = src[((ch * kk + t) * h + i) * wd + j];
    return std::make_shared<ov::op::v0::Constant>(ov::element::u8, ov::Shape{h, kk, wd, 2 * C}, dst.data());
}

// An INT attribute of the node: get_attribute<int64_t> would truncate a FLOAT (3.7 as 3) and parse a STRING.
// Attributes are read by name only (NodeContext lists none), so one the node does not take is
// refused before the model is read: by tvexport/openvino/runtime.py from the ONNX proto, and in
// C++ by node_attrs.hpp's unknown_attributes_in_file (examples/openvino_runner calls it).
int64_t int_attribute(const ov::frontend::NodeContext& ctx, const std::string& name, const char* attr) {
    const ov::Any v = ctx.get_attribute_as_any(attr);
    if (v.empty())
        refuse(name, "lacks the INT attribute '", attr, "' (export it again with tvexport export --tv-op plugin)");
    if (!v.is<int64_t>())
        refuse(name, "attribute '", attr, "' must be INT, got ", v.is<double>() || v.is<float>() ? "FLOAT" : v.is<std::string>() ? "STRING" : "another type",
               " (export it again with tvexport export --tv-op plugin)");
    return v.as<int64_t>();
}

ov::OutputVector convert_onnx(const ov::frontend::NodeContext& ctx) {
    const std::string name = ctx.get_name().empty() ? std::string("tv_dwconv") : ctx.get_name();
    const int64_t k = int_attribute(ctx, name, "k");
    const int64_t stride = int_attribute(ctx, name, "stride");
    const int64_t padding = int_attribute(ctx, name, "padding");
    check_attributes(name, k, stride, padding);
    const size_t n_in = ctx.get_input_size();
    if (n_in < 2 || n_in > 4)
        refuse(name, "takes inputs (x, weight[, bias][, scale]), got ", n_in);
    const auto x = ctx.get_input(0), w = ctx.get_input(1);
    for (const auto& [what, v] : {std::pair<const char*, ov::Output<ov::Node>>{"x (N, C, H, W)", x}, {"weight (C, k*k, h, w)", w}}) {
        if (is_absent(v))
            refuse(name, "input ", what, " is missing");
        if (v.get_partial_shape().rank().is_static() && v.get_partial_shape().rank().get_length() != 4)
            refuse(name, what, " must be 4-D, got shape ", dims(v.get_partial_shape()));
    }
    // uint8 is the op's own form of float16 kernels (half_kernel_bytes), never a weight of the graph
    const auto wt = w.get_element_type();
    if (wt.is_static() && wt != ov::element::f32 && wt != ov::element::f16 && wt != ov::element::i8)
        refuse(name, "weight must be float32, float16 or int8, got ", wt);
    const auto half_bytes = half_kernel_bytes(w);
    ov::OutputVector args{transpose(x, {0, 2, 3, 1}), half_bytes ? half_bytes : transpose(w, {2, 1, 3, 0})};
    // per-channel bias and scale are repeated over a kernel segment's positions (kernel.hpp)
    const auto& ws = w.get_partial_shape();
    if (ws.rank().is_dynamic() || ws[0].is_dynamic())
        refuse(name, "weight ", dims(ws), " needs a static channel count");
    const int64_t channels = ws[0].get_length(), per_seg = segment_positions(channels);
    check_taps(name, ws, {}, k);  // before the scale check below, which compares the scale with these taps
    if (n_in >= 3 && !is_absent(ctx.get_input(2))) {
        auto b = ctx.get_input(2);
        const auto& bs = b.get_partial_shape();
        if (bs.rank().is_static() && bs.rank().get_length() != 3)
            refuse(name, "bias must be (C, h, w) or (C, 1, 1), got shape ", dims(bs));
        // checked here, in the graph's own (C, h, w) order: the op sees it transposed, and tiled when per channel
        if (bs.rank().is_static() && (!bs[0].compatible(channels) || !((bs[1].compatible(ws[2]) && bs[2].compatible(ws[3])) ||
                                                                       (bs[1].compatible(1) && bs[2].compatible(1)))))
            refuse(name, "bias ", dims(bs), " must be (C, h, w) or (C, 1, 1) for weight ", dims(ws));
        if (b.get_element_type() != ov::element::f32)
            b = std::make_shared<ov::op::v0::Convert>(b, ov::element::f32);
        auto hwc = transpose(b, {1, 2, 0});
        const auto is_one = [](const ov::Dimension& d) { return d.is_static() && d.get_length() == 1; };
        const bool static_hw = bs.rank().is_static() && bs[1].is_static() && bs[2].is_static();
        const bool per_channel = static_hw && is_one(bs[1]) && is_one(bs[2]) && !(is_one(ws[2]) && is_one(ws[3]));
        if (per_channel)
            hwc = std::make_shared<ov::op::v0::Tile>(hwc, i64_const({1, per_seg, 1}))->output(0);
        else if (!static_hw && ws[2].is_static() && ws[3].is_static())  // (C, 1, 1) or (C, h, w), known at run time: a map
            hwc = std::make_shared<ov::op::v3::Broadcast>(hwc, i64_const({ws[2].get_length(), ws[3].get_length(), channels}))->output(0);
        args.push_back(hwc);
    }
    const bool int8 = w.get_element_type() == ov::element::i8;
    if (int8) {
        if (n_in < 4 || is_absent(ctx.get_input(3)))
            refuse(name, "int8 weight needs a float32 scale (C, k*k, 1, 1) as 4th input");
        const auto s = ctx.get_input(3);
        const auto& ss = s.get_partial_shape();
        if (ss.rank().is_dynamic() || ss.rank().get_length() != 4 || !ss[2].compatible(1) || !ss[3].compatible(1))
            refuse(name, "scale must be (C, k*k, 1, 1), got shape ", ss.rank().is_static() ? dims(ss) : std::string("of unknown rank"));
        // checked before the Reshape below, whose own failure would say only that it cannot divide; the
        // weight's taps are k*k here (check_taps above), so a scale that disagrees with them is the odd one out
        if ((ss[0].is_static() && ss[0].get_length() != channels) || !ss[1].compatible(ws[1]))
            refuse(name, "scale ", dims(ss), " must be ", dims(ov::PartialShape{channels, ws[1], 1, 1}),
                   ", one value per channel and tap of weight ", dims(ws));
        auto flat = std::make_shared<ov::op::v1::Reshape>(s, i64_const({channels, -1}), false);  // (C, k*k)
        auto taps = std::make_shared<ov::op::v1::Reshape>(transpose(flat, {1, 0}), i64_const({-1, 1, channels}), false);
        auto tiled = std::make_shared<ov::op::v0::Tile>(taps, i64_const({1, per_seg, 1}));
        args.push_back(std::make_shared<ov::op::v1::Reshape>(tiled, i64_const({-1, per_seg * channels}), false));
    } else if (n_in == 4 && !is_absent(ctx.get_input(3))) {
        refuse(name, "a scale input is only allowed with int8 weight, got weight ", w.get_element_type());
    }
    auto op = TVDWConvNHWC::make(name, args, k, stride, padding);
    auto y = transpose(op, {0, 3, 1, 2});
    y.get_node()->set_friendly_name(name + "/to_nchw");
    return {y};
}

}  // namespace

// Which kernel variant this process uses (for reports): exported as a plain C symbol.
extern "C" OPENVINO_CORE_EXPORTS const char* tvexport_openvino_kernel() {
    return kernel_name(kKernel);
}

}  // namespace tvx

OPENVINO_CREATE_EXTENSIONS(std::vector<ov::Extension::Ptr>({
    std::make_shared<ov::OpExtension<tvx::TVDWConvNHWC>>(),
    std::make_shared<ov::frontend::onnx::ConversionExtension>("tv_dwconv", "tvexport", tvx::convert_onnx),
}));
