--- marketo.commands.input: the files `import` is given, made into what the
-- CSV engine reads (UTF-8 text, on disk) before anything else looks at them:
-- `-` (standard input) spooled to a file, a gzip file (known by its first
-- bytes, whatever its name) decompressed, and --encoding converting cp1252,
-- latin1 or UTF-16 to UTF-8. What it writes goes to JOURNAL.input/, 0600.
-- A UTF-16 or Latin-1 file read without --encoding is a message naming what
-- the file is and the flag that reads it.
local core = require("marketo.core")
local paths = require("marketo.commands.paths")

local M = {}

-- --encoding's words, as iconv names them (UTF-16 is settled per file).
M.ENCODINGS = { cp1252 = "CP1252", latin1 = "ISO-8859-1", ["utf-16"] = "UTF-16" }
M.ENCODING_NAMES = "cp1252, latin1 or utf-16"

local SNIFF = 4096

local function head(path)
    local f = io.open(path, "rb")
    if not f then return "" end
    local bytes = f:read(SNIFF) or ""
    f:close()
    return bytes
end

-- What the first bytes say: "gzip", "UTF-16LE" / "UTF-16BE" / "UTF-16" (a
-- byte-order mark), "latin1" (not UTF-8, every byte a character) or nil.
local function sniff(bytes)
    if bytes:sub(1, 2) == "\31\139" then return "gzip" end
    if bytes:sub(1, 2) == "\255\254" or bytes:sub(1, 2) == "\254\255" then return "UTF-16" end
    local even, odd, n = 0, 0, math.min(#bytes, 256)
    for i = 1, n do
        if bytes:byte(i) == 0 then
            if i % 2 == 0 then even = even + 1 else odd = odd + 1 end
        end
    end
    if even > n / 4 then return "UTF-16LE" end -- "e\0m\0a\0": ASCII in UTF-16LE
    if odd > n / 4 then return "UTF-16BE" end
    -- a cut at SNIFF bytes may split a UTF-8 sequence: only what comes before it
    local valid_to = utf8.len(bytes)
    if valid_to == nil then
        local _, bad = utf8.len(bytes)
        if #bytes < SNIFF or bad < #bytes - 3 then return "latin1" end
    end
    return nil
end

local function basename(path)
    return path:match("([^/]*)$")
end

local Input = {}
Input.__index = Input

function Input:folder()
    if not self.made then
        -- beside the journal, which must have a folder to go to: none is made for it
        local ok, msg = paths.output(self.journal, "the journal")
        if not ok then return nil, msg, "JOURNAL" end
        local code
        ok, msg, code = core.mkdir(self.dir)
        if not ok then return nil, msg, code end
        self.made = true
    end
    return self.dir
end

function Input:target(i, name)
    local dir, msg, code = self:folder()
    if not dir then return nil, msg, code end
    local path = ("%s/%02d-%s"):format(dir, i, name)
    self.written[#self.written + 1] = path
    return path
end

-- Standard input, spooled whole: the plan reads a file twice (to check,
-- then to send), and a resumed import needs its bytes again.
function Input:spool(i)
    local dst, msg, code = self:target(i, "stdin")
    if not dst then return nil, msg, code end
    local ok
    ok, msg, code = core.write_file(dst, "") -- made 0600 before a row is in it
    if not ok then return nil, msg, code end
    local f = assert(io.open(dst, "ab"))
    while true do
        local chunk = io.stdin:read(1 << 16)
        if not chunk then break end
        local written, werr = f:write(chunk)
        if not written then
            f:close()
            return nil, ("ENOSPC: %s: %s"):format(dst, werr), "ENOSPC"
        end
    end
    local closed, cerr = f:close()
    if not closed then return nil, ("ENOSPC: %s: %s"):format(dst, cerr), "ENOSPC" end
    return dst
end

function Input:gunzip(i, path)
    local dst, msg, code = self:target(i, (basename(path):gsub("%.t?gz$", "")))
    if not dst then return nil, msg, code end
    local ok
    ok, msg, code = core.gunzip(path, dst)
    if not ok then return nil, msg, code end
    return dst
end

function Input:convert(i, path, shown, from)
    local dst, msg, code = self:target(i, basename(shown) .. ".utf-8")
    if not dst then return nil, msg, code end
    local ok
    ok, msg, code = core.to_utf8(path, dst, from)
    if not ok then
        return nil, msg .. ": check --encoding", code
    end
    return dst
end

-- One source made readable: its path to plan from | nil, msg, code.
function Input:source(i, path)
    local shown = path
    if path == "-" then
        local msg, code
        path, msg, code = self:spool(i)
        if not path then return nil, msg, code end
        shown = "standard input"
    end
    local kind = sniff(head(path))
    if kind == "gzip" then
        local msg, code
        path, msg, code = self:gunzip(i, path)
        if not path then return nil, msg, code end
        kind = sniff(head(path))
    end
    local enc = self.encoding
    if kind and kind:match("^UTF%-16") then
        if enc ~= "utf-16" then
            return nil, ("ENCODING: %s is UTF-16 text, not UTF-8: --encoding utf-16 reads it")
                :format(shown), "ENCODING"
        end
        return self:convert(i, path, shown, kind)
    elseif enc == "utf-16" then
        return nil, ("ENCODING: %s does not look like UTF-16 (no byte-order mark, no NUL "
            .. "bytes between letters): check --encoding"):format(shown), "ENCODING"
    elseif enc then
        return self:convert(i, path, shown, M.ENCODINGS[enc])
    elseif kind == "latin1" then
        return nil, M.latin1(shown), "ENCODING"
    end
    return path
end

--- The message for a file that is not UTF-8 and looks Latin-1 or cp1252.
function M.latin1(shown)
    return ("ENCODING: %s is not UTF-8: it looks like Latin-1 or Windows-1252 text; "
        .. "--encoding cp1252 (or latin1) reads it"):format(shown)
end

--- prepare(spec, encoding) -> input | nil, msg, code: spec.source made
-- readable in place; spec.journal set where the user's files are (never in
-- JOURNAL.input/), so a rerun finds it.
function M.prepare(spec, encoding)
    local first = spec.source[1]
    spec.journal = spec.journal or (first == "-" and "stdin.journal" or first .. ".journal")
    local input = setmetatable({ dir = spec.journal .. ".input", journal = spec.journal,
        encoding = encoding, written = {} }, Input)
    for i, path in ipairs(spec.source) do
        local readable, msg, code = input:source(i, path)
        if not readable then return nil, msg, code end
        spec.source[i] = readable
    end
    return input
end

--- input:cleanup(): what prepare wrote, removed (after a dry run, which
-- keeps no copy of any row).
function Input:cleanup()
    if not self.made then return end
    for _, path in ipairs(self.written) do os.remove(path) end
    os.remove(self.dir)
end

return M
