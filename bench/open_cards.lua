-- wrk script for bench/open_cards.py: every request is one open card's poll, cycling
-- through the sessions in OPEN_CARDS_FILE (lines "path<TAB>cookie<TAB>etag"), each with
-- its own session cookie and If-None-Match, as card.js sends them.
local sessions = {}
for line in io.lines(os.getenv("OPEN_CARDS_FILE")) do
  local path, cookie, etag = line:match("^([^\t]+)\t([^\t]+)\t(.+)$")
  table.insert(sessions, { path = path, headers = { Cookie = cookie, ["If-None-Match"] = etag } })
end
local threads, next_index = {}, 0

function setup(thread)
  thread:set("offset", #threads * 997)
  table.insert(threads, thread)
end

function request()
  next_index = next_index + 1
  local s = sessions[(next_index + (offset or 0)) % #sessions + 1]
  return wrk.format("GET", s.path, s.headers)
end

not_modified = 0
function response(status)
  if status == 304 then not_modified = not_modified + 1 end
end

function done(summary, latency)
  local ok = 0
  for _, thread in ipairs(threads) do ok = ok + (thread:get("not_modified") or 0) end
  io.write(string.format(
    'WRK_JSON {"requests":%d,"duration_s":%.3f,"rps":%.1f,"p50_ms":%.2f,"p99_ms":%.2f,'
      .. '"not_modified":%d,"errors_status":%d}\n',
    summary.requests, summary.duration / 1e6, summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1e3, latency:percentile(99) / 1e3, ok, summary.errors.status))
end
