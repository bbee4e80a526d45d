--- marketo.resty.multipart: a multipart/form-data body streamed to a cosocket.
--
--   local body, msg, code = multipart.open(mp)   -- mp as in the transport interface
--   body.content_type, body.length               -- exact, known before any byte is sent
--   body:send(sock, on_chunk)                    -- true | nil, msg, code
--   body:close()
--
-- The file part is the prefix (a CSV header line) then a byte range of a file,
-- read in CHUNK-sized pieces between sock:send calls, so a 10 MB part never
-- sits in memory and every network wait yields the worker. The file is
-- opened and measured in open(), so a missing file or a range past its end is
-- a failure before the request goes out (as marketo.http does).
local M = {}

--- Bytes read from the file per sock:send.
M.CHUNK = 65536

local ERRNO = { [2] = "ENOENT", [13] = "EACCES", [21] = "EISDIR", [20] = "ENOTDIR" }

local Body = {}
Body.__index = Body

-- A boundary no CSV is likely to hold; random so that no file can be
-- crafted against it (math.random is seeded per worker by ngx_lua).
local function boundary()
    local t = {}
    for i = 1, 24 do t[i] = ("%x"):format(math.random(0, 15)) end
    return "marketo-bulk-" .. table.concat(t)
end

-- A quoted-string value of Content-Disposition, escaped as HTML5 forms do
-- (curl 7.81+ too): a quote or a line break must not end the header.
local function quoted(s)
    return '"' .. s:gsub('[\r\n"]', { ["\r"] = "%0D", ["\n"] = "%0A", ['"'] = "%22" }) .. '"'
end

local function field_head(b, name)
    return "--" .. b .. "\r\nContent-Disposition: form-data; name=" .. quoted(name) .. "\r\n\r\n"
end

local function file_head(b, file)
    local disposition = "form-data; name=" .. quoted(file.name)
    if file.filename then disposition = disposition .. "; filename=" .. quoted(file.filename) end
    return "--" .. b .. "\r\nContent-Disposition: " .. disposition .. "\r\nContent-Type: "
        .. (file.content_type or "application/octet-stream") .. "\r\n\r\n"
end

-- Opens the file and checks the range: handle, length | nil, msg, code.
local function open_range(file)
    local f, msg, errno = io.open(file.path, "rb")
    if not f then
        local code = ERRNO[errno] or "READ_ERROR"
        return nil, code .. ": " .. tostring(msg), code
    end
    local size = f:seek("end")
    local offset = file.offset or 0
    local length = file.length or (size - offset)
    if offset < 0 or length < 0 or offset + length > size then
        f:close()
        return nil, ("READ_ERROR: %s: range %d+%d is past its end (%d)")
            :format(file.path, offset, length, size), "READ_ERROR"
    end
    return f, length, offset
end

--- open(mp) -> body | nil, msg, code: frames the fields and measures the file.
function M.open(mp)
    local b = boundary()
    local head = {}
    for _, f in ipairs(mp.fields or {}) do
        head[#head + 1] = field_head(b, f[1]) .. f[2] .. "\r\n"
    end
    local self = setmetatable({ content_type = "multipart/form-data; boundary=" .. b,
        prefix = "", range = 0, tail = "--" .. b .. "--\r\n" }, Body)
    if mp.file then
        local f, length, offset = open_range(mp.file)
        if not f then return nil, length, offset end
        self.file, self.range, self.offset = f, length, offset
        head[#head + 1] = file_head(b, mp.file)
        self.prefix = mp.file.prefix or ""
        self.tail = "\r\n" .. self.tail
    end
    self.head = table.concat(head)
    self.length = #self.head + #self.prefix + self.range + #self.tail
    return self
end

-- Sends the file range chunk by chunk; a file that shrank under us is a
-- failure, never a short part (Content-Length is already on the wire).
local function send_range(self, sock, on_chunk)
    local left = self.range
    while left > 0 do
        local data = self.file:read(math.min(M.CHUNK, left))
        if not data or #data == 0 then
            return nil, "READ_ERROR: the file ended " .. left .. " bytes early", "READ_ERROR"
        end
        local ok, err = sock:send(data)
        if not ok then return nil, err, "send" end
        left = left - #data
        on_chunk(#data)
    end
    return true
end

--- send(sock, on_chunk(n)) -> true | nil, msg, code ("send" as the code: a
-- socket error the caller names).
function Body:send(sock, on_chunk)
    if self.file then self.file:seek("set", self.offset) end -- sent again after a retry
    local first = self.head .. self.prefix
    local ok, err = sock:send(first)
    if not ok then return nil, err, "send" end
    on_chunk(#first)
    if self.file then
        local sent, msg, code = send_range(self, sock, on_chunk)
        if not sent then return nil, msg, code end
    end
    ok, err = sock:send(self.tail)
    if not ok then return nil, err, "send" end
    on_chunk(#self.tail)
    return true
end

function Body:close()
    if self.file then self.file:close(); self.file = nil end
end

return M
