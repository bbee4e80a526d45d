--- spec/support/proc.lua: what the kernel says of a process, so a spec can
-- act when a child is really blocked instead of guessing a delay.
local M = {}

--- The state of process pid ("R" running, "S" sleeping, "Z" ended), or "gone".
function M.state(pid)
    local f = io.open("/proc/" .. pid .. "/stat")
    if not f then return "gone" end
    local stat = f:read("*a")
    f:close()
    return stat:match("^%d+ %b() (%a)") or "gone"
end

--- Spins until pid sleeps (or has ended); returns the state seen. Only for a
-- child that does nothing else that blocks: asleep then means in the call the
-- spec is about.
function M.asleep(pid)
    local s = M.state(pid)
    while s ~= "S" and s ~= "Z" and s ~= "gone" do s = M.state(pid) end
    return s
end

return M
