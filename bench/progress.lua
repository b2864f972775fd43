-- wrk script for bench/run-append-wrk.sh: every request appends one progress event to the
-- session in wrk's URL path; done() prints one JSON line with the figures the script reports.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"message":"' .. string.rep("x", tonumber(os.getenv("MESSAGE_BYTES") or "100")) .. '"}'

function done(summary, latency, requests)
  local seconds = summary.duration / 1e6
  local failed = summary.errors.status + summary.errors.connect + summary.errors.read +
                 summary.errors.write + summary.errors.timeout
  io.write(string.format(
    '{"appends_per_second":%.1f,"requests":%d,"errors":%d,"latency_p50_us":%d,' ..
    '"latency_p99_us":%d,"latency_max_us":%d}\n',
    (summary.requests - summary.errors.status) / seconds, summary.requests, failed,
    latency:percentile(50), latency:percentile(99), latency.max))
end
