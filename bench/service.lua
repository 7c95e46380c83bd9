-- wrk script for bench/service.py: POST one birthday per request when BENCH_METHOD=POST,
-- else GET with the Accept header of BENCH_ACCEPT (default: none, i.e. text/plain).
local method = os.getenv("BENCH_METHOD") or "GET"
wrk.method = method
if method == "POST" then
  wrk.headers["Content-Type"] = "application/json"
  wrk.body = '{"name":"Albert Einstein","birthday":"14.03.1879"}'
end
local accept = os.getenv("BENCH_ACCEPT")
if accept and accept ~= "" then
  wrk.headers["Accept"] = accept
end

-- Percentiles every 0.1 % so that bench/service.py can merge the distributions of the three
-- wrk processes (one per instance): requests/s add up, percentiles do not.
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH-JSON {"requests":%d,"duration_us":%d,"errors":{"connect":%d,"read":%d,' ..
    '"write":%d,"status":%d,"timeout":%d},"percentiles":[',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout))
  for p = 1, 999 do
    io.write(string.format("[%g,%d],", p / 10, latency:percentile(p / 10)))
  end
  io.write(string.format('[99.99,%d],[100,%d]]}\n', latency:percentile(99.99), latency.max))
end
