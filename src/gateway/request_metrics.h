#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <deque>
#include <string>
#include <vector>

#include "metrics/exposition.h"
#include "metrics/histogram.h"

namespace tau::gateway {

// HTTP request counts by status class and durations, one series per route template (never per
// raw path, so ids do not multiply series) plus one for requests that matched no route.
// Recording takes no lock.
class RequestMetrics {
 public:
  struct Route {
    std::string method;
    std::string route_template;
  };
  // Series i is routes[i]; series routes.size() counts the unmatched requests.
  explicit RequestMetrics(const std::vector<Route>& routes);

  std::size_t unmatched() const { return series_.size() - 1; }
  // `status` 0 (the client left before an answer) is not counted.
  void record(std::size_t series, unsigned status, double seconds);
  void write(metrics::Exposition& out) const;

 private:
  struct Series {
    Route route;
    std::array<std::atomic<std::uint64_t>, 5> by_status_class{};  // 1xx .. 5xx
    metrics::Histogram duration_seconds{metrics::Histogram::latency_seconds_bounds()};
  };
  std::deque<Series> series_;  // a deque: atomics cannot move
};

}  // namespace tau::gateway
