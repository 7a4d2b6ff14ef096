-- wrk: profile lookups of random customers C1..C10000.
function init(args)
  math.randomseed(os.time() + math.random(1, 1000000))
end
request = function()
  return wrk.format("GET", "/v1/profiles/C" .. math.random(1, 10000))
end
