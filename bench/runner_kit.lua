-- What the runner benches share (dofile'd by bench/pipeline.lua and
-- bench/sandbox.lua).
local M = {}

--- The output of a shell command.
function M.sh(cmd)
    local p = assert(io.popen(cmd))
    local out = p:read("a")
    p:close()
    return out
end

--- The environment (VAR=value words for env) that points a command at a
-- spawned sandbox.
function M.env_of(sb)
    return ("MARKETO_BASE_URL=%s MARKETO_CLIENT_ID=%s MARKETO_CLIENT_SECRET=%s")
        :format(sb.base_url, sb.client_id, sb.client_secret)
end

--- Writes a header and `rows` leads (one name with a quoted comma) to path;
-- returns the file's size in bytes. `who`: the emails' prefix (files that
-- share no key).
function M.leads(path, rows, who)
    local f = assert(io.open(path, "wb"))
    f:write("email,firstName,lastName,company,title,leadScore\n")
    local buf = {}
    for i = 1, rows do
        buf[#buf + 1] = ('%slead%d@example.com,First%d,"Last, %d",Company %d,Title %d,%d\n')
            :format(who or "", i, i, i, i % 1000, i % 50, i % 100)
        if #buf == 10000 then f:write(table.concat(buf)); buf = {} end
    end
    f:write(table.concat(buf))
    local size = f:seek("end")
    f:close()
    return size
end

return M
