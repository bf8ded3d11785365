#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/string_view.h"

namespace xc {

inline constexpr absl::string_view kNsClient = "jabber:client";
inline constexpr absl::string_view kNsStream = "http://etherx.jabber.org/streams";
inline constexpr absl::string_view kNsXml = "http://www.w3.org/XML/1998/namespace";

class XmlElement;

// A child of an element: either character data or an element.
class XmlNode {
 public:
  explicit XmlNode(std::string text) : text_(std::move(text)) {}
  explicit XmlNode(XmlElement element);
  XmlNode(const XmlNode& other);
  XmlNode& operator=(const XmlNode& other);
  XmlNode(XmlNode&&) = default;
  XmlNode& operator=(XmlNode&&) = default;
  ~XmlNode();

  bool is_element() const { return element_ != nullptr; }
  const std::string& text() const { return text_; }
  const XmlElement& element() const { return *element_; }
  XmlElement& mutable_element() { return *element_; }
  std::string& mutable_text() { return text_; }

 private:
  std::string text_;
  std::unique_ptr<XmlElement> element_;
};

// An attribute. `name` is the local name, or "xml:lang"-style for the xml namespace; `ns` is
// set only for attributes in another namespace (rare; kept so they survive a round trip).
struct XmlAttribute {
  std::string name;
  std::string value;
  std::string ns;
};

// A namespace-aware XML element tree: plain data, copyable, no parser state.
class XmlElement {
 public:
  XmlElement() = default;
  XmlElement(std::string name, std::string ns) : name_(std::move(name)), ns_(std::move(ns)) {}

  const std::string& name() const { return name_; }
  const std::string& ns() const { return ns_; }
  void set_name(std::string name) { name_ = std::move(name); }
  void set_ns(std::string ns) { ns_ = std::move(ns); }
  bool Is(absl::string_view name, absl::string_view ns) const { return name_ == name && ns_ == ns; }

  // Attributes (no namespace unless given).
  const std::vector<XmlAttribute>& attributes() const { return attributes_; }
  const std::string* FindAttribute(absl::string_view name, absl::string_view ns = "") const;
  std::string Attribute(absl::string_view name) const;  // "" when absent
  bool HasAttribute(absl::string_view name) const { return FindAttribute(name) != nullptr; }
  void SetAttribute(absl::string_view name, absl::string_view value, absl::string_view ns = "");
  void RemoveAttribute(absl::string_view name);

  // Children.
  const std::vector<XmlNode>& nodes() const { return nodes_; }
  std::vector<XmlNode>& mutable_nodes() { return nodes_; }
  XmlElement& AddChild(XmlElement child);
  XmlElement& AddChild(std::string name, std::string ns);
  void AddText(absl::string_view text);
  // First child element with this name and namespace (ns "" matches any), or nullptr.
  const XmlElement* FindChild(absl::string_view name, absl::string_view ns = "") const;
  XmlElement* FindMutableChild(absl::string_view name, absl::string_view ns = "");
  std::vector<const XmlElement*> Children(absl::string_view name = "",
                                          absl::string_view ns = "") const;
  size_t ElementCount() const;
  void RemoveChildren(absl::string_view name, absl::string_view ns);
  // Concatenated character data of direct text children.
  std::string Text() const;
  std::string ChildText(absl::string_view name, absl::string_view ns = "") const;

 private:
  std::string name_;
  std::string ns_;
  std::vector<XmlAttribute> attributes_;
  std::vector<XmlNode> nodes_;
};

bool operator==(const XmlElement& a, const XmlElement& b);
inline bool operator!=(const XmlElement& a, const XmlElement& b) { return !(a == b); }

}  // namespace xc
