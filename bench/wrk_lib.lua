-- Helpers shared by the wrk scripts of bench/, loaded by each with dofile from beside it:
--   local lib = dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "") .. "wrk_lib.lua")
local lib = {}

local ffi = require("ffi")
ffi.cdef([[
typedef struct { long tv_sec; long tv_nsec; } wrk_lib_timespec;
int clock_gettime(int clk_id, wrk_lib_timespec *tp);
]])
local ts = ffi.new("wrk_lib_timespec")
local CLOCK_MONOTONIC = 1

-- Microseconds on the monotonic clock (wrk.time is not exposed to scripts in wrk 4).
function lib.now_us()
  ffi.C.clock_gettime(CLOCK_MONOTONIC, ts)
  return tonumber(ts.tv_sec) * 1000000 + tonumber(ts.tv_nsec) / 1000
end

function lib.read_file(path)
  local f = assert(io.open(path, "r"))
  local text = f:read("*a")
  f:close()
  return text
end

-- One answer's bookkeeping: count its status, and take its request's start stamp out of
-- ``pending`` (keyed by the X-Request-ID the service echoes). Answers (now, start or nil).
function lib.settle(status, headers, pending, statuses)
  local now = lib.now_us()
  local key = tostring(status)
  statuses[key] = (statuses[key] or 0) + 1
  local id = headers["x-request-id"] or headers["X-Request-ID"]
  local start = id and pending[id]
  if start then
    pending[id] = nil
  end
  return now, start
end

-- The report every script writes from done(): wrk's own totals and socket errors, then its
-- fields (``key`` = already-encoded JSON ``value``). wrk's "status" error (any answer of 400
-- or more) is left out: the scripts count statuses themselves, and a 429 is not a socket error.
function lib.write_report(path, summary, key, value)
  local e = summary.errors
  local f = assert(io.open(path, "w"))
  f:write(string.format(
    '{"duration_us": %d, "requests": %d, "errors": {"connect": %d, "read": %d, "write": %d, '
      .. '"timeout": %d}, "%s": %s}\n',
    summary.duration, summary.requests, e.connect, e.read, e.write, e.timeout, key, value
  ))
  f:close()
end

return lib
