--- marketo.formats: the file formats Marketo's bulk import reads, in one place.
--
--   local formats = require("marketo.formats")
--   formats.get("tsv")          -> { name = "tsv", delimiter = "\t", extension = "tsv",
--                                    content_type = "text/csv" } | nil (unknown)
--   formats.of("a/b.TSV")       -> the format its name says | nil
--   formats.choose(name, path)  -> format | nil, "FORMAT: ...", "FORMAT": the one asked
--                                  for, else the one the name says, else csv
--   formats.NAMES               -> "csv, tsv or ssv" (for messages)
--
-- Marketo's `format` parameter says how the file is delimited; its docs send
-- every format as the file part's `text/csv`, and so do we. A semicolon file
-- is written with the .csv extension (that is what spreadsheets call it) and
-- recognised by .ssv as well.
local M = {}

local LIST = {
    { name = "csv", delimiter = ",", extension = "csv", content_type = "text/csv" },
    { name = "tsv", delimiter = "\t", extension = "tsv", content_type = "text/csv" },
    { name = "ssv", delimiter = ";", extension = "csv", content_type = "text/csv" },
}

local BY_NAME, names = {}, {}
for i, f in ipairs(LIST) do
    BY_NAME[f.name] = f
    names[i] = f.name
end

M.NAMES = table.concat(names, ", ", 1, #names - 1) .. " or " .. names[#names]
M.DEFAULT = "csv"

--- The format of this name (any case), or nil.
function M.get(name)
    return type(name) == "string" and BY_NAME[name:lower()] or nil
end

--- The format a path's extension names, or nil.
function M.of(path)
    return M.get(path:match("%.(%w+)$"))
end

--- The format to read `path` in: `name` when given (an unknown one is an
-- error), else the one its extension names, else csv.
function M.choose(name, path)
    if name ~= nil then
        local f = M.get(name)
        if not f then
            return nil, ("FORMAT: unknown format '%s': %s"):format(tostring(name), M.NAMES),
                "FORMAT"
        end
        return f
    end
    return M.of(path) or BY_NAME[M.DEFAULT]
end

return M
