--- marketo.config: a client's settings, from its options table and the environment.
--
-- Options win over a profile, and a profile over the environment:
-- MARKETO_BASE_URL (or MARKETO_MUNCHKIN_ID), MARKETO_CLIENT_ID,
-- MARKETO_CLIENT_SECRET. A profile (options.profile or MARKETO_PROFILE) is a
-- section of $XDG_CONFIG_HOME/marketo-bulk/profiles (~/.config/... without
-- it), in the INI form:
--
--   [prod]
--   munchkin_id = 123-ABC-456          ; or base_url = https://...mktorest.com
--   client_id = 3f1e...
--   client_secret_file = prod.secret   ; beside the profiles file, or absolute
--
-- (client_secret = ... also works). A profiles or secret file that others can
-- read is refused, with the chmod that fixes it. The base URL is the REST endpoint Marketo's
-- admin page shows (`https://123-ABC-456.mktorest.com/rest`); a trailing `/rest` or `/`
-- is dropped, because bulk paths start at `/bulk/v1/` and identity at `/identity/`.
local errors = require("marketo.errors")

local M = {}

local SECONDS = { "number", positive = true }

-- Every option a client accepts (marketo.options rules); unknown keys raise (a
-- typo such as `client_secert` must not silently fall back to the environment).
M.options = {
    base_url = "string", munchkin_id = "string", client_id = "string",
    client_secret = "string", transport = "table|userdata", http = "table",
    retry = "function", classes = { "table", values = { "string", one_of = errors.CLASSES } },
    clock = "function", sleep = "function",
    log = "function", timeout = SECONDS, upload_timeout = SECONDS,
    identity_timeout = SECONDS, token_margin = "number", env = "table",
    user_agent = "string", profile = "string",
}

M.defaults = {
    timeout = 60,           -- seconds for a JSON call (status, token)
    upload_timeout = 600,   -- seconds for an upload of up to 10 MB
    identity_timeout = 30,
    token_margin = 60,      -- renew this long before expiry (at most 10% of the lifetime)
}

-- 127.0.0.0/8, ::1 or localhost: a host whose traffic never leaves the machine.
local function loopback(host)
    host = host:lower()
    if host == "localhost" or host == "[::1]" then return true end
    local a, b, c = host:match("^127%.(%d+)%.(%d+)%.(%d+)$")
    return a ~= nil and tonumber(a) < 256 and tonumber(b) < 256 and tonumber(c) < 256
end

