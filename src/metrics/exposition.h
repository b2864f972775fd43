#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "metrics/histogram.h"

namespace tau::metrics {

using Labels = std::vector<std::pair<std::string_view, std::string_view>>;

// Writes metrics in the Prometheus text exposition format (version 0.0.4). Each family is
// announced once with its HELP and TYPE lines, then its samples follow.
class Exposition {
 public:
  static constexpr std::string_view kContentType = "text/plain; version=0.0.4; charset=utf-8";

  // `type`: "counter", "gauge" or "histogram". Counter names end in `_total` by convention.
  void family(std::string_view name, std::string_view type, std::string_view help);
  void sample(std::string_view name, const Labels& labels, double value);
  // The `_bucket` (with `le`), `_sum` and `_count` samples of one histogram series.
  void histogram(std::string_view name, const Labels& labels, const HistogramSnapshot& snapshot);

  const std::string& text() const { return text_; }

 private:
  void write_labels(const Labels& labels, std::string_view le = {});

  std::string text_;
};

}  // namespace tau::metrics
