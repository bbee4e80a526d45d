--- marketo.pipeline.changed: --changed-only. After the parts are cut, each
-- part's rows go through the state of earlier imports (src/state.c: per key,
-- a hash of the row as it was sent): a row whose key is held with the same
-- bytes is left out of its part (a part with holes, as marketo.pipeline.keys
-- writes them) and counted unchanged; a part left with no row is no part.
-- The rows are hashed as they will be sent: a mapped part's rows as written,
-- a byte range's as they are in the source (line ends aside).
--
--   changed.sift(acc, o) -> true | nil, msg, code
--   acc: plan.build's accumulator; o: plan.build's options, with o.key
--   (marketo.objects.key) and o.state (a loaded state). acc.rows.unchanged
--   gets the count.
local core = require("marketo.core")
local csv = require("marketo.csv")
local rows = require("marketo.pipeline.rows")

local M = {}

-- The source lines of a written part's rows, from its lines file.
local function source_lines(part)
    local f, msg = io.open(part.lines.file, "rb")
    if not f then return nil, "READ_ERROR: " .. msg, "READ_ERROR" end
    for _ = 1, part.lines.skip do f:read("l") end
    local lines = {}
    for i = 1, part.rows do lines[i] = tonumber(f:read("l")) end
    f:close()
    if #lines < part.rows then
        return nil, "READ_ERROR: " .. part.lines.file .. " has fewer lines than "
            .. part.path .. " has rows", "READ_ERROR"
    end
    return lines
end

-- A sifted mapped part's lines file holds each kept row's number in the
-- part: made its source line.
local function relines(part, out, lines_file)
    local src, msg, code = source_lines(part)
    if not src then return nil, msg, code end
    local f
    f, msg = io.open(lines_file, "rb")
    if not f then return nil, "READ_ERROR: " .. msg, "READ_ERROR" end
    local got = {}
    for l in f:lines() do got[#got + 1] = src[tonumber(l)] end
    f:close()
    local ok, wmsg, wcode = core.write_file(lines_file, table.concat(got, "\n") .. "\n")
    if not ok then return nil, wmsg, wcode end
    out.first_line, out.last_line = got[1], got[#got]
    return true
end

-- Part k without its unchanged rows: the part to send instead (nil: none
-- left), or the part itself when every row changed.
local function sift_part(acc, o, k)
    local part = acc.parts[k]
    local header, msg, code = rows.header(part, o.format)
    if not header then return nil, msg, code end
    local cols = rows.columns(header, o.key.fields)
    if not cols then return part end -- Marketo fails every row: send them all
    local path = ("%s/c%04d-changed.%s"):format(o.work_dir, k, rows.EXT[o.format])
    local lines = path .. ".lines"
    local w
    w, msg, code = csv.writer(path, { format = o.format, header = header, lines = lines })
    if not w then return nil, msg, code end
    local it
    it, msg, code = rows.open(part, o.format)
    local kept, unchanged
    if it then
        kept, unchanged, code = it.reader:sift(o.state, cols, w, part.mapped)
        it:close()
    end
    local closed, cmsg, ccode = w:close()
    if not it then return nil, msg, code end
    if not kept then return nil, unchanged, code end
    if not closed then return nil, cmsg, ccode end
    acc.rows.unchanged = acc.rows.unchanged + unchanged
    if unchanged == 0 or kept == 0 then
        os.remove(path)
        os.remove(lines)
        return unchanged == 0 and part or false
    end
    local out = w:parts()[1]
    out.path = path
    if part.mapped then
        local ok, rmsg, rcode = relines(part, out, lines)
        if not ok then return nil, rmsg, rcode end
    end
    local sifted = rows.part(part.source, o.format, out, lines)
    sifted.status = part.status
    return sifted
end

--- sift(acc, o): see the header comment.
function M.sift(acc, o)
    acc.rows.unchanged = 0
    local kept, replaced = {}, {}
    for k, part in ipairs(acc.parts) do
        local sifted, msg, code = sift_part(acc, o, k)
        if sifted == nil then return nil, msg, code end
        if sifted ~= part and part.mapped then
            os.remove(part.path)
            replaced[part.lines.file] = true
        end
        if sifted then kept[#kept + 1] = sifted end
    end
    for _, part in ipairs(kept) do
        if part.lines then replaced[part.lines.file] = nil end
    end
    for file in pairs(replaced) do os.remove(file) end
    acc.parts = kept
    return true
end

return M
