-- tests/deploy/load.lua: wrk script of tests/deploy/netns.sh.
-- Paced load (each connection waits WRK_DELAY_MS between requests), so the
-- p99 measures the service and not a saturated 2-core machine's queue.
-- Every response is checked: a status outside 2xx, or a 2xx body that is
-- shorter than WRK_MIN_BYTES or does not end the JSON document, counts. wrk
-- itself counts a body cut short by a closed connection as a read error.
-- done() prints one line, EVLOAD key=value ..., that netns.sh parses.
local delay_ms = tonumber(os.getenv("WRK_DELAY_MS") or "5")
local min_bytes = tonumber(os.getenv("WRK_MIN_BYTES") or "2")
local threads = {}

function setup(thread)
	table.insert(threads, thread)
end

function init(args)
	responses, non2xx, truncated, bytes, min_seen, max_seen = 0, 0, 0, 0, -1, 0
	s4xx, s502, s503, s504, s5xx = 0, 0, 0, 0, 0
end

function delay()
	return delay_ms
end

function response(status, headers, body)
	responses = responses + 1
	if status < 200 or status > 299 then
		non2xx = non2xx + 1
		if status == 502 then s502 = s502 + 1
		elseif status == 503 then s503 = s503 + 1
		elseif status == 504 then s504 = s504 + 1
		elseif status >= 500 then s5xx = s5xx + 1
		else s4xx = s4xx + 1 end
		return
	end
	local n = #body
	bytes = bytes + n
	if min_seen < 0 or n < min_seen then min_seen = n end
	if n > max_seen then max_seen = n end
	local last = body:sub(-1)
	if n < min_bytes or (last ~= "}" and last ~= "]") then
		truncated = truncated + 1
	end
end

function done(summary, latency, requests)
	local t = {responses = 0, non2xx = 0, truncated = 0, bytes = 0, min = -1, max = 0}
	local by = {s4xx = 0, s502 = 0, s503 = 0, s504 = 0, s5xx = 0}
	for _, th in ipairs(threads) do
		t.responses = t.responses + th:get("responses")
		t.non2xx = t.non2xx + th:get("non2xx")
		t.truncated = t.truncated + th:get("truncated")
		t.bytes = t.bytes + th:get("bytes")
		local mn = th:get("min_seen")
		if mn >= 0 and (t.min < 0 or mn < t.min) then t.min = mn end
		if th:get("max_seen") > t.max then t.max = th:get("max_seen") end
		for k, v in pairs(by) do by[k] = v + th:get(k) end
	end
	local e = summary.errors
	io.write(string.format("EVLOAD requests=%d responses=%d non2xx=%d truncated=%d " ..
		"sockerr=%d connect=%d read=%d write=%d timeout=%d body_min=%d body_max=%d " ..
		"bytes=%d p50_us=%d p99_us=%d max_us=%d seconds=%.1f " ..
		"non2xx_4xx=%d non2xx_502=%d non2xx_503=%d non2xx_504=%d non2xx_5xx_other=%d\n",
		summary.requests, t.responses, t.non2xx, t.truncated,
		e.connect + e.read + e.write + e.timeout, e.connect, e.read, e.write, e.timeout,
		t.min, t.max, t.bytes, latency:percentile(50), latency:percentile(99), latency.max,
		summary.duration / 1e6, by.s4xx, by.s502, by.s503, by.s504, by.s5xx))
end
