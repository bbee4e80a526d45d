--- marketo.commands.target: what the ready commands share: which Marketo
-- (the environment's, or the embedded sandbox when no credentials are set)
-- and which object type (leads | customobject NAME | programmembers ID).
local config = require("marketo.config")
local args = require("marketo.commands.args")

local M = {}

M.OBJECT_USAGE = "leads | customobject API_NAME | programmembers PROGRAM_ID"

--- object(positional, i) -> { object, api_name | program_id, label }, next index
-- | nil, message.
function M.object(positional, i)
    local word = positional[i]
    if word == "leads" then
        return { object = "leads", label = "leads" }, i + 1
    elseif word == "customobject" or word == "customobjects" then
        local name = positional[i + 1]
        if not name then
            return nil, "customobject needs its API name, e.g. customobject car_c"
        end
        return { object = "custom_objects", api_name = name, label = "custom object " .. name },
            i + 2
    elseif word == "programmembers" or word == "programmember" then
        local id = positional[i + 1]
        if not id then
            return nil, "programmembers needs the program id, e.g. programmembers 1001"
        end
        local n, says = args.value("count", id)
        if not n then return nil, ("program id %s: want %s"):format(id, says) end
        return { object = "program_members", program_id = n,
            label = "members of program " .. id }, i + 2
    end
    return nil, ("expected %s, got '%s'"):format(M.OBJECT_USAGE, tostring(word))
end

-- Any MARKETO_* setting means the user meant a real instance: a missing one
-- is then an error the client names, never a silent fall-back to the sandbox;
-- so is one set but empty. true | false | nil, message.
local function configured()
    local msg = config.empty_variable(os.getenv, true)
    if msg then return nil, msg end
    for _, name in ipairs(config.ENV) do
        if os.getenv(name) then return true end
    end
    return false
end

--- marketo(err, opts) -> client options, stop() | nil, message.
-- With no MARKETO_* credentials it starts the embedded sandbox and says so
-- on stderr: a real import end to end, that never reaches a real Marketo.
function M.marketo(err, opts)
    opts = opts or {}
    local real, msg = configured()
    if real == nil then return nil, msg end
    if real then
        -- Settings a client would refuse stop the command before it starts.
        local ok, why = config.resolve({})
        if not ok then return nil, why end
        return {}, function() end
    end
    return M.sandbox(err, opts.sandbox)
end

--- sandbox(err, config) -> client options, stop() | nil, message: starts the
-- embedded sandbox (a child process that also stops by itself if we die).
function M.sandbox(err, sandbox_config)
    local ok, child = pcall(require("marketo.sandbox.spawn").spawn,
        { config = sandbox_config or {}, quiet = true })
    if not ok then return nil, "no MARKETO_* credentials set, and the embedded sandbox "
        .. "did not start: " .. tostring(child) end
    err:write(("marketo-bulk: no MARKETO_* credentials in the environment: using the "
        .. "embedded sandbox at %s (nothing reaches a real Marketo)\n"):format(child.base_url))
    return { base_url = child.base_url, client_id = child.client_id,
        client_secret = child.client_secret }, child.stop, child
end

return M
