-- Loaded by busted before the specs (see .busted): nothing global here,
-- only a guard that the core under test is the one this tree just built.
local core = require("marketo.core")
local marketo = require("marketo")
assert(core._VERSION == marketo._VERSION, "stale marketo.core on the cpath")
