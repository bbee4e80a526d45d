--- marketo.commands.target: what the ready commands share: which Marketo
-- (the environment's, or the embedded sandbox when no credentials are set)
-- and which object kind (marketo.objects: leads | custom_objects API_NAME |
-- program_members PROGRAM_ID), with the words that name it.
local config = require("marketo.config")
local args = require("marketo.commands.args")
local objects = require("marketo.objects")

local M = {}

--- The flags that name an instance, for every command that talks to one; the
-- secret is not one of them (it would show in `ps` and the shell's history).
M.FLAGS = { profile = "string", base_url = "string", munchkin_id = "string",
    client_id = "string", client_secret = "string" }

M.FLAGS_HELP = [[
Instance (default: MARKETO_* in the environment; none: the embedded sandbox):
  --profile NAME         a profile of $XDG_CONFIG_HOME/marketo-bulk/profiles
                         (also MARKETO_PROFILE; see the README)
  --base-url URL | --munchkin-id ID   --client-id ID
                         the secret comes from MARKETO_CLIENT_SECRET or the
                         profile, never from the command line]]

--- instance(flags) -> client options (flags over profile over environment)
-- | nil, message (a usage error).
function M.instance(flags)
    if flags.client_secret then
        return nil, "--client-secret: a secret on the command line shows in `ps` and the "
            .. "shell's history; set MARKETO_CLIENT_SECRET, or use a profile's "
            .. "client_secret_file"
    end
    local o = {}
    for _, k in ipairs({ "profile", "base_url", "munchkin_id", "client_id" }) do
        o[k] = flags[k]
    end
    return o
end

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
        if word == nil then return nil, ("%s expected"):format(M.usage(which)) end
        return nil, ("expected %s, got '%s'"):format(M.usage(which), word)
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

--- batch(positional) -> object (as object() gives it), batch id | nil, message:
-- the words `KIND [WORDS] BATCH_ID` of the commands about one batch.
function M.batch(positional)
    local object, next_i = M.object(positional, 1, "status")
    if not object then return nil, next_i end
    if #positional < next_i then return nil, "BATCH_ID expected" end
    if #positional > next_i then
        return nil, ("one BATCH_ID expected, got '%s' after it"):format(positional[next_i + 1])
    end
    local id, says = args.value("count", positional[next_i])
    if not id then return nil, ("BATCH_ID %s: want %s"):format(positional[next_i], says) end
    return object, id
end

-- Any MARKETO_* setting means the user meant a real instance: a missing one
-- is then an error the client names, never a silent fall-back to the sandbox;
-- so is one set but empty. true | false | nil, message.
local function configured(options)
    local msg = config.empty_variable(os.getenv, true)
    if msg then return nil, msg end
    if next(options) then return true end
    for _, name in ipairs(config.ENV) do
        if os.getenv(name) then return true end
    end
    return false
end

--- check() -> whether the environment names a real instance | nil, message:
-- its settings, checked without starting anything, so that a command can stop
-- on them before it reads a row.
function M.check(options)
    options = options or {}
    local real, msg = configured(options)
    if real then
        local ok, why = config.resolve(options)
        if not ok then return nil, why end
    end
    return real, msg
end

--- marketo(err, opts) -> client options, stop() | nil, message. opts.instance:
-- client options from instance(flags).
-- With no MARKETO_* credentials it starts the embedded sandbox and says so
-- on stderr: a real import end to end, that never reaches a real Marketo.
function M.marketo(err, opts)
    opts = opts or {}
    local options = opts.instance or {}
    local real, msg = M.check(options)
    if real == nil then return nil, msg end
    if real then return options, function() end end
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
