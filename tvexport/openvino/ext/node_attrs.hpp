// The tv_dwconv node's attribute names, and a check of an ONNX file's tv_dwconv nodes against
// them, for C++ programs that load the extension (examples/openvino_runner calls it before
// read_model). The extension's ONNX conversion cannot refuse an attribute it does not know:
// OpenVINO's frontend hands it a node's attributes by name only
// (ov::frontend::NodeContext::get_attribute_as_any; nothing lists them), so such an attribute
// (dilation=2, say) would be dropped unsaid. The Python paths refuse them from the ONNX proto
// (tvexport/_depthwise.py: NODE_ATTRS, check_node_attr_names), in the words used here: keep the
// two lists and messages equal (tests/test_openvino.py::test_node_attrs_header).
//
// Header only, no dependency beyond the C++17 standard library: the check reads the file's
// protobuf wire format itself (ModelProto.graph -> GraphProto.node -> NodeProto name, op_type,
// domain, attribute names), the main graph's nodes, as the Python check does.
#pragma once

#include <algorithm>
#include <cstdint>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

namespace tvx {

// tvexport/_depthwise.py's NODE_ATTRS, in its order: the last is TensorRT's plugin creation request.
inline const std::vector<std::string>& node_attrs() {
    static const std::vector<std::string> names{"k", "stride", "padding", "plugin_namespace", "plugin_version", "aot"};
    return names;
}

namespace wire {

// One protobuf message's fields in order. A malformed message (a length past its end, a group,
// an unknown wire type) sets ok = false.
struct Fields {
    const uint8_t* p;
    const uint8_t* end;
    bool ok = true;

    bool varint(uint64_t& v) {
        v = 0;
        for (int shift = 0; shift < 64 && p < end; shift += 7) {
            const uint8_t b = *p++;
            v |= uint64_t(b & 0x7f) << shift;
            if (!(b & 0x80))
                return true;
        }
        return ok = false;
    }

