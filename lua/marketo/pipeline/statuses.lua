--- marketo.pipeline.statuses: program members with a status per row.
-- Marketo takes one programMemberStatus per job, so with a status column the
-- rows of each source are written again, grouped by that column's value
-- (trimmed), without the column: each group's parts carry their status, and
-- the scheduler sends each part with its own. The groups' rows interleave in
-- the file; marketo.pipeline.keys then orders the copies of a member across
-- groups as the file has them.
--
-- A blank status is a bad row (strict: the plan stops naming the line;
-- lenient: the row is rejected), and so is one the program does not have
-- when the instance's schema lists them (o.statuses; compared in any case).
-- Without a schema, Marketo says so when the status's first part is
-- uploaded (see the scheduler).
--
--   statuses.group(acc, o) -> true | nil, msg, code
--   acc: plan.build's accumulator; o: its options, with o.status_column.
local csv = require("marketo.csv")
local rows = require("marketo.pipeline.rows")

local M = {}

local function fail(code, msg)
    return nil, code .. ": " .. msg, code
end

-- The writer of a source's rows of one status.
local function group_of(g, o, source_index, status, header)
    local w = g.writers[status]
    if w then return w end
    g.n = g.n + 1
    local base = ("%s/s%02d-status%02d"):format(o.work_dir, source_index, g.n)
    local msg, code
    w = { status = status, lines = base .. ".lines" }
    w.writer, msg, code = csv.writer(base .. "-part-%04d." .. rows.extension(o.format), {
        format = o.format, header = header, max_bytes = o.max_bytes, lines = w.lines })
    if not w.writer then return nil, msg, code end
    g.writers[status] = w
    g.order[#g.order + 1] = w
    return w
end

-- One source's parts, grouped: the new parts in `out`, in order of the
-- statuses' first rows.
local function group_source(acc, o, source_index, parts, out)
    local g = { writers = {}, order = {}, n = 0, known = {} }
    -- the program's statuses, when the schema says them: a row's status is
    -- sent as the program spells it
    for _, st in ipairs(o.statuses or {}) do g.known[st:lower()] = st end
    local column = o.status_column
    local result, msg, code = true, nil, nil
    for _, part in ipairs(parts) do
        local header
        header, msg, code = rows.header(part, o.format)
        if not header then result = nil; break end
        local col = rows.column(header, column)
        if not col then
            result, msg, code = fail("STATUS_COLUMN", ("%s has no column '%s' (the status "
                .. "column); its columns are %s"):format(part.source, column,
                table.concat(header, ", ")))
            break
        end
        local sent = {}
        for i, name in ipairs(header) do
            if i ~= col then sent[#sent + 1] = name end
        end
        result, msg, code = rows.each(part, o.format, function(row, line)
            local status = (row[col] or ""):match("^%s*(.-)%s*$")
            if status == "" then
                local reason = ("the status column '%s' is blank"):format(column)
                if not o.lenient then
                    return fail("INVALID_ROW", ("%s:%d:%s: %s; fill it in, or pass lenient "
                        .. "mode to reject the row"):format(part.source, line, column, reason))
                end
                acc.rows.rejected = acc.rows.rejected + 1
                rows.reject(acc, { source = part.source, line = line,
                    column = column, code = "INVALID_ROW", reason = reason })
                return true
            end
            local known = o.statuses and g.known[status:lower()] or status
            if o.statuses and not g.known[status:lower()] then
                local reason = ("status '%s' is not one of the program's (%s)"):format(status,
                    table.concat(o.statuses, ", "))
                if not o.lenient then
                    return fail("INVALID_ROW", ("%s:%d:%s: %s; fix it, or pass lenient mode "
                        .. "to reject the row"):format(part.source, line, column, reason))
                end
                acc.rows.rejected = acc.rows.rejected + 1
                rows.reject(acc, { source = part.source, line = line, column = column,
                    code = "INVALID_ROW", reason = reason })
                return true
            end
            local w, wmsg, wcode = group_of(g, o, source_index, known, sent)
            if not w then return nil, wmsg, wcode end
            return w.writer:write(rows.fields(row, #header, col), line)
        end)
        if not result then break end
    end
    for _, w in ipairs(g.order) do
        local closed, cmsg, ccode = w.writer:close()
        if result and not closed then result, msg, code = nil, cmsg, ccode end
    end
    if not result then return nil, msg, code end
    for _, w in ipairs(g.order) do
        local skip = 0
        for _, written in ipairs(w.writer:parts()) do
            local part = rows.part(parts[1].source, o.format, written, w.lines, skip)
            part.status = w.status
            out[#out + 1] = part
            skip = skip + written.rows
        end
    end
    return true
end

--- group(acc, o): see the header comment.
function M.group(acc, o)
    local by_source = {}
    for _, part in ipairs(acc.parts) do
        by_source[part.source] = by_source[part.source] or {}
        table.insert(by_source[part.source], part)
    end
    local out = {}
    for i, source in ipairs(o.sources) do
        if by_source[source] then
            local ok, msg, code = group_source(acc, o, i, by_source[source], out)
            if not ok then return nil, msg, code end
        end
    end
    rows.replace(acc, out) -- the parts as cut have served: only the groups' are sent
    return true
end

return M
