#pragma once

#include <memory>

#include "core/xml/xml_stream_parser.h"

namespace xc {

// An XmlStreamParser backed by expat. `handler` must outlive the parser.
std::unique_ptr<XmlStreamParser> NewExpatXmlStreamParser(XmlStreamHandler* handler,
                                                         XmlLimits limits = {});

}  // namespace xc
