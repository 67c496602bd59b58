-- wrk script for bench/bench_bot.py: each thread cycles through its own file of pre-encrypted
-- WeChat callbacks (one per line: "QUERY<TAB>BODY"), written by the bench. Usage:
--   wrk -t2 -c50 -d30s -s bench/wrk/bot.lua http://127.0.0.1:PORT -- /wechat/brand DIR
-- At the end it prints one JSON line: requests, errors, latency percentiles, and how far each
-- thread got in its file (so the bench knows which messages were sent).

local counter = 0
local threads = {}

function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
  table.insert(threads, thread)
end

local reqs = {}
position = 0
wrapped = 0

function init(args)
  local path, dir = args[1], args[2]
  local headers = { ["Content-Type"] = "text/xml" }
  for line in io.lines(dir .. "/requests_" .. id .. ".txt") do
    local query, body = line:match("^([^\t]*)\t(.*)$")
    reqs[#reqs + 1] = wrk.format("POST", path .. "?" .. query, headers, body)
  end
end

function request()
  position = position + 1
  if position > #reqs then
    position = 1
    wrapped = wrapped + 1
  end
  return reqs[position]
end

function done(summary, latency, requests)
  local per_thread = {}
  for _, t in ipairs(threads) do
    per_thread[#per_thread + 1] = string.format(
      '{"id": %d, "position": %d, "wrapped": %d}', t:get("id"), t:get("position"), t:get("wrapped"))
  end
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests": %d, "duration_us": %d, "connect": %d, "read": %d, "write": %d, ' ..
    '"status": %d, "timeout": %d, "p50_us": %d, "p99_us": %d, "max_us": %d, "threads": [%s]}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99), latency.max, table.concat(per_thread, ", ")))
end
