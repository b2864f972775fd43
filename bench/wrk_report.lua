-- wrk report shared by the benchmark scripts: done() prints one JSON line with the figures they
-- tabulate. Used alone (`wrk -s bench/wrk_report.lua`) for GETs, or loaded by a request script.
-- Requests answered with a status other than 2xx/3xx count as errors, not as requests/s.
function done(summary, latency, requests)
  local seconds = summary.duration / 1e6
  local failed = summary.errors.status + summary.errors.connect + summary.errors.read +
                 summary.errors.write + summary.errors.timeout
  io.write(string.format(
    '{"requests_per_second":%.1f,"requests":%d,"errors":%d,"latency_p50_us":%d,' ..
    '"latency_p99_us":%d,"latency_max_us":%d}\n',
    (summary.requests - summary.errors.status) / seconds, summary.requests, failed,
    latency:percentile(50), latency:percentile(99), latency.max))
end
