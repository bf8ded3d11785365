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

namespace {

bool IsXmlSpace(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

}  // namespace

std::string SetRootAttribute(absl::string_view xml, absl::string_view name,
                             absl::string_view value) {
  const std::string escaped = XmlEscapeAttribute(value);
  size_t i = xml.find('<');
  if (i == absl::string_view::npos) return std::string(xml);
  ++i;
  while (i < xml.size() && !IsXmlSpace(xml[i]) && xml[i] != '>' && xml[i] != '/') ++i;
  const size_t insert_at = i;
  // Look for the attribute among the root's: name, '=', a quoted value.
  while (i < xml.size()) {
    while (i < xml.size() && IsXmlSpace(xml[i])) ++i;
    if (i >= xml.size() || xml[i] == '>' || xml[i] == '/') break;
    const size_t name_start = i;
    while (i < xml.size() && xml[i] != '=' && !IsXmlSpace(xml[i]) && xml[i] != '>') ++i;
    const absl::string_view attr = xml.substr(name_start, i - name_start);
    while (i < xml.size() && (IsXmlSpace(xml[i]) || xml[i] == '=')) ++i;
    if (i >= xml.size() || (xml[i] != '\'' && xml[i] != '"')) break;
    const char quote = xml[i];
    const size_t value_start = i + 1;
    const size_t value_end = xml.find(quote, value_start);
    if (value_end == absl::string_view::npos) break;
    if (attr == name) {
      std::string out(xml.data(), value_start);
      out.back() = '\'';
      out.append(escaped);
      out.push_back('\'');
      out.append(xml.data() + value_end + 1, xml.size() - value_end - 1);
      return out;
    }
    i = value_end + 1;
  }
  std::string out;
  out.reserve(xml.size() + name.size() + escaped.size() + 4);
  out.append(xml.data(), insert_at);
  out.push_back(' ');
  out.append(name.data(), name.size());
  out.append("='");
  out.append(escaped);
  out.push_back('\'');
  out.append(xml.data() + insert_at, xml.size() - insert_at);
  return out;
}

}  // namespace xc
