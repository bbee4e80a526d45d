--- marketo.commands.instance: the schema of the instance a command talks to
-- (marketo.schema): the environment's Marketo, through the cache or its
-- describe calls; with no credentials, the embedded sandbox's, known without
-- starting it (its describe, from the same marketo.sandbox.schema).
local target = require("marketo.commands.target")
local schema = require("marketo.schema")
local cost = require("marketo.pipeline.cost")
local quota = require("marketo.pipeline.quota")

local M = {}

M.SKIP_HINT = "; --no-schema skips every check against the instance"

--- schema(object, opts) -> schema | nil, message, code. object as
-- target.object gives it; opts: refresh, log, settings (the client options
-- of the command's --profile, --base-url, ... flags: target.instance).
function M.schema(object, opts)
    opts = opts or {}
    local settings = opts.settings or {}
    local real, msg = target.check(settings)
    if real == nil then return nil, msg, "CONFIG" end
    if not real then
        return schema.from_sandbox(object.object, object.values,
            require("marketo.sandbox.schema").new(), require("marketo.sandbox.config").defaults())
    end
    local client, cmsg, ccode = require("marketo.client").new(settings)
    if not client then return nil, cmsg, ccode end
    local s, smsg, scode = client:describe(object.object, object.values,
        { refresh = opts.refresh, log = opts.log })
    if not s then
        return nil, smsg .. (scode == "DESCRIBE" and M.SKIP_HINT or ""), scode
    end
    return s
end

--- name(settings) -> the instance a command talks to, host only (never a
-- secret): "123-ABC-456.mktorest.com", or "embedded sandbox" | nil, message.
function M.name(settings)
    local real, msg = target.check(settings or {})
    if real == nil then return nil, msg end
    if not real then return "embedded sandbox" end
    local resolved = assert(require("marketo.config").resolve(settings or {}))
    return schema.instance(resolved.base_url)
end

--- attach(spec, object, flags) -> true | nil, message, code: names the
-- instance in spec.instance, and puts its schema in spec.schema (unless
-- --no-schema: then nothing is checked against it).
function M.attach(spec, object, flags)
    local settings = target.instance(flags) or {}
    local name, msg = M.name(settings)
    if not name then return nil, msg, "CONFIG" end
    spec.instance = name
    if flags.no_schema then return true end
    local s, code
    s, msg, code = M.schema(object, { refresh = flags.refresh_schema, settings = settings })
    if not s then return nil, msg, code end
    spec.schema = s
    return true
end

--- The line that names the instance of a run, once its file is read (so a
-- command that stops on its input says nothing more than why).
function M.announce(spec, flags)
    local name = spec.instance or M.name(target.instance(flags) or {}) or "?"
    return ("marketo-bulk: instance %s%s\n"):format(name, flags.no_schema
        and " (--no-schema: the file was not checked against it)" or "")
end

M.DAILY_QUOTA = quota.DAILY -- Marketo's default daily quota of API calls

-- The rows of each part a prepared import has still to send.
local function part_rows(prepared)
    local rows = {}
    if prepared.result then
        for i, part in ipairs(prepared.result.plan.parts) do rows[i] = part.rows end
        return rows
    end
    for _, part in ipairs(prepared.journal:parts()) do
        if part.stage ~= "fetched" then rows[#rows + 1] = part.plan.rows end
    end
    return rows
end

--- The cost of a prepared import, for people (marketo.pipeline.cost).
function M.cost_text(prepared)
    return cost.text(cost.estimate(part_rows(prepared)))
end

--- quota(prepared, spec, flags) -> nil | message: the refusal of an import
-- that may spend more calls than are left of today's (--daily-quota), read
-- from the instance's usage (the embedded sandbox's day is new: nothing used),
-- which the import then counts on from (spec.usage).
function M.quota(prepared, spec, flags)
    if flags.ignore_quota then return nil end
    local c = cost.estimate(part_rows(prepared))
    local used = 0
    local settings = target.instance(flags) or {}
    local real = target.check(settings)
    if real then
        local client, msg = require("marketo.client").new(settings)
        if not client then return msg end
        local usage
        usage, msg = client:usage()
        if not usage then return msg .. "; --ignore-quota sends without asking" end
        used, spec.usage = usage.total, usage
    end
    local refused = cost.quota(c, used, flags.daily_quota or M.DAILY_QUOTA)
    return refused and (spec.instance or "the instance") .. ": " .. refused
end

return M
