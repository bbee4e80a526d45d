--- marketo.commands.target: what the ready commands share: which Marketo
-- (the environment's, or the embedded sandbox when no credentials are set)
-- and which object kind (marketo.objects: leads | custom_objects API_NAME |
-- program_members PROGRAM_ID), with the words that name it.
local objects = require("marketo.objects")

local M = {}

-- The words older versions took, for a hint: one spelling now, the registry's.
local OLD = { customobject = "custom_objects", customobjects = "custom_objects",
    programmembers = "program_members", programmember = "program_members" }

-- The parameters a command takes as words after the kind: those in the path
-- `which` ("create" for an import, "status" for one batch).
local function words(kind, which)
    local out = {}
    for _, p in ipairs(kind.params) do
        if p.where == "path" and kind.paths[which]:find("{" .. p.name .. "}", 1, true) then
            out[#out + 1] = p
        end
    end
    return out
end

--- The kinds and their words, for usage texts: "leads | custom_objects API_NAME | ...".
function M.usage(which)
    local list = {}
    for _, kind in ipairs(objects.LIST) do
        local w = { kind.name }
        for _, p in ipairs(words(kind, which)) do w[#w + 1] = p.placeholder end
        list[#list + 1] = table.concat(w, " ")
    end
    return table.concat(list, " | ")
end

--- object(positional, i, which) -> { object = kind name, kind, values = { api_name
-- = ... }, label }, next index | nil, message. `which` is "create" (default) or
-- "status": which of Marketo's paths the words must fill.
function M.object(positional, i, which)
    which = which or "create"
    local word = positional[i]
    local kind = objects.get(word or "")
    if not kind then
        if OLD[word] then
            return nil, ("'%s' is now spelled '%s'"):format(word, OLD[word])
        end
        return nil, ("expected %s, got '%s'"):format(M.usage(which), tostring(word))
    end
    local values, n = {}, i + 1
    for _, p in ipairs(words(kind, which)) do
        local v = positional[n]
        if not v then
            return nil, ("%s needs %s, e.g. %s %s"):format(kind.name, p.help, kind.name,
                p.example)
        end
        local ok, checked = objects.valid(p, v)
        if not ok then
            return nil, ("%s: %s must be %s, got '%s'"):format(kind.name, p.placeholder,
                checked, v)
        end
        values[p.name] = checked
        n = n + 1
    end
    return { object = kind.name, kind = kind, values = values,
        label = objects.label(kind, values) }, n
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
