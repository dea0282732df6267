-- wrk script for a flood of POST /classify from one API key: the same request, sent again as
-- soon as each answer arrives on every connection. It keeps no per-request state (a flood of
-- refusals runs at thousands a second); done() writes the status counts as JSON.
--
--   wrk -t1 -c64 -d20s -s bench/wrk_flood.lua http://127.0.0.1:8000 -- BODY_FILE KEY OUT.json

local lib = dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "") .. "wrk_lib.lua")

-- Main state: one handle per wrk thread, to collect their counts in done().
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

-- Thread state.
statuses = {}
local req = nil

function init(args)
  local body = lib.read_file(args[1])
  out_path = args[3]
  local headers = { ["Content-Type"] = "application/json", ["X-API-Key"] = args[2] }
  -- Built once: every request of the flood is the same bytes.
  req = wrk.format("POST", "/classify", headers, body)
end

function request()
  return req
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, requests)
  local counts = {}
  local path = nil
  for _, thread in ipairs(threads) do
    path = path or thread:get("out_path")
    for status, n in pairs(thread:get("statuses")) do
      counts[status] = (counts[status] or 0) + n
    end
  end
  local parts = {}
  for status, n in pairs(counts) do
    parts[#parts + 1] = string.format('"%d": %d', status, n)
  end
  lib.write_report(path, summary, "statuses", "{" .. table.concat(parts, ", ") .. "}")
end
