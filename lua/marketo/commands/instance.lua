--- marketo.commands.instance: the schema of the instance a command talks to
-- (marketo.schema): the environment's Marketo, through the cache or its
-- describe calls; with no credentials, the embedded sandbox's, known without
-- starting it (its describe, from the same marketo.sandbox.schema).
local target = require("marketo.commands.target")
local schema = require("marketo.schema")

local M = {}

M.SKIP_HINT = "; --no-schema skips every check against the instance"

--- schema(object, opts) -> schema | nil, message, code. object as
-- target.object gives it; opts: refresh, log.
function M.schema(object, opts)
    opts = opts or {}
    local real, msg = target.check()
    if real == nil then return nil, msg, "CONFIG" end
    if not real then
        return schema.from_sandbox(object.object, object.values,
            require("marketo.sandbox.schema").new(), require("marketo.sandbox.config").defaults())
    end
    local client, cmsg, ccode = require("marketo.client").new({})
    if not client then return nil, cmsg, ccode end
    local s, smsg, scode = client:describe(object.object, object.values,
        { refresh = opts.refresh, log = opts.log })
    if not s then
        return nil, smsg .. (scode == "DESCRIBE" and M.SKIP_HINT or ""), scode
    end
    return s
end

return M
