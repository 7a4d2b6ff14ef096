-- wrk: batches of 100 canonical events per POST over keep-alive.
local threads = {}
function setup(thread)
  table.insert(threads, thread)
  thread:set("tid", #threads)
end
function init(args)
  counter = 0
  nonce = os.getenv("SHOAL_BENCH_NONCE") or tostring(os.time())
  math.randomseed(tid * 104729 + os.time())
end
request = function()
  local parts = {}
  for i = 1, 100 do
    counter = counter + 1
    parts[i] = string.format(
      '{"event_id":"b%s-%d-%d","type":"order","timestamp":1709648000,"customer_id":"C%d","total":%d}',
      nonce, tid, counter, math.random(1, 10000), math.random(1, 50))
  end
  return wrk.format("POST", "/v1/events", {["Content-Type"] = "application/json"},
                    "[" .. table.concat(parts, ",") .. "]")
end
