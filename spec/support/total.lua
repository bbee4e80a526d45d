-- total.lua DIR: add up the counts the spec runs wrote into DIR and print the
-- closing line CI reads. Exits non-zero when anything failed or nothing ran.
local dir = assert(arg[1], "usage: total.lua DIR")
local passed, failed, skipped, runs = 0, 0, 0, {}
local ls = assert(io.popen("ls " .. dir .. " 2>/dev/null"))
for name in ls:lines() do
    local f = assert(io.open(dir .. "/" .. name))
    local p, fl, s = f:read("n", "n", "n")
    f:close()
    passed, failed, skipped = passed + p, failed + fl, skipped + s
    runs[#runs + 1] = ("%s %d/%d"):format(name, p, p + fl)
end
ls:close()
print("runs: " .. table.concat(runs, ", "))
local line = ("%d passed, %d failed"):format(passed, failed)
if skipped > 0 then line = line .. (", %d skipped"):format(skipped) end
print(line)
os.exit((failed == 0 and passed > 0) and 0 or 1)
