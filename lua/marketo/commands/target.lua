--- marketo.commands.target: what the ready commands share: which Marketo
-- (the environment's, or the embedded sandbox when no credentials are set)
-- and which object type (leads | customobject NAME | programmembers ID).
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
        return { object = "program_members", program_id = tonumber(id) or id,
            label = "members of program " .. id }, i + 2
    end
    return nil, ("expected %s, got '%s'"):format(M.OBJECT_USAGE, tostring(word))
end

-- Any MARKETO_* setting means the user meant a real instance: a missing one
-- is then an error the client names, never a silent fall-back to the sandbox.
local function configured()
    for _, name in ipairs({ "MARKETO_BASE_URL", "MARKETO_MUNCHKIN_ID", "MARKETO_CLIENT_ID",
        "MARKETO_CLIENT_SECRET" }) do
        local v = os.getenv(name)
        if v and v ~= "" then return true end
    end
    return false
end

--- marketo(err, opts) -> client options, stop() | nil, message.
-- With no MARKETO_* credentials it starts the embedded sandbox and says so
-- on stderr: a real import end to end, that never reaches a real Marketo.
function M.marketo(err, opts)
    opts = opts or {}
    if configured() then return {}, function() end end
    return M.sandbox(err, opts.sandbox)
end

--- sandbox(err, config) -> client options, stop() | nil, message: starts the
-- embedded sandbox (a child process that also stops by itself if we die).
function M.sandbox(err, config)
    local ok, child = pcall(require("marketo.sandbox.spawn").spawn,
        { config = config or {}, quiet = true })
    if not ok then return nil, "no MARKETO_* credentials set, and the embedded sandbox "
        .. "did not start: " .. tostring(child) end
    err:write(("marketo-bulk: no MARKETO_* credentials in the environment: using the "
        .. "embedded sandbox at %s (nothing reaches a real Marketo)\n"):format(child.base_url))
    return { base_url = child.base_url, client_id = child.client_id,
        client_secret = child.client_secret }, child.stop, child
end

return M
