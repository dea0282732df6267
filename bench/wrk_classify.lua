-- wrk script for POST /classify: cycles through request bodies read from a file (one JSON body
-- per line) and records, per request, the latency (matched through X-Request-ID, which the
-- service echoes), the status code and the service's timing headers. done() writes them as
-- JSON to the output path. wrk's own latency histogram is not used: wrk 4 "corrects" it for
-- coordinated omission by adding synthetic samples, which a closed-loop test does not want.
--
--   wrk -t1 -c32 -d15s -s bench/wrk_classify.lua http://127.0.0.1:8000 -- BODIES OUT.json
local lib = dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "") .. "wrk_lib.lua")
local now_us = lib.now_us

-- Main state: one handle per wrk thread, to collect their tables in done().
local threads = {}

function setup(thread)
  thread:set("tid", #threads)
  table.insert(threads, thread)
end

-- Thread state.
bodies, pending, latencies, statuses = {}, {}, {}, {}
-- The first and the last successful answer's time: the steady state lies between them.
answered = { first = 0, last = 0 }
served = { n = 0, total = 0, queue = 0, tokenize = 0, inference = 0 }
local counter, cursor, prefix = 0, 0, ""

function init(args)
  local f = assert(io.open(args[1], "r"))
  for line in f:lines() do
    if #line > 0 then
      bodies[#bodies + 1] = line
    end
  end
  f:close()
  out_path = args[2]
  prefix = tostring(tid) .. "-"
  cursor = tid * 7919 -- threads start at different bodies
end

function request()
  counter = counter + 1
  cursor = cursor % #bodies + 1
  local id = prefix .. counter
  local headers = { ["Content-Type"] = "application/json", ["X-Request-ID"] = id }
  pending[id] = now_us()
  return wrk.format("POST", "/classify", headers, bodies[cursor])
end

function response(status, headers, body)
  local t1, t0 = lib.settle(status, headers, pending, statuses)
  if status ~= 200 then
    return
  end
  if t0 then
    latencies[#latencies + 1] = t1 - t0
  end
  if answered.first == 0 then
    answered.first = t1
  end
  answered.last = t1
  local total = tonumber(headers["x-total-time"])
  if total then
    served.n = served.n + 1
    served.total = served.total + total
    served.queue = served.queue + (tonumber(headers["x-queue-time"]) or 0)
    served.tokenize = served.tokenize + (tonumber(headers["x-tokenization-time"]) or 0)
    served.inference = served.inference + (tonumber(headers["x-inference-time"]) or 0)
  end
end

local function json_object(t)
  local parts = {}
  for k, v in pairs(t) do
    parts[#parts + 1] = string.format("%q: %.17g", tostring(k), v)
  end
  return "{" .. table.concat(parts, ", ") .. "}"
end

function done(summary, latency, requests)
  local chunks = {}
  local path = nil
  for _, thread in ipairs(threads) do
    path = path or thread:get("out_path")
    local lat = thread:get("latencies")
    local parts = {}
    for i = 1, #lat do
      parts[i] = string.format("%.1f", lat[i])
    end
    chunks[#chunks + 1] = string.format(
      '{"latencies_us": [%s], "statuses": %s, "served_ms": %s, "answered_us": %s}',
      table.concat(parts, ","),
      json_object(thread:get("statuses")),
      json_object(thread:get("served")),
      json_object(thread:get("answered"))
    )
  end
  lib.write_report(path, summary, "threads", "[" .. table.concat(chunks, ", ") .. "]")
end
