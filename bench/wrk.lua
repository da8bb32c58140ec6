-- wrk script for bench/bench.py: prints one JSON line with the results.
--
-- Every status >= 400 is counted by wrk itself (errors_status). With WRK_EXPECT set, each
-- response's status is also checked against it (a redirect to the login page must not
-- pass for a fast card page) -- but a Lua call per response costs wrk enough that a
-- hello-world app would measure wrk instead, so bench.py sets it only for the earn mode
-- and checks GET pages before and after each run instead.
-- WRK_MODE     "get" (default: the URL and -H headers as given) or "earn": each request
--              is a POST /api/v1/transactions earn with a unique Idempotency-Key, for the
--              cards in WRK_CARDS (space-separated), with WRK_TOKEN (a staff access
--              token), WRK_CURRENCY, WRK_AMOUNT and WRK_RUN (a prefix for the keys).

local threads = {}

function setup(thread)
  thread:set("thread_id", #threads + 1)
  table.insert(threads, thread)
end

local expect = tonumber(os.getenv("WRK_EXPECT") or "")
unexpected = 0
first_unexpected = ""

if expect then
  function response(status, headers, body)
    if status ~= expect then
      unexpected = unexpected + 1
      if first_unexpected == "" then
        first_unexpected = tostring(status) .. " " .. string.sub(body or "", 1, 120)
      end
    end
  end
end

if os.getenv("WRK_MODE") == "earn" then
  local cards = {}
  for card in string.gmatch(os.getenv("WRK_CARDS") or "", "%d+") do
    table.insert(cards, card)
  end
  local run = os.getenv("WRK_RUN") or "bench"
  local headers = {
    ["Authorization"] = "Bearer " .. (os.getenv("WRK_TOKEN") or ""),
    ["Content-Type"] = "application/json",
  }
  local body = '{"kind":"earn","card":"%s","amount":"' .. (os.getenv("WRK_AMOUNT") or "1.00")
    .. '","currency":"' .. (os.getenv("WRK_CURRENCY") or "USD") .. '"}'
  local sent = 0

  function request()
    sent = sent + 1
    headers["Idempotency-Key"] = string.format("%s-%d-%d", run, thread_id, sent)
    local card = cards[(sent + thread_id) % #cards + 1]
    return wrk.format("POST", "/api/v1/transactions", headers, string.format(body, card))
  end
end

function done(summary, latency, requests)
  local bad, first = 0, ""
  for _, thread in ipairs(threads) do
    bad = bad + (thread:get("unexpected") or 0)
    if first == "" then first = thread:get("first_unexpected") or "" end
  end
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests":%d,"duration_s":%.3f,"rps":%.1f,"p50_ms":%.2f,"p90_ms":%.2f,'
      .. '"p99_ms":%.2f,"p999_ms":%.2f,"max_ms":%.2f,"mean_ms":%.2f,"errors_connect":%d,'
      .. '"errors_read":%d,"errors_write":%d,"errors_timeout":%d,"errors_status":%d,'
      .. '"unexpected_status":%d,"first_unexpected":"%s"}\n',
    summary.requests, summary.duration / 1e6, summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1e3, latency:percentile(90) / 1e3, latency:percentile(99) / 1e3,
    latency:percentile(99.9) / 1e3, latency.max / 1e3, latency.mean / 1e3,
    e.connect, e.read, e.write, e.timeout, e.status, bad,
    (string.gsub(first, '[%c"\\]', " "))))
end
