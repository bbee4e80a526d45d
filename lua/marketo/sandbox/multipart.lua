--- marketo.sandbox.multipart: parse multipart/form-data request bodies (RFC 7578).
--
--   local multipart = require("marketo.sandbox.multipart")
--   local parts, why = multipart.parse(body, req.headers["content-type"])
--   -- parts[i] = { name = "file", filename = "a.csv" (or nil),
--   --              content_type = "text/csv" (or nil when the part has none),
--   --              headers = { ["content-disposition"] = ..., ... }, data = "..." }
--   local file = multipart.find(parts, "file")   -- first part with that name
--   multipart.boundary(content_type)             -- boundary, or nil, why
--
-- A body that is not multipart/form-data, or is broken, gives nil and a reason
-- for people (the sandbox maps these to Marketo's 612 and 613). Tolerated on
-- purpose: a closing delimiter without its trailing "--" (Marketo's Java
-- sample sends that), a preamble and an epilogue, any part content type.
-- Part bodies are found with plain string.find and cut out once, so a 10 MB
-- part costs one scan and one copy.
local find, sub = string.find, string.sub

local M = {}

-- A quoted-string starting at s[i] == '"': its value and the index after
-- it, or nil when unterminated. A backslash escapes only '"' and '\\', so a
-- Windows path sent unescaped (as browsers do) survives.
local function unquote(s, i)
    local out, j = {}, i + 1
    while j <= #s do
        local c = sub(s, j, j)
        local n = sub(s, j + 1, j + 1)
        if c == "\\" and (n == '"' or n == "\\") then
            out[#out + 1], j = n, j + 2
        elseif c == '"' then
            return table.concat(out), j + 1
        else
            out[#out + 1], j = c, j + 1
        end
    end
    return nil
end

-- A Content-Type or Content-Disposition value: the lower-cased main value,
-- its parameters (names lower-cased, quoted strings unquoted), and a reason
-- when a quoted string is unterminated. Parsing stops at anything else odd.
local function parse_params(value)
    local main, i = value:match("^%s*([^;%s]*)%s*()")
    local params = {}
    while true do
        local name, j = value:match("^;%s*([^=%s;]+)%s*=%s*()", i)
        if not name then break end
        local v
        if sub(value, j, j) == '"' then
            v, i = unquote(value, j)
            if not v then return main:lower(), params, "unterminated quoted string" end
            i = value:match("^%s*()", i)
        else
            v, i = value:match("^([^;]*)()", j)
            v = v:match("^(.-)%s*$")
        end
        params[name:lower()] = v
    end
    return main:lower(), params
end

--- boundary(content_type) -> boundary, or nil, why.
function M.boundary(content_type)
    if type(content_type) ~= "string" then return nil, "no Content-Type" end
    local kind, params = parse_params(content_type)
    if kind ~= "multipart/form-data" then return nil, "Content-Type is not multipart/form-data" end
    local b = params.boundary
    if not b or b == "" then return nil, "no boundary in Content-Type" end
    if #b > 200 then return nil, "boundary too long" end
    return b
end

local function parse_headers(block)
    local headers = {}
    for line in (block .. "\r\n"):gmatch("(.-)\r\n") do
        local name, value = line:match("^([^:%s]+)%s*:%s*(.-)%s*$")
        if not name then return nil, "bad part header line" end
        headers[name:lower()] = value
    end
    return headers
end

local function make_part(headers, data, n)
    local disposition = headers["content-disposition"]
    if not disposition then return nil, ("part %d has no Content-Disposition"):format(n) end
    local kind, params, bad = parse_params(disposition)
    if bad or kind ~= "form-data" or not params.name then
        return nil, ("part %d: bad Content-Disposition"):format(n)
    end
    return { name = params.name, filename = params.filename, headers = headers, data = data,
             content_type = headers["content-type"] and headers["content-type"]:lower() }
end

-- Where the first delimiter ends: at the very start, or after a preamble.
local function first_delimiter(body, dash)
    if sub(body, 1, #dash) == dash then return #dash + 1 end
    local _, e = find(body, "\r\n" .. dash, 1, true)
    return e and e + 1
end

-- After a delimiter at `pos`: "closed", or the position where the part starts
-- (past the line end), or nil when the body is broken.
local function after_delimiter(body, pos)
    if sub(body, pos, pos + 1) == "--" then return "closed" end
    local _, e = find(body, "^[ \t]*\r\n", pos)
    if e then
        if e == #body then return "closed" end -- "--b\r\n" as the last line
        return e + 1
    end
    if pos > #body then return "closed" end -- "--b" ends the body
    return nil
end

-- The next real delimiter from `from`: its start and where its line ends
-- ("closed" or the next part's start). "CRLF--boundary" followed by other
-- text is data (RFC 2046 forbids it there, but being lenient costs nothing).
local function next_delimiter(body, delimiter, from)
    while true do
        local d = find(body, delimiter, from, true)
        if not d then return nil end
        local after = after_delimiter(body, d + #delimiter)
        if after then return d, after end
        from = d + 1
    end
end

--- parse(body, content_type) -> parts, or nil, why.
function M.parse(body, content_type)
    local boundary, why = M.boundary(content_type)
    if not boundary then return nil, why end
    if type(body) ~= "string" then return nil, "no body" end
    local dash = "--" .. boundary
    local delimiter = "\r\n" .. dash
    local pos = first_delimiter(body, dash)
    if not pos then return nil, "no opening boundary" end
    local parts = {}
    local start = after_delimiter(body, pos)
    if not start then return nil, "bad boundary line" end
    while start ~= "closed" do
        local head_end = find(body, "\r\n\r\n", start, true)
        local headers
        if sub(body, start, start + 1) == "\r\n" then -- a part with no headers
            headers, head_end = {}, start - 2
        elseif not head_end then
            return nil, "part headers not terminated"
        else
            headers, why = parse_headers(sub(body, start, head_end - 1))
            if not headers then return nil, why end
        end
        local d, after = next_delimiter(body, delimiter, head_end + 4)
        if not d then return nil, ("part %d is not terminated"):format(#parts + 1) end
        local part
        part, why = make_part(headers, sub(body, head_end + 4, d - 1), #parts + 1)
        if not part then return nil, why end
        parts[#parts + 1] = part
        start = after
    end
    if #parts == 0 then return nil, "no parts" end
    return parts
end

--- find(parts, name) -> the first part called name, or nil.
function M.find(parts, name)
    for _, part in ipairs(parts) do
        if part.name == name then return part end
    end
    return nil
end

return M
