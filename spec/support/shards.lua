--- spec/support/shards.lua N: the spec files cut into N lists of about equal
-- time, one a line, for `make test` to run at once. Most of a spec's time is
-- spent waiting on other processes (the runner, the sandbox, nginx), so two
-- cores run several lists in less time than one. The slow files are placed
-- first, by the seconds they take (MARKETO_TEST_TIMES=1 measures them); the
-- rest count one second each.
local n = assert(tonumber(arg[1]), "usage: shards.lua N")

local SLOW = {
    ["spec/openresty_workers_spec.lua"] = 35, ["spec/openresty_spec.lua"] = 30,
    ["spec/pipeline_budget_shared_spec.lua"] = 25, ["spec/pipeline_resume_spec.lua"] = 21,
    ["spec/pipeline_plan_kill_spec.lua"] = 20, ["spec/readme_spec.lua"] = 13,
    ["spec/csv_plan_parallel_spec.lua"] = 9, ["spec/pipeline_trust_spec.lua"] = 8,
    ["spec/sandbox_scale_spec.lua"] = 8, ["spec/csv_keys_fast_spec.lua"] = 8,
    ["spec/cli_flags_spec.lua"] = 7, ["spec/plan_spec.lua"] = 7,
    ["spec/pipeline_changed_spec.lua"] = 6, ["spec/pipeline_keys_spec.lua"] = 6,
    ["spec/sandbox_limits_spec.lua"] = 6, ["spec/sandbox_conformance_spec.lua"] = 6,
    ["spec/csv_map_parallel_spec.lua"] = 6, ["spec/sandbox_http_spec.lua"] = 6,
    ["spec/cli_help_spec.lua"] = 6, ["spec/checks_spec.lua"] = 4,
    ["spec/sandbox_fidelity_spec.lua"] = 4, ["spec/pipeline_spec.lua"] = 4,
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
