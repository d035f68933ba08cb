-- wrk script: random byte ranges over a set of same-sized objects.
-- Environment: RANGE_SIZE (bytes), OBJ_SIZE (bytes), OBJ_COUNT, OBJ_PREFIX
-- (default /v1/objects/obj-), COLD=1 to add a unique query (a new cache key
-- for every request: every request is a miss at a cache).
local size = tonumber(os.getenv("RANGE_SIZE") or "1048576")
local objsize = tonumber(os.getenv("OBJ_SIZE") or "67108864")
local count = tonumber(os.getenv("OBJ_COUNT") or "4")
local prefix = os.getenv("OBJ_PREFIX") or "/v1/objects/obj-"
local cold = os.getenv("COLD") == "1"
local n = 0
local seed = tonumber(os.getenv("SEED") or "1")

function setup(thread)
  seed = seed + 1
  thread:set("seed", seed)
end

function init(args)
  math.randomseed(seed or 1)
end

function request()
  n = n + 1
  local i = math.random(0, count - 1)
  local off = math.random(0, objsize - size)
  local path = prefix .. i .. ".bin"
  if cold then
    path = path .. "?c=" .. seed .. "-" .. n
  end
  return wrk.format("GET", path, { ["Range"] = "bytes=" .. off .. "-" .. (off + size - 1) })
end

function response(status, headers, body)
  if status ~= 206 then
    wrk.thread:stop()
  end
end
