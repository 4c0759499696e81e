-- wrk script for `make bench` (driven by bench/run.py).
--
--   wrk ... -s bench/tokens.lua URL -- TOKENS_FILE [ORIGINAL_URL]
--
-- TOKENS_FILE empty or "-": no rotation, the Authorization header given with -H is
-- used as is (repeated-token scenario). Otherwise one bearer token per line; every
-- request takes the next one, so a token is seen once per pass over the list and
-- each thread walks its own stride (thread i of n sends tokens i, i+n, i+2n, ...).
--
-- done() prints one line `BENCH_JSON {...}` with requests, duration, errors and
-- latency percentiles (microseconds), which run.py parses: no scraping of wrk's
-- human-readable table.

local tokens = {}
local count = 0
local index = 0
local stride = 1
local rotating = false
local original_url = "http://app.test/orders/1"

local threads = {} -- main state only: the thread objects, to read `wrapped` in done()
local thread_id = 0
wrapped = 0 -- passes over the whole list beyond the first (global: read with thread:get)

function setup(thread)
  thread:set("id", thread_id)
  thread_id = thread_id + 1
  table.insert(threads, thread)
  for _, t in ipairs(threads) do
    t:set("nthreads", thread_id)
  end
end

function init(args)
  local path = args[1]
  if args[2] ~= nil and args[2] ~= "" then
    original_url = args[2]
  end
  wrk.headers["X-Original-URL"] = original_url
  wrk.headers["X-Original-Method"] = "GET"
  if path == nil or path == "" or path == "-" then
    return
  end
  local f = assert(io.open(path, "r"))
  for line in f:lines() do
    if #line > 0 then
      count = count + 1
      tokens[count] = "Bearer " .. line
    end
  end
  f:close()
  assert(count > 0, "no tokens in " .. path)
  rotating = true
  stride = nthreads or 1
  index = id or 0 -- request() adds the stride first: thread i starts at token i + 1
end

function request()
  if not rotating then
    return wrk.request()
  end
  index = index + stride
  if index > count then
    index = index - count
    wrapped = wrapped + 1
  end
  wrk.headers["Authorization"] = tokens[index]
  return wrk.format()
end

function done(summary, latency, requests)
  local wraps = 0
  for _, t in ipairs(threads) do
    wraps = wraps + (t:get("wrapped") or 0)
  end
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"duration_us":%d,"bytes":%d,' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
    '"latency_us":{"p50":%d,"p90":%d,"p99":%d,"p999":%d,"max":%d,"mean":%.1f},' ..
    '"wraps":%d}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9), latency.max, latency.mean, wraps))
end
