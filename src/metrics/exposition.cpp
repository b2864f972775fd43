#include "metrics/exposition.h"

#include <charconv>
#include <cmath>

namespace tau::metrics {

namespace {

// Shortest text that reads back as the same double, without an exponent in the range metrics
// usually take (bucket bounds read "0.0001", counts "12345678").
std::string format_value(double value) {
  if (std::isinf(value))
    return value > 0 ? "+Inf" : "-Inf";
  if (std::isnan(value))
    return "NaN";
  const double magnitude = std::fabs(value);
  const auto format = magnitude == 0 || (magnitude >= 1e-6 && magnitude < 1e15)
                          ? std::chars_format::fixed
                          : std::chars_format::general;
  char buffer[64];
  auto* const end = std::to_chars(buffer, buffer + sizeof buffer, value, format).ptr;
  return std::string(buffer, end);
}

// HELP text escapes backslash and newline; label values also escape the double quote.
void append_escaped(std::string& out, std::string_view text, bool escape_quote) {
  for (const char c : text) {
    if (c == '\\')
      out += "\\\\";
    else if (c == '\n')
      out += "\\n";
    else if (c == '"' && escape_quote)
      out += "\\\"";
    else
      out += c;
  }
}

}  // namespace

void Exposition::family(std::string_view name, std::string_view type, std::string_view help) {
  text_.append("# HELP ").append(name).append(" ");
  append_escaped(text_, help, false);
  text_.append("\n# TYPE ").append(name).append(" ").append(type).append("\n");
}

void Exposition::write_labels(const Labels& labels, std::string_view le) {
  if (labels.empty() && le.empty())
    return;
  text_ += '{';
  bool first = true;
  for (const auto& [key, value] : labels) {
    if (!first)
      text_ += ',';
    first = false;
    text_.append(key).append("=\"");
    append_escaped(text_, value, true);
    text_ += '"';
  }
  if (!le.empty()) {
    if (!first)
      text_ += ',';
    text_.append("le=\"").append(le).append("\"");
  }
  text_ += '}';
}

void Exposition::sample(std::string_view name, const Labels& labels, double value) {
  text_.append(name);
  write_labels(labels);
  text_.append(" ").append(format_value(value)).append("\n");
}

void Exposition::histogram(std::string_view name, const Labels& labels,
                           const HistogramSnapshot& snapshot) {
  const std::string bucket = std::string(name) + "_bucket";
  for (std::size_t i = 0; i < snapshot.cumulative.size(); ++i) {
    const std::string le = i < snapshot.upper_bounds.size() ? format_value(snapshot.upper_bounds[i])
                                                            : std::string("+Inf");
    text_.append(bucket);
    write_labels(labels, le);
    text_.append(" ").append(std::to_string(snapshot.cumulative[i])).append("\n");
  }
  sample(std::string(name) + "_sum", labels, snapshot.sum);
  sample(std::string(name) + "_count", labels,
         static_cast<double>(snapshot.cumulative.empty() ? 0 : snapshot.cumulative.back()));
}

}  // namespace tau::metrics
