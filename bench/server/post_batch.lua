-- wrk: batches of 100 canonical orders per POST over keep-alive. Every order is stamped with
-- one fixed 2024 time, or, with SHOAL_BENCH_STAMP=now, with the current time: then each order
-- extends a customer's history at its newest end, the first of the day on a new order day, as
-- live traffic does.
local threads = {}
function setup(thread)
  table.insert(threads, thread)
  thread:set("tid", #threads)
end
function init(args)
  counter = 0
  nonce = os.getenv("SHOAL_BENCH_NONCE") or tostring(os.time())
  stamp_now = os.getenv("SHOAL_BENCH_STAMP") == "now"
  id_prefix = stamp_now and "n" or "b"
  math.randomseed(tid * 104729 + os.time())
end
request = function()
  local parts = {}
  local stamp = stamp_now and os.time() or 1709648000
  for i = 1, 100 do
    counter = counter + 1
    parts[i] = string.format(
      '{"event_id":"%s%s-%d-%d","type":"order","timestamp":%d,"customer_id":"C%d","total":%d}',
      id_prefix, nonce, tid, counter, stamp, math.random(1, 10000), math.random(1, 50))
  end
  return wrk.format("POST", "/v1/events", {["Content-Type"] = "application/json"},
                    "[" .. table.concat(parts, ",") .. "]")
end
