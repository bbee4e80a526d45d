--- spec/support/shards.lua N: the spec files cut into N lists of about equal
-- time, one a line, for `make test` to run at once. Most of a spec's time is
-- spent waiting on other processes (the runner, the sandbox, nginx), so two
-- cores run several lists in less time than one. The slow files are placed
-- first, by the seconds they take (MARKETO_TEST_TIMES=1 measures them); the
-- rest count one second each.
local n = assert(tonumber(arg[1]), "usage: shards.lua N")

local SLOW = {
    ["spec/pipeline_changed_spec.lua"] = 37, ["spec/openresty_spec.lua"] = 17,
    ["spec/pipeline_resume_spec.lua"] = 16, ["spec/pipeline_plan_kill_spec.lua"] = 14,
    ["spec/openresty_workers_spec.lua"] = 28,
    ["spec/plan_spec.lua"] = 6, ["spec/pipeline_trust_spec.lua"] = 5,
    ["spec/sandbox_scale_spec.lua"] = 4, ["spec/sandbox_limits_spec.lua"] = 4,
    ["spec/pipeline_keys_spec.lua"] = 4, ["spec/sandbox_http_spec.lua"] = 4,
}

local files = {}
local ls = assert(io.popen("ls spec/*_spec.lua"))
for path in ls:lines() do files[#files + 1] = path end
ls:close()
table.sort(files, function(a, b)
    local wa, wb = SLOW[a] or 1, SLOW[b] or 1
    if wa ~= wb then return wa > wb end
    return a < b
end)

local shards, load = {}, {}
for k = 1, n do shards[k], load[k] = {}, 0 end
for _, path in ipairs(files) do
    local least = 1
    for k = 2, n do
        if load[k] < load[least] then least = k end
    end
    shards[least][#shards[least] + 1] = path
    load[least] = load[least] + (SLOW[path] or 1)
end
for k = 1, n do print(table.concat(shards[k], " ")) end