    // The next field: its number and, for a length-delimited one (wire type 2), its bytes in
    // [data, data + len); other wire types are skipped over (len = 0, data = nullptr).
    bool next(uint64_t& field, const uint8_t*& data, uint64_t& len) {
        if (!ok || p >= end)
            return false;
        uint64_t tag = 0;
        if (!varint(tag))
            return false;
        field = tag >> 3;
        data = nullptr;
        len = 0;
        uint64_t skip = 0;
        switch (tag & 7) {
        case 0:
            return varint(skip);
        case 1:
            skip = 8;
            break;
        case 5:
            skip = 4;
            break;
        case 2:
            if (!varint(len))
                return false;
            data = p;
            skip = len;
            break;
        default:  // groups (3, 4): not in ONNX's messages
            return ok = false;
        }
        if (skip > uint64_t(end - p))
            return ok = false;
        p += skip;
        return true;
    }
};

// Calls fn(field, data, len) for each length-delimited field of the message in [data, data +
// len), in order (other fields skipped); false where the message is malformed or fn says so.
template <typename Fn>
bool each_field(const uint8_t* data, uint64_t len, Fn&& fn) {
    Fields message{data, data + len};
    uint64_t field = 0, n = 0;
    const uint8_t* bytes = nullptr;
    while (message.next(field, bytes, n))
        if (bytes && !fn(field, bytes, n))
            return false;
    return message.ok;
}

}  // namespace wire

struct TVNode {
    std::string name;
    std::vector<std::string> attributes;
};

// The tvexport::tv_dwconv nodes of a serialized ModelProto's main graph, with their attribute
// names; false where the bytes are no well-formed ModelProto (read_model then says why).
inline bool tv_nodes(const std::string& bytes, std::vector<TVNode>& out) {
    constexpr uint64_t kModelGraph = 7, kGraphNode = 1, kNodeName = 3, kNodeOpType = 4, kNodeAttribute = 5, kNodeDomain = 7,
                       kAttributeName = 1;
    const auto text = [](const uint8_t* d, uint64_t n) { return std::string(reinterpret_cast<const char*>(d), n); };
    const auto node_of = [&](const uint8_t* node, uint64_t len) {
        TVNode tv;
        std::string op_type, domain;
        const bool ok = wire::each_field(node, len, [&](uint64_t field, const uint8_t* d, uint64_t n) {
            if (field == kNodeName)
                tv.name = text(d, n);
            else if (field == kNodeOpType)
                op_type = text(d, n);
            else if (field == kNodeDomain)
                domain = text(d, n);
            else if (field == kNodeAttribute) {
                std::string name;
                if (!wire::each_field(d, n, [&](uint64_t af, const uint8_t* a, uint64_t an) {
                        if (af == kAttributeName)
                            name = text(a, an);
                        return true;
                    }))
                    return false;
                tv.attributes.push_back(name);
            }
            return true;
        });
        if (ok && op_type == "tv_dwconv" && domain == "tvexport")
            out.push_back(std::move(tv));
        return ok;
    };
    const auto* begin = reinterpret_cast<const uint8_t*>(bytes.data());
    return wire::each_field(begin, bytes.size(), [&](uint64_t field, const uint8_t* graph, uint64_t len) {
        return field != kModelGraph || wire::each_field(graph, len, [&](uint64_t gf, const uint8_t* node, uint64_t n) {
                   return gf != kGraphNode || node_of(node, n);
               });
    });
}

// s as Python's repr() writes a str (its quote choice; backslash, quote, \n \r \t and other
// ASCII control bytes escaped; bytes >= 0x80 as they are), so a refusal stays one line and reads
// as the Python check's does.
inline std::string py_quoted(const std::string& s) {
    const char q = (s.find('\'') != std::string::npos && s.find('"') == std::string::npos) ? '"' : '\'';
    std::string out(1, q);
    for (const char ch : s) {
        const unsigned char c = static_cast<unsigned char>(ch);
        if (ch == '\\' || ch == q) {
            out += '\\';
            out += ch;
        } else if (ch == '\n') {
            out += "\\n";
        } else if (ch == '\r') {
            out += "\\r";
        } else if (ch == '\t') {
            out += "\\t";
        } else if (c < 0x20 || c == 0x7f) {
            const char* hex = "0123456789abcdef";
            out += "\\x";
            out += hex[c >> 4];
            out += hex[c & 15];
        } else {
            out += ch;
        }
    }
    return out + q;
}

// The refusal of the first tv_dwconv node with an attribute it does not take, in one line and
// the Python check's words ("tv_dwconv node 'tv': unknown attribute 'dilation'; tv_dwconv takes
// ..."); empty where every node's attributes are known, or where the bytes are no ModelProto.
inline std::string unknown_attributes(const std::string& bytes) {
    std::vector<TVNode> nodes;
    if (!tv_nodes(bytes, nodes))
        return "";
    const auto& known = node_attrs();
    for (const auto& node : nodes) {
        std::vector<std::string> unknown;
        for (const auto& a : node.attributes)
            if (std::find(known.begin(), known.end(), a) == known.end())
                unknown.push_back(a);
        if (unknown.empty())
            continue;
        std::sort(unknown.begin(), unknown.end());
        unknown.erase(std::unique(unknown.begin(), unknown.end()), unknown.end());
        std::string listed, takes;
        for (size_t i = 0; i < unknown.size(); ++i)
            listed += (i ? ", " : "") + py_quoted(unknown[i]);
        for (size_t i = 0; i + 1 < known.size(); ++i)
            takes += (i ? ", " : "") + known[i];
        return "tv_dwconv node " + py_quoted(node.name) + ": unknown attribute" + (unknown.size() > 1 ? "s " : " ") + listed +
               "; tv_dwconv takes " + takes + " (and TensorRT's " + known.back() + ") only";
    }
    return "";
}

// unknown_attributes of the ONNX file at `path`, with the file and the fix; empty where there is
// nothing to refuse or the file cannot be read (read_model then says why).
inline std::string unknown_attributes_in_file(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    if (!f)
        return "";
    const std::string bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    const std::string refusal = unknown_attributes(bytes);
    return refusal.empty() ? refusal : refusal + " (in " + path + "; export the model again with tvexport export --tv-op plugin)";
}

}  // namespace tvx
