-- wrk: one canonical event per POST over keep-alive; ids unique per run, thread and request;
-- customers drawn from C1..C10000 so events update existing profiles.
local threads = {}
function setup(thread)
  table.insert(threads, thread)
  thread:set("tid", #threads)
end
function init(args)
  counter = 0
  nonce = os.getenv("SHOAL_BENCH_NONCE") or tostring(os.time())
  math.randomseed(tid * 7919 + os.time())
end
request = function()
  counter = counter + 1
  local body = string.format(
    '{"event_id":"s%s-%d-%d","type":"order","timestamp":1709648000,"customer_id":"C%d","total":%d}',
    nonce, tid, counter, math.random(1, 10000), math.random(1, 50))
  return wrk.format("POST", "/v1/events", {["Content-Type"] = "application/json"}, body)
end
