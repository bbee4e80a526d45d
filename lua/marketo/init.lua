--- marketo: load people-data into Marketo through its Bulk Import API.
-- This module is the entry point; marketo.core (C) is private.
local core = require("marketo.core")

local M = { _VERSION = "0.1.0", core = core }

-- A stale marketo/core.so next to fresh Lua files causes baffling bugs.
if core._VERSION ~= M._VERSION then
    error(("marketo %s needs marketo.core %s, found %s")
        :format(M._VERSION, M._VERSION, tostring(core._VERSION)))
end

--- marketo.client(options) -> client | nil, message, code (see marketo.client)
function M.client(options) return require("marketo.client").new(options) end

--- marketo.import(spec) -> result | nil, message, code (see marketo.import)
function M.import(spec) return require("marketo.import").run(spec) end

M.errors = require("marketo.errors")
M.retry = require("marketo.retry")

return M
