#include "core/xml/xml_serializer.h"

#include "absl/strings/str_cat.h"

namespace xc {
namespace {

void AppendEscaped(absl::string_view in, bool attribute, std::string* out) {
  for (char c : in) {
    switch (c) {
      case '&':
        out->append("&amp;");
        break;
      case '<':
        out->append("&lt;");
        break;
      case '>':
        out->append("&gt;");
        break;
      case '\'':
        if (attribute) {
          out->append("&apos;");
        } else {
          out->push_back(c);
        }
        break;
      case '"':
        if (attribute) {
          out->append("&quot;");
        } else {
          out->push_back(c);
        }
        break;
      default:
        out->push_back(c);
    }
  }
}

}  // namespace

std::string XmlEscapeText(absl::string_view text) {
  std::string out;
  out.reserve(text.size());
  AppendEscaped(text, false, &out);
  return out;
}

std::string XmlEscapeAttribute(absl::string_view value) {
  std::string out;
  out.reserve(value.size());
  AppendEscaped(value, true, &out);
  return out;
}

void AppendXml(const XmlElement& element, absl::string_view parent_ns, std::string* out) {
  out->push_back('<');
  out->append(element.name());
  if (element.ns() != parent_ns) {
    out->append(" xmlns='");
    AppendEscaped(element.ns(), true, out);
    out->push_back('\'');
  }
  int prefix_index = 0;
  for (const XmlAttribute& a : element.attributes()) {
    out->push_back(' ');
    if (!a.ns.empty()) {
      std::string prefix = absl::StrCat("a", prefix_index++);
      absl::StrAppend(out, "xmlns:", prefix, "='");
      AppendEscaped(a.ns, true, out);
      absl::StrAppend(out, "' ", prefix, ":");
    }
    out->append(a.name);
    out->append("='");
    AppendEscaped(a.value, true, out);
    out->push_back('\'');
  }
  if (element.nodes().empty()) {
    out->append("/>");
    return;
  }
  out->push_back('>');
  for (const XmlNode& n : element.nodes()) {
    if (n.is_element()) {
      AppendXml(n.element(), element.ns(), out);
    } else {
      AppendEscaped(n.text(), false, out);
    }
  }
  out->append("</");
  out->append(element.name());
  out->push_back('>');
}

std::string SerializeXml(const XmlElement& element, absl::string_view parent_ns) {
  std::string out;
  AppendXml(element, parent_ns, &out);
  return out;
}

}  // namespace xc
