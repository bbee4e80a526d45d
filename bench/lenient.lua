-- bench/lenient: what --lenient costs on a file whose rows are half malformed
-- (issue 12 item 8: rejected rows must not cut parts). A dry run of 1,000,000
-- rows, every other one a field too many, against the baseline of a file of
-- only its good rows: parts planned, wall time and peak RSS (GNU time) of each.
-- Run from the repository root after `make build`: lua5.4 bench/lenient.lua [ROWS]
local kit = dofile("bench/runner_kit.lua")
local rows = tonumber(arg[1]) or 1000000
local bin = os.getenv("MARKETO_BULK_BIN") or "build/bin/marketo-bulk"
local dir = kit.sh("mktemp -d"):gsub("%s+$", "")

local function write(path, bad_every)
    local f = assert(io.open(path, "wb"))
    f:write("email,firstName,leadScore\n")
    local buf = {}
    for i = 1, rows do
        if bad_every and i % bad_every == 0 then
            buf[#buf + 1] = ("bad%d@example.com,Bad,%d,extra\n"):format(i, i % 100)
        else
            buf[#buf + 1] = ("lead%d@example.com,First%d,%d\n"):format(i, i, i % 100)
        end
        if #buf == 10000 then f:write(table.concat(buf)); buf = {} end
    end
    f:write(table.concat(buf))
    f:close()
end

-- parts, seconds, peak KB of a lenient dry run
local function dry(path)
    local out = kit.sh(("/usr/bin/time -f 'TIME %%e %%M' %s import leads %s --lenient "
        .. "--dry-run --no-schema 2>&1"):format(bin, path))
    local parts = tonumber(out:match("; (%d+) parts"))
    local secs, kb = out:match("TIME ([%d.]+) (%d+)")
    return parts, tonumber(secs), tonumber(kb)
end

local half, good = dir .. "/half-bad.csv", dir .. "/good.csv"
write(half, 2)
-- the baseline: the same good rows and nothing else
local f, g = assert(io.open(half, "rb")), assert(io.open(good, "wb"))
for line in f:lines() do
    if not line:find(",extra$") then g:write(line, "\n") end
end
f:close(); g:close()
print(("%d rows, half of them malformed; baseline: its good rows alone"):format(rows))
print(("%-22s %8s %10s %12s"):format("", "parts", "seconds", "peak RSS"))
for _, case in ipairs({ { "half bad, --lenient", half }, { "good rows alone", good } }) do
    local parts, secs, kb = dry(case[2])
    print(("%-22s %8s %10.2f %9.1f MB"):format(case[1], tostring(parts), secs or -1,
        (kb or 0) / 1024))
end
os.execute("rm -rf '" .. dir .. "'")
