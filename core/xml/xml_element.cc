#include "core/xml/xml_element.h"

#include "absl/strings/str_cat.h"

namespace xc {

XmlNode::XmlNode(XmlElement element) : element_(std::make_unique<XmlElement>(std::move(element))) {}

XmlNode::XmlNode(const XmlNode& other)
    : text_(other.text_),
      element_(other.element_ ? std::make_unique<XmlElement>(*other.element_) : nullptr) {}

XmlNode& XmlNode::operator=(const XmlNode& other) {
  if (this != &other) {
    text_ = other.text_;
    element_ = other.element_ ? std::make_unique<XmlElement>(*other.element_) : nullptr;
  }
  return *this;
}

XmlNode::~XmlNode() = default;

const std::string* XmlElement::FindAttribute(absl::string_view name, absl::string_view ns) const {
  for (const XmlAttribute& a : attributes_) {
    if (a.name == name && a.ns == ns) return &a.value;
  }
  return nullptr;
}

std::string XmlElement::Attribute(absl::string_view name) const {
  const std::string* v = FindAttribute(name);
  return v ? *v : std::string();
}

void XmlElement::SetAttribute(absl::string_view name, absl::string_view value,
                              absl::string_view ns) {
  for (XmlAttribute& a : attributes_) {
    if (a.name == name && a.ns == ns) {
      a.value = std::string(value);
      return;
    }
  }
  attributes_.push_back({std::string(name), std::string(value), std::string(ns)});
}

void XmlElement::RemoveAttribute(absl::string_view name) {
  for (auto it = attributes_.begin(); it != attributes_.end(); ++it) {
    if (it->name == name && it->ns.empty()) {
      attributes_.erase(it);
      return;
    }
  }
}

XmlElement& XmlElement::AddChild(XmlElement child) {
  nodes_.emplace_back(std::move(child));
  return nodes_.back().mutable_element();
}

XmlElement& XmlElement::AddChild(std::string name, std::string ns) {
  return AddChild(XmlElement(std::move(name), std::move(ns)));
}

void XmlElement::AddText(absl::string_view text) {
  if (text.empty()) return;
  if (!nodes_.empty() && !nodes_.back().is_element()) {
    absl::StrAppend(&nodes_.back().mutable_text(), text);
  } else {
    nodes_.emplace_back(std::string(text));
  }
}

const XmlElement* XmlElement::FindChild(absl::string_view name, absl::string_view ns) const {
  for (const XmlNode& n : nodes_) {
    if (n.is_element() && n.element().name() == name && (ns.empty() || n.element().ns() == ns)) {
      return &n.element();
    }
  }
  return nullptr;
}

XmlElement* XmlElement::FindMutableChild(absl::string_view name, absl::string_view ns) {
  return const_cast<XmlElement*>(static_cast<const XmlElement*>(this)->FindChild(name, ns));
}

std::vector<const XmlElement*> XmlElement::Children(absl::string_view name,
                                                    absl::string_view ns) const {
  std::vector<const XmlElement*> out;
  for (const XmlNode& n : nodes_) {
    if (!n.is_element()) continue;
    if (!name.empty() && n.element().name() != name) continue;
    if (!ns.empty() && n.element().ns() != ns) continue;
    out.push_back(&n.element());
  }
  return out;
}

size_t XmlElement::ElementCount() const {
  size_t count = 0;
  for (const XmlNode& n : nodes_) count += n.is_element() ? 1 : 0;
  return count;
}

void XmlElement::RemoveChildren(absl::string_view name, absl::string_view ns) {
  std::vector<XmlNode> kept;
  kept.reserve(nodes_.size());
  for (XmlNode& n : nodes_) {
    if (n.is_element() && n.element().name() == name && (ns.empty() || n.element().ns() == ns)) {
      continue;
    }
    kept.push_back(std::move(n));
  }
  nodes_ = std::move(kept);
}

std::string XmlElement::Text() const {
  std::string out;
  for (const XmlNode& n : nodes_) {
    if (!n.is_element()) absl::StrAppend(&out, n.text());
  }
  return out;
}

std::string XmlElement::ChildText(absl::string_view name, absl::string_view ns) const {
  const XmlElement* child = FindChild(name, ns);
  return child ? child->Text() : std::string();
}

bool operator==(const XmlElement& a, const XmlElement& b) {
  if (a.name() != b.name() || a.ns() != b.ns()) return false;
  if (a.attributes().size() != b.attributes().size()) return false;
  for (const XmlAttribute& attr : a.attributes()) {
    const std::string* other = b.FindAttribute(attr.name, attr.ns);
    if (!other || *other != attr.value) return false;
  }
  if (a.nodes().size() != b.nodes().size()) return false;
  for (size_t i = 0; i < a.nodes().size(); ++i) {
    const XmlNode& x = a.nodes()[i];
    const XmlNode& y = b.nodes()[i];
    if (x.is_element() != y.is_element()) return false;
    if (x.is_element() ? x.element() != y.element() : x.text() != y.text()) return false;
  }
  return true;
}

}  // namespace xc
