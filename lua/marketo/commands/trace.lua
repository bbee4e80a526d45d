--- --verbose and --debug (before the command): each HTTP exchange on stderr as it
-- ends, one line (method, path, status, requestId, time, bytes), and with
-- --debug its request and response headers. Nothing secret shows: the query's
-- secrets and the values of Authorization and cookie headers are masked, and
-- no body is printed (Identity's answer holds the token).
local errors = require("marketo.errors")
local http = require("marketo.http")

local M = {}

-- Headers whose value is a credential, whatever it looks like.
local CREDENTIALS = { authorization = true, cookie = true, ["set-cookie"] = true,
    ["proxy-authorization"] = true }

local function masked(name, value)
    if CREDENTIALS[name:lower()] then
        local scheme = value:match("^(%a+) ")
        return scheme and (scheme .. " ***") or "***"
    end
    return errors.redact(value)
end

local function size(n)
    if n >= 1e6 then return ("%.1f MB"):format(n / 1e6) end
    if n >= 1e3 then return ("%.1f kB"):format(n / 1e3) end
    return ("%d B"):format(n)
end

--- lines(exchange, headers) -> { text }: what --verbose (and, with headers,
-- --debug) prints for one exchange (see marketo.http's trace).
function M.lines(x, headers)
    local path = errors.redact((x.url:gsub("^%a+://[^/]*", "")))
    local out = { ("http: %s %s %s%s %.3f s, sent %s, received %s"):format(x.method, path,
        x.status and tostring(x.status) or tostring(x.code),
        x.request_id and (" requestId " .. x.request_id) or "", x.seconds or 0,
        size(x.sent or 0), size(x.received or 0)) }
    if headers then
        for _, line in ipairs(x.request_headers or {}) do
            local name, value = line:match("^([^:]*):%s*(.*)$")
            out[#out + 1] = ("  > %s: %s"):format(name, masked(name, value))
        end
        local names = {}
        for name in pairs(x.response_headers or {}) do names[#names + 1] = name end
        table.sort(names)
        for _, name in ipairs(names) do
            out[#out + 1] = ("  < %s: %s"):format(name, masked(name, x.response_headers[name]))
        end
    end
    return out
end

--- start(err, headers): every exchange of this process to `err` from now on.
function M.start(err, headers)
    http.trace = function(x)
        err:write(table.concat(M.lines(x, headers), "\n"), "\n")
    end
end

function M.stop()
    http.trace = nil
end

return M
