#include "gateway/request_metrics.h"

namespace tau::gateway {

RequestMetrics::RequestMetrics(const std::vector<Route>& routes) {
  for (const auto& route : routes)
    series_.emplace_back().route = route;
  series_.emplace_back().route = Route{"ANY", "unmatched"};
}

void RequestMetrics::record(std::size_t series, unsigned status, double seconds) {
  if (status < 100 || status > 599)
    return;
  Series& target = series_.at(series);
  target.by_status_class[status / 100 - 1].fetch_add(1, std::memory_order_relaxed);
  target.duration_seconds.observe(seconds);
}

void RequestMetrics::write(metrics::Exposition& out) const {
  static constexpr std::array<const char*, 5> kClasses = {"1xx", "2xx", "3xx", "4xx", "5xx"};
  out.family("tau_gateway_http_requests_total", "counter",
             "HTTP requests answered, by method, route template and status class.");
  for (const Series& series : series_) {
    for (std::size_t i = 0; i < kClasses.size(); ++i) {
      const auto count = series.by_status_class[i].load(std::memory_order_relaxed);
      if (count == 0)
        continue;
      out.sample("tau_gateway_http_requests_total",
                 {{"method", series.route.method},
                  {"route", series.route.route_template},
                  {"code", kClasses[i]}},
                 static_cast<double>(count));
    }
  }
  out.family("tau_gateway_http_request_duration_seconds", "histogram",
             "Time from a request's header to the end of its answer (for the stream route: the "
             "stream's lifetime), by method and route template.");
  for (const Series& series : series_) {
    // A route never asked for adds nothing but a page of zeros to every scrape.
    const auto snapshot = series.duration_seconds.snapshot();
    if (snapshot.cumulative.back() == 0)
      continue;
    out.histogram("tau_gateway_http_request_duration_seconds",
                  {{"method", series.route.method}, {"route", series.route.route_template}},
                  snapshot);
  }
}

}  // namespace tau::gateway
