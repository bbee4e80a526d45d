--- marketo-bulk fields: the fields of an object kind on the instance (its
-- describe, marketo.schema): name, display name, type, length, whether an
-- import may write it and whether it can be the lookup/dedupe field; for
-- program members also the program's statuses.
local json = require("marketo.json")
local args = require("marketo.commands.args")
local target = require("marketo.commands.target")
local instance = require("marketo.commands.instance")

local M = { summary = "list the fields of an object kind on the instance" }

M.usage = ([[
usage: marketo-bulk fields %s [--json] [--refresh-schema]

Prints what the instance's describe says of the object: each field's name,
display name, type, length, whether an import may write it, and whether it
can be the lookup (leads) or dedupe (custom objects) field; for program
members also the statuses of the program's channel. The answer is cached a
day (--refresh-schema asks again). With no MARKETO_* credentials: the
embedded sandbox's fields.

Examples:
  marketo-bulk fields leads
  marketo-bulk fields custom_objects car_c --json
  marketo-bulk fields program_members 1001 --refresh-schema
]]):format(target.usage("create"))

local FLAGS = { json = "boolean", refresh_schema = "boolean", help = "boolean" }

-- Whether a field can be the key: the lookup field (leads), one of the
-- dedupe fields (custom objects).
local function keys_of(s)
    if s.lookup then return s.lookup end
    local out = {}
    for _, name in ipairs(s.dedupe or {}) do out[name] = true end
    return out
end

local function as_json(s)
    local keys, fields = keys_of(s), {}
    for i, f in ipairs(s.fields) do
        fields[i] = { name = f.name, displayName = f.display, dataType = f.type,
            length = f.length, updateable = f.updateable, key = keys[f.name] == true }
    end
    return json.encode({ instance = s.instance, object = s.object, key = s.key,
        fields = fields, dedupeFields = s.dedupe, idField = s.id_field,
        program = s.program, channel = s.channel, statuses = s.statuses }) .. "\n"
end

local function as_text(s, label)
    local keys = keys_of(s)
    local rows = { { "NAME", "DISPLAY NAME", "TYPE", "LENGTH", "UPDATEABLE",
        s.lookup and "LOOKUP" or "DEDUPE" } }
    for _, f in ipairs(s.fields) do
        rows[#rows + 1] = { f.name, f.display, f.type, f.length and tostring(f.length) or "",
            f.updateable and "yes" or "no", keys[f.name] and "yes" or "" }
    end
    local width = {}
    for _, r in ipairs(rows) do
        for i, cell in ipairs(r) do width[i] = math.max(width[i] or 0, #cell) end
    end
    local lines = { ("%s on %s: %d fields"):format(label, s.instance, #s.fields) }
    for _, r in ipairs(rows) do
        local cells = {}
        for i, cell in ipairs(r) do
            cells[i] = i < #r and cell .. (" "):rep(width[i] - #cell) or cell
        end
        lines[#lines + 1] = (table.concat(cells, "  "):gsub("%s+$", ""))
    end
    if s.statuses then
        lines[#lines + 1] = ("statuses of program %s (%s, channel %s): %s"):format(
            tostring(s.program.id), tostring(s.program.name), tostring(s.channel),
            #s.statuses > 0 and table.concat(s.statuses, ", ") or "none")
    end
    return table.concat(lines, "\n") .. "\n"
end

function M.main(argv, out, err)
    local flags, positional = args.parse(argv, 2, FLAGS)
    if not flags then return args.usage_error(err, "fields", positional) end
    if flags.help then out:write(M.usage); return 0 end
    local object, next_i = target.object(positional, 1)
    if not object then return args.usage_error(err, "fields", next_i) end
    if positional[next_i] then
        return args.usage_error(err, "fields", ("unexpected '%s'"):format(positional[next_i]))
    end
    local s, msg = instance.schema(object, { refresh = flags.refresh_schema })
    if not s then err:write("marketo-bulk: ", msg, "\n"); return 1 end
    out:write(flags.json and as_json(s) or as_text(s, object.label))
    return 0
end

return M
