#pragma once

#include <boost/beast/http/message.hpp>
#include <string>

namespace tau::http {

// A response header as the bytes Beast's serializer writes for it (status line, each field as
// stored, in order, and the empty line), appended to `out`. Beast's serializer walks the header
// through layers of buffer views, which cost more CPU than a small answer itself; this writes
// the same bytes in one pass. The caller prepares the header first (Content-Length,
// Connection), as for Beast's serializer.
void render_response_header(const boost::beast::http::response_header<>& header, std::string& out);

}  // namespace tau::http