--- The base URL without a trailing `/` or `/rest`, or nil and why. Plain
-- http only for loopback: elsewhere the secret and the data would cross a
-- network in clear.
function M.normalize_base_url(url)
    local u = url:gsub("%s+$", ""):gsub("^%s+", "")
    u = u:gsub("/+$", "")
    u = u:gsub("/rest$", ""):gsub("/+$", "")
    local scheme, authority = u:match("^(https?)://([^/%s@]+)$")
    local host = authority and (authority:match("^(%[[^%]]*%])") or authority:match("^([^:]*)"))
    local port = host and authority:sub(#host + 1)
    if not scheme or host == "" or not (port == "" or port:match("^:%d+$")) then
        return nil, ("base URL %q is not of the form https://HOST[:PORT] (optionally "
            .. "ending in /rest)"):format(url)
    end
    if scheme == "http" and not loopback(host) then
        return nil, ("base URL %q: plain http is only for loopback (127.0.0.1, ::1, "
            .. "localhost); use https://"):format(url)
    end
    return u
end

local function getenv_from(env)
    if env then
        return function(name) return env[name] end
    end
    return os.getenv
end

local function nonempty(v)
    if v == nil or v == "" then return nil end
    return v
end

--- The variables that name a Marketo instance and its credentials.
M.ENV = { "MARKETO_BASE_URL", "MARKETO_MUNCHKIN_ID", "MARKETO_CLIENT_ID",
    "MARKETO_CLIENT_SECRET", "MARKETO_PROFILE" }

local PROFILE_KEYS = { base_url = true, munchkin_id = true, client_id = true,
    client_secret = true, client_secret_file = true }

-- The XDG base folders, and where each is when its variable is not set.
local XDG = { config = { "XDG_CONFIG_HOME", ".config" }, cache = { "XDG_CACHE_HOME", ".cache" },
    state = { "XDG_STATE_HOME", ".local/state" } }

--- dir(kind [, getenv]) -> our folder of that kind ("config", "cache" or
-- "state"): $XDG_<KIND>_HOME/marketo-bulk, else under $HOME; nil without either.
function M.dir(kind, getenv)
    getenv = getenv or os.getenv
    local xdg = XDG[kind]
    local base = getenv(xdg[1])
    if base == nil or base == "" then
        local home = getenv("HOME")
        if home == nil or home == "" then return nil end
        base = home .. "/" .. xdg[2]
    end
    return base .. "/marketo-bulk"
end

--- A value as a piece of a file name (an instance's host, an object's name).
function M.file_name(v)
    return (tostring(v):gsub("[^%w%.%-]", "_"))
end

--- The profiles file: $XDG_CONFIG_HOME/marketo-bulk/profiles.
function M.profiles_path(getenv)
    return (M.dir("config", getenv) or "/nonexistent/marketo-bulk") .. "/profiles"
end

-- A file holding a secret must be its owner's alone: nil, or the refusal.
local function private(path)
    local mode, msg = require("marketo.core").file_mode(path)
    if not mode then return msg end
    if mode % 64 ~= 0 then -- any bit for group or others (no bit ops on 5.1)
        return ("%s can be read by others (mode %o): run `chmod 600 %s`"):format(path, mode,
            path)
    end
    return nil
end

local function read_all(path)
    local f, msg = io.open(path, "rb")
    if not f then return nil, msg end
    local text = f:read("*a")
    f:close()
    return text
end

-- The sections of a profiles file: { name = { key = value } } | nil, msg.
local function parse_profiles(text, path)
    local out, section, n = {}, nil, 0
    for line in (text .. "\n"):gmatch("([^\n]*)\n") do
        n = n + 1
        line = line:gsub("^%s+", ""):gsub("%s*[;#].*$", ""):gsub("%s+$", "")
        local name = line:match("^%[%s*([^%]]-)%s*%]$")
        if name then
            section = {}
            out[name] = section
        elseif line ~= "" then
            local k, v = line:match("^([%w_]+)%s*=%s*(.-)$")
            if not k or not PROFILE_KEYS[k] or not section then
                return nil, ("%s:%d: expected [NAME] or one of base_url, munchkin_id, "
                    .. "client_id, client_secret, client_secret_file = VALUE"):format(path, n)
            end
            section[k] = v
        end
    end
    return out
end

--- profile(name, getenv) -> { base_url, munchkin_id, client_id, client_secret }
-- | nil, message: a profile of the profiles file, its secret read.
function M.profile(name, getenv)
    local path = M.profiles_path(getenv)
    local text, msg = read_all(path)
    if not text then
        return nil, ("profile '%s': no profiles file (%s); create it, or unset "
            .. "MARKETO_PROFILE / drop --profile"):format(name, msg)
    end
    local refusal = private(path)
    if refusal then return nil, "profile '" .. name .. "': " .. refusal end
    local all
    all, msg = parse_profiles(text, path)
    if not all then return nil, msg end
    local p = all[name]
    if not p then
        local names = {}
        for k in pairs(all) do names[#names + 1] = k end
        table.sort(names)
        return nil, ("profile '%s' is not in %s (it has: %s)"):format(name, path,
            #names > 0 and table.concat(names, ", ") or "none")
    end
    local out = { base_url = p.base_url, munchkin_id = p.munchkin_id, client_id = p.client_id,
        client_secret = p.client_secret }
    local file = p.client_secret_file
    if file then
        if file:sub(1, 2) == "~/" then file = (getenv or os.getenv)("HOME") .. file:sub(2) end
        if file:sub(1, 1) ~= "/" then file = path:match("^(.*)/") .. "/" .. file end
        refusal = private(file)
        if refusal then return nil, "profile '" .. name .. "': " .. refusal end
        local secret
        secret, msg = read_all(file)
        if not secret then return nil, ("profile '%s': %s"):format(name, msg) end
        out.client_secret = secret:match("^%s*(.-)%s*$")
    end
    return out
end

--- A function returning { base_url, client_id, client_secret } to use when
-- neither the options nor the environment name any Marketo; the runner sets
-- it to start its embedded sandbox on first use. nil in a plain library.
M.fallback = nil

-- `MARKETO_CLIENT_ID=` is a mistake (a variable exported from an empty
-- shell variable), never "not set": it would pick the sandbox or another
-- variable behind the user's back.
local function empty_message(name, sandbox)
    return ("%s is set but empty: unset it%s, or give it a value")
        :format(name, sandbox and " to use the embedded sandbox" or "")
end

--- The first of M.ENV set but empty, as a message naming it, or nil.
-- sandbox: whether unsetting them all means the embedded sandbox.
function M.empty_variable(getenv, sandbox)
    for _, name in ipairs(M.ENV) do
        if getenv(name) == "" then return empty_message(name, sandbox) end
    end
    return nil
end

-- An option's value, else the variable's: value | nil | nil, message.
local function setting(option, getenv, name)
    if nonempty(option) then return option end
    local v = getenv(name)
    if v == "" then return nil, empty_message(name, M.fallback ~= nil) end
    return v
end

local function with_fallback(options, getenv)
    if not M.fallback or options.base_url or options.munchkin_id or options.client_id
        or options.client_secret or options.env or options.profile then
        return options
    end
    for _, name in ipairs(M.ENV) do
        if getenv(name) ~= nil then return options end
    end
    local creds = M.fallback()
    if not creds then return options end
    local out = {}
    for k, v in pairs(options) do out[k] = v end
    out.base_url, out.client_id, out.client_secret =
        creds.base_url, creds.client_id, creds.client_secret
    return out
end

--- The resolved settings, or nil, message, "CONFIG".
function M.resolve(options)
    local getenv = getenv_from(options.env)
    options = with_fallback(options, getenv)
    local s = {}
    for k, v in pairs(M.defaults) do s[k] = v end
    for k, v in pairs(options) do
        if k ~= "env" then s[k] = v end
    end
    local v, msg = {}
    local name, prof = setting(options.profile, getenv, "MARKETO_PROFILE")
    if prof then return nil, prof, "CONFIG" end
    if name then
        prof, msg = M.profile(name, getenv)
        if not prof then return nil, msg, "CONFIG" end
    end
    s.profile = nil
    -- a profile that names its instance names it whole: no MARKETO_BASE_URL
    -- from the environment beside its munchkin id
    local named = prof and (prof.base_url or prof.munchkin_id)
    for _, k in ipairs({ "base_url", "munchkin_id", "client_id", "client_secret" }) do
        local given = options[k] or (prof and prof[k])
        if named and (k == "base_url" or k == "munchkin_id") then
            v[k] = given
        else
            v[k], msg = setting(given, getenv, "MARKETO_" .. k:upper())
            if msg then return nil, msg, "CONFIG" end
        end
    end
    local base, munchkin = v.base_url, v.munchkin_id
    if not base and munchkin then
        if not munchkin:match("^[%w%-]+$") then
            return nil, ("munchkin id %q is not like 123-ABC-456"):format(munchkin), "CONFIG"
        end
        base = "https://" .. munchkin .. ".mktorest.com"
    end
    if not base then
        return nil, "no Marketo instance: set MARKETO_BASE_URL (or MARKETO_MUNCHKIN_ID) "
            .. "or pass base_url", "CONFIG"
    end
    s.base_url, msg = M.normalize_base_url(base)
    if not s.base_url then return nil, msg, "CONFIG" end
    s.munchkin_id = nil
    s.client_id, s.client_secret = v.client_id, v.client_secret
    if not s.client_id then
        return nil, "no client id: set MARKETO_CLIENT_ID or pass client_id", "CONFIG"
    end
    if not s.client_secret then
        return nil, "no client secret: set MARKETO_CLIENT_SECRET or pass client_secret",
            "CONFIG"
    end
    return s
end

return M
