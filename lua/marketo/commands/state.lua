--- marketo-bulk state: the state of --changed-only imports (marketo.pipeline.changed),
-- shown or forgotten.
local core = require("marketo.core")
local args = require("marketo.commands.args")

local M = { summary = "show or forget a --changed-only state (what earlier imports sent)" }

M.usage = [[
usage: marketo-bulk state show FILE...
       marketo-bulk state forget FILE...

A --changed-only import keeps a state of what it sent: per instance, object and
key field, each key with a hash of its row. By default it is
$XDG_STATE_HOME/marketo-bulk/INSTANCE-OBJECT-KEYFIELD.state (else under
~/.local/state), or the file --state names.
  show      the instance, object and key field it is for, the keys it holds,
            and its last import
  forget    deletes it: the next --changed-only import sends every row (as
            --full does) and starts it anew

Examples:
  marketo-bulk state show ~/.local/state/marketo-bulk/*.state
  marketo-bulk state forget leads.state
]]

M.FLAGS = { help = "boolean" } -- for the shell's completion

-- The state at path, or a message saying what is wrong with it.
local function load(path)
    local st, msg, code = core.state_load(path)
    if not st and code == "STATE_CORRUPT" then
        msg = msg .. "; import with --changed-only --full to write it anew, or forget it"
    end
    return st, msg
end

local function show(path, out)
    local st, msg = load(path)
    if not st then return nil, msg end
    local instance, object, key = st:identity()
    local note = st:note()
    out:write(("%s: instance %s, object %s, key field %s; %d keys; %s\n"):format(path,
        instance, object, key, st:count(), note ~= "" and note or "no import yet"))
    st:close()
    return true
end

local function forget(path, out)
    local st, msg = load(path)
    if st then st:close() end
    -- a damaged state can be forgotten; a file that is no state is left alone
    if not st and not msg:find("STATE_CORRUPT", 1, true) then return nil, msg end
    if msg and msg:find("not a marketo-bulk state", 1, true) then return nil, msg end
    local ok, why = os.remove(path)
    if not ok then return nil, why end
    out:write(("%s: forgotten\n"):format(path))
    return true
end

function M.main(argv, out, err)
    local flags, positional = args.parse(argv, 2, M.FLAGS)
    if not flags then return args.usage_error(err, "state", positional) end
    if flags.help then out:write(M.usage); return 0 end
    local action = ({ show = show, forget = forget })[positional[1] or ""]
    if not action then return args.usage_error(err, "state", "show or forget expected") end
    if not positional[2] then return args.usage_error(err, "state", "no FILE") end
    local status = 0
    for i = 2, #positional do
        local ok, msg = action(positional[i], out)
        if not ok then
            err:write("marketo-bulk: ", msg, "\n")
            status = 1
        end
    end
    return status
end

return M
