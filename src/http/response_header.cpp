#include "http/response_header.h"

namespace tau::http {

void render_response_header(const boost::beast::http::response_header<>& header, std::string& out) {
  // As basic_fields::writer: "HTTP/X.Y ### " and the reason (the one set, or the status's).
  const unsigned version = header.version();
  const unsigned code = header.result_int();
  const char status_line[] = {'H',
                              'T',
                              'T',
                              'P',
                              '/',
                              static_cast<char>('0' + version / 10),
                              '.',
                              static_cast<char>('0' + version % 10),
                              ' ',
                              static_cast<char>('0' + code / 100),
                              static_cast<char>('0' + (code / 10) % 10),
                              static_cast<char>('0' + code % 10),
                              ' '};
  out.append(status_line, sizeof status_line);
  const auto reason = header.reason();
  out.append(reason.data(), reason.size());
  out += "\r\n";
  for (const auto& field : header) {
    const auto name = field.name_string();
    const auto value = field.value();
    out.append(name.data(), name.size());
    out += ": ";
    out.append(value.data(), value.size());
    out += "\r\n";
  }
  out += "\r\n";
}

}  // namespace tau::http
