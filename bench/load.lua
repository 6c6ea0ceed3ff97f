-- wrk script of `make bench`: one operation of the app (or the mix of all of them) per run.
-- bench/run.py writes the data files and calls:
--   wrk -t T -c C -d Ds -s bench/load.lua URL -- OP DATA_DIR T
-- DATA_DIR holds the credentials (bearer token, staff cookies, board key, days) and the codes to act on,
-- one file per pool: codes that are consumed (check-in, triage) are split between wrk's threads and
-- never reused; status tokens are read round and round.

local next_thread = 0
local threads = {}

function setup(thread)
  thread:set("id", next_thread)
  next_thread = next_thread + 1
  table.insert(threads, thread)
end

local op, dir, nthreads
local config = {}
local pools = {}
local counter = 0
-- Each run its own phone numbers (a phone holds at most a few live bookings), so runs can repeat on one database.
local phone_base = (os.time() % 1000) * 10000
local bad = {}

local function read_lines(path, share)
  local out = {}
  local i = 0
  for line in io.lines(path) do
    if not share or i % nthreads == id then
      out[#out + 1] = line
    end
    i = i + 1
  end
  return {items = out, at = 0}
end

local function take(name)
  local pool = pools[name]
  pool.at = pool.at + 1
  if pool.at > #pool.items then
    pool.at = 1 -- a consumed pool ran dry: the repeats answer 409 and show as errors
  end
  return pool.items[pool.at]
end

local EPI = '"epi":{"mid_high_risk_area_14d":false,"contact_case_14d":false,'
  .. '"contact_febrile_from_case_community_14d":false,"cluster_14d":false}'

-- Pre-screen answers of a morning: mostly general, chronic refills, some fever.
local PRESCREEN = {
  '{"age_years":41,"sex":"M","symptoms":["headache"],' .. EPI .. '}',
  '{"age_years":33,"sex":"F","symptoms":["back_pain"],' .. EPI .. '}',
  '{"age_years":68,"sex":"F","symptoms":[],"chronic_conditions":["hypertension"],'
    .. '"needs":["prescription_refill"],' .. EPI .. '}',
  '{"age_years":29,"sex":"M","temperature_c":38.2,"symptoms":["fever","cough"],' .. EPI .. '}',
  '{"age_years":57,"sex":"M","symptoms":["eye_irritation"],' .. EPI .. '}',
}

-- On-site measurements: normal, febrile, urgent.
local TRIAGE = {
  '{"temperature_c":36.7,"heart_rate":78,"respiratory_rate":16,"sbp":126,"spo2":98,"avpu":"A","symptoms":[],'
    .. EPI .. '}',
  '{"temperature_c":38.4,"heart_rate":96,"respiratory_rate":20,"sbp":118,"spo2":97,"avpu":"A",'
    .. '"symptoms":["fever","dry_cough"],' .. EPI .. '}',
  '{"temperature_c":36.9,"heart_rate":84,"respiratory_rate":18,"sbp":135,"spo2":98,"avpu":"A",'
    .. '"symptoms":["limb_injury"],"pain_nrs":4,' .. EPI .. '}',
  '{"temperature_c":36.6,"heart_rate":112,"respiratory_rate":24,"sbp":150,"spo2":95,"avpu":"A",'
    .. '"symptoms":["chest_pain"],"pain_nrs":7,' .. EPI .. '}',
}

local JSON = "application/json"

local builders = {}

builders.floor = function()
  return wrk.format("GET", "/healthz")
end

builders.prescreen_submit = function()
  counter = counter + 1
  local n = id * 10000000 + (phone_base + counter) % 10000000
  local body = '{"name":"王小明","phone":"139' .. string.format("%08d", n % 100000000)
    .. '","consent":true,"preferred_day":"' .. config.booking_day .. '","assessment":'
    .. PRESCREEN[counter % #PRESCREEN + 1] .. '}'
  -- Patients on their own phones: each from its own address, behind the hospital's proxy.
  local ip = string.format("10.%d.%d.%d", id + 1, math.floor(counter / 250) % 250, counter % 250 + 1)
  return wrk.format("POST", "/api/v1/prescreenings",
    {["Content-Type"] = JSON, ["X-Forwarded-For"] = ip}, body)
end

builders.status_read = function()
  return wrk.format("GET", "/prescreen/s/" .. take("tokens"))
end

builders.check_in = function()
  return wrk.format("POST", "/api/v1/encounters/" .. take("check_in") .. "/check-in",
    {["Authorization"] = "Bearer " .. config.bearer, ["Content-Type"] = JSON}, "{}")
end

builders.triage = function()
  counter = counter + 1
  return wrk.format("POST", "/api/v1/encounters/" .. take("triage") .. "/triage",
    {["Authorization"] = "Bearer " .. config.bearer, ["Content-Type"] = JSON}, TRIAGE[counter % #TRIAGE + 1])
end

builders.queue_read = function()
  return wrk.format("GET", "/queues/general/partial", {["Cookie"] = config.nurse_cookie})
end

builders.board = function()
  return wrk.format("GET", "/board/outpatient/partial?key=" .. config.board_key)
end

builders.dashboard = function()
  return wrk.format("GET", "/supervisor/live", {["Cookie"] = config.supervisor_cookie})
end

builders.weekly_report = function()
  return wrk.format("GET", "/supervisor/reports/weekly?week=" .. config.week, {["Cookie"] = config.supervisor_cookie})
end

-- The morning peak, per 1000 requests: patients reading their status and pre-screening, the entrance
-- checking in and triaging, clinic screens and boards polling, supervisors now and then.
local MIX = {
  {"status_read", 350}, {"prescreen_submit", 150}, {"check_in", 120}, {"triage", 120},
  {"queue_read", 150}, {"board", 80}, {"dashboard", 29}, {"weekly_report", 1},
}
local mix_table = {}
local build

builders.mix = function()
  counter = counter + 1
  return builders[mix_table[counter % #mix_table + 1]]()
end

function init(args)
  op, dir, nthreads = args[1], args[2], tonumber(args[3])
  for line in io.lines(dir .. "/config") do
    local key, value = line:match("^(%S+)%s+(.*)$")
    config[key] = value
  end
  if op == "check_in" or op == "mix" then
    pools.check_in = read_lines(dir .. "/" .. (op == "mix" and "mix_check_in" or "check_in"), true)
  end
  if op == "triage" or op == "mix" then
    pools.triage = read_lines(dir .. "/" .. (op == "mix" and "mix_triage" or "triage"), true)
  end
  if op == "status_read" or op == "mix" then
    pools.tokens = read_lines(dir .. "/tokens", false)
    pools.tokens.at = id * 997 % #pools.tokens.items
  end
  if op == "mix" then
    -- A deterministic shuffle of the weighted operations, different per thread.
    for _, entry in ipairs(MIX) do
      for _ = 1, entry[2] do mix_table[#mix_table + 1] = entry[1] end
    end
    math.randomseed(42 + id)
    for i = #mix_table, 2, -1 do
      local j = math.random(i)
      mix_table[i], mix_table[j] = mix_table[j], mix_table[i]
    end
  end
  build = builders[op]
end

function request()
  return build()
end

function response(status, headers, body)
  if status >= 400 then
    if next(bad) == nil then -- the first failure of this thread, to tell what went wrong
      io.stderr:write(string.format("%s answered %d: %s\n", op, status, body:sub(1, 300)))
    end
    bad[status] = (bad[status] or 0) + 1
    local parts = {}
    for code, count in pairs(bad) do parts[#parts + 1] = code .. ":" .. count end
    statuses = table.concat(parts, ",")
  end
end

function done(summary, latency, requests)
  local e = summary.errors
  local statuses = {}
  for _, thread in ipairs(threads) do
    local s = thread:get("statuses")
    if s then statuses[#statuses + 1] = s end
  end
  io.write(string.format(
    'BENCH {"requests": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d, "errors": %d, "statuses": "%s"}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.connect + e.read + e.write + e.status + e.timeout, table.concat(statuses, ",")))
end
