-- wrk script for an open loop in plain wrk 4 (wrk2's method): request n is due at
-- start + n / RATE, whatever happened to the others. wrk asks delay() before every request on
-- a connection, the first included; here delay() hands the connection the next due time and
-- holds it until then. A request that leaves late, because every connection was waiting on
-- the server, is timed from when it was due: waiting for the server is never hidden
-- (no coordinated omission), and how late requests left is reported beside the latencies.
-- RATE 0 makes it a closed loop (no delay; each request due when it leaves).
--
-- Requests are matched to their answers by X-Request-ID, which the service echoes. Due times
-- are handed out in order to the requests as they leave; timers firing in the same pass of
-- wrk's event loop may leave in another order, which swaps due times among requests that
-- all leave at once (an error bounded by wrk's own lag, reported as send lag).
--
--   wrk -t1 -c512 -d60s -s bench/wrk_open.lua URL -- BODY_FILE OUT.json RATE [API_KEY]
local lib = dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "") .. "wrk_lib.lua")
local now_us = lib.now_us

-- Main state: one handle per wrk thread (run it with -t1: the rate is per thread).
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

-- Thread state.
latencies, lags, statuses = {}, {}, {}
local body, headers, interval_us = nil, nil, 0
local start_us, claimed = nil, 0
local due_queue, due_head, due_tail = {}, 1, 0
local pending, counter = {}, 0

function init(args)
  body = lib.read_file(args[1])
  out_path = args[2]
  local rate = tonumber(args[3]) or 0
  interval_us = rate > 0 and 1000000 / rate or 0
  headers = { ["Content-Type"] = "application/json" }
  if args[4] and #args[4] > 0 then
    headers["X-API-Key"] = args[4]
  end
end

function delay()
  if interval_us == 0 then
    return 0
  end
  local now = now_us()
  start_us = start_us or now
  local due = start_us + claimed * interval_us
  claimed = claimed + 1
  due_tail = due_tail + 1
  due_queue[due_tail] = due
  -- Whole milliseconds, rounded up: a request may leave late (and is timed from its due
  -- time, so that costs it), never early.
  return math.max(0, math.ceil((due - now) / 1000))
end

function request()
  local now = now_us()
  local due = now
  if due_head <= due_tail then
    due = due_queue[due_head]
    due_queue[due_head] = nil
    due_head = due_head + 1
  end
  lags[#lags + 1] = now - due
  counter = counter + 1
  local id = "open-" .. counter
  pending[id] = due
  headers["X-Request-ID"] = id
  return wrk.format("POST", "/classify", headers, body)
end

function response(status, hdrs, resp_body)
  local t1, due = lib.settle(status, hdrs, pending, statuses)
  if due and status == 200 then
    latencies[#latencies + 1] = t1 - due
  end
end

local function numbers(t)
  local parts = {}
  for i = 1, #t do
    parts[i] = string.format("%.1f", t[i])
  end
  return "[" .. table.concat(parts, ",") .. "]"
end

function done(summary, latency, requests)
  local chunks = {}
  local path = nil
  for _, thread in ipairs(threads) do
    path = path or thread:get("out_path")
    local counts = {}
    for k, v in pairs(thread:get("statuses")) do
      counts[#counts + 1] = string.format("%q: %d", k, v)
    end
    chunks[#chunks + 1] = string.format(
      '{"latencies_us": %s, "send_lags_us": %s, "statuses": {%s}}',
      numbers(thread:get("latencies")),
      numbers(thread:get("lags")),
      table.concat(counts, ", ")
    )
  end
  lib.write_report(path, summary, "threads", "[" .. table.concat(chunks, ", ") .. "]")
end
