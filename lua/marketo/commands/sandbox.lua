--- marketo-bulk sandbox [options]: serve a local Marketo on 127.0.0.1 and print
-- the three lines a user would export. Stops on SIGINT/SIGTERM.
local core = require("marketo.core")
local config = require("marketo.sandbox.config")
local args = require("marketo.commands.args")

local M = {
    summary = "serve a local Marketo (Identity + Bulk Import) on 127.0.0.1",
    usage = "usage: marketo-bulk sandbox [--config FILE.json] [--port N] [--client-id X]"
        .. " [--client-secret Y] [options]\n",
}

-- Its flags, for the shell's completion: --config and the sandbox's options.
M.FLAGS = { config = "string", help = "boolean" }
for _, o in ipairs(config.OPTIONS) do M.FLAGS[o[1]] = o[2] end

local function help()
    return M.usage .. "\nPrints MARKETO_BASE_URL, MARKETO_CLIENT_ID and MARKETO_CLIENT_SECRET"
        .. " once it accepts\nconnections. Inspection and control: /__sandbox/ (see"
        .. " doc/sandbox.md).\n--config FILE.json (first) sets options from a JSON object;"
        .. " flags win.\n\noptions (--name value, --name=value; a bare boolean flag"
        .. " means true):\n" .. config.help() .. "\nExamples:\n"
        .. "  marketo-bulk sandbox --port 8080\n"
        .. "  marketo-bulk sandbox --port 0 --error-rate 0.1 --speed 500\n"
end

-- Values the sandbox's own types (numbers from 0 up) let through but that
-- cannot work: a port past 65535, no call or job ever allowed (a client
-- would wait for ever), a share over 1.
local KINDS = {
    port = "port", token_ttl = "seconds", rate_window = "seconds", batch_days = "positive",
    rate_limit = "count", max_in_flight = "count", max_importing = "count",
    max_queue = "count", max_file_bytes = "count", error_rate = "share", drop_rate = "share",
    lost_rate = "share", slow_rate = "share", job_fail_rate = "share",
}

-- The first value KINDS refuses, as a message; label(name) names its source.
local function refusal(changes, label)
    for _, o in ipairs(config.OPTIONS) do
        local name, v = o[1], changes[o[1]]
        if KINDS[name] and v ~= nil then
            local msg = args.refusal(label(name), KINDS[name], v)
            if msg then return msg end
        end
    end
    return nil
end

-- The options of the command line, over those of --config FILE.json: flags
-- win, so a script can reuse one file and vary a value. Or nil, msg, usage?
local function options_of(argv)
    local file
    if argv[2] == "--config" then
        file = argv[3]
        table.remove(argv, 2)
        table.remove(argv, 2)
    end
    local changes, msg = config.parse_args(argv, 2)
    if not changes then return nil, msg, true end
    msg = refusal(changes, function(name) return "--" .. name:gsub("_", "-") end)
    if msg then return nil, msg, true end
    if file then
        local from_file
        from_file, msg = config.load_file(file)
        if not from_file then return nil, msg end
        msg = refusal(from_file, function(name) return ("%s: %s"):format(file, name) end)
        if msg then return nil, msg end
        for k, v in pairs(from_file) do
            if changes[k] == nil then changes[k] = v end
        end
    end
    return changes
end

function M.main(argv, out, err)
    if argv[2] == "--help" or argv[2] == "-h" then
        out:write(help())
        return 0
    end
    local changes, msg, with_usage = options_of(argv)
    local sb
    if changes then sb, msg = require("marketo.sandbox").new(changes) end
    if not sb then
        if with_usage then return args.usage_error(err, "sandbox", msg) end
        err:write("marketo-bulk sandbox: ", msg, "\n")
        return 2
    end
    core.catch_signals()
    local ok
    ok, msg = sb:serve{ on_ready = function(base_url)
        out:write("MARKETO_BASE_URL=", base_url, "\n",
                  "MARKETO_CLIENT_ID=", sb.conf.client_id, "\n",
                  "MARKETO_CLIENT_SECRET=", sb.conf.client_secret, "\n")
        io.stdout:flush()
    end }
    if not ok then
        err:write("marketo-bulk sandbox: ", msg, "\n")
        return 1
    end
    return 0
end

return M
