-- Replays every request/response pair Marketo's docs print in full
-- (spec/fixtures/marketo-docs-pairs.lua) against a sandbox with its default
-- options, and compares the answers field by field: where the docs speak, the
-- sandbox answers as they say.
local sandbox = require("spec.support.sandbox")
local pairs_doc = dofile("spec/fixtures/marketo-docs-pairs.lua")

local function whole(v)
    return type(v) == "number" and v == math.floor(v)
end

-- Ids, tokens and times: each checked for its form only.
local NORMALISED = {
    requestId = function(v) return type(v) == "string" and v:match("^%x+#%x+$") ~= nil end,
    batchId = function(v) return whole(v) and v > 0 end,
    importId = function(v, parent) return v == tostring(parent.batchId) end,
    access_token = function(v)
        return type(v) == "string" and v:match("^%x+%-%x+%-%x+%-%x+%-%x+:%w+$") ~= nil
    end,
    expires_in = function(v) return whole(v) and v > 0 and v <= 3599 end,
    scope = function(v) return type(v) == "string" and v ~= "" end,
    importTime = function(v) return type(v) == "string" and v:match("^%d+ second%(s%)$") ~= nil end,
}

local function show(v)
    return type(v) == "string" and ("%q"):format(v) or tostring(v)
end

-- Every difference between the printed answer and the sandbox's, as
-- "path: printed X, got Y" lines; both ways, so a field the sandbox adds
-- counts too.
local function compare(want, got, path, out, parent)
    local key = path:match("([%w_]+)$")
    if NORMALISED[key] and parent then
        if not NORMALISED[key](got, parent) then
            out[#out + 1] = ("%s: printed %s, got %s (not of its form)"):format(path, show(want),
                show(got))
        end
    elseif type(want) == "table" and type(got) == "table" then
        for k, v in pairs(want) do compare(v, got[k], path .. "." .. k, out, got) end
        for k, v in pairs(got) do
            if want[k] == nil then
                out[#out + 1] = ("%s.%s: not printed, got %s"):format(path, k, show(v))
            end
        end
    elseif want ~= got then
        out[#out + 1] = ("%s: printed %s, got %s"):format(path, show(want), show(got))
    end
    return out
end

local sb, token
sandbox.each_test({ speed = 0 }, function(s) sb, token = s, s.token() end)

local function fill(path, batch_id)
    return (path:gsub("{([%w_]+)}", {
        batchId = tostring(batch_id), programId = tostring(pairs_doc.PROGRAM_ID),
        client_id = sb.client_id, client_secret = sb.client_secret,
    }))
end

local function send(step, batch_id)
    local path = fill(step.path, batch_id)
    if step.method == "POST" then
        local body, ctype = sandbox.multipart(step.fields, step.file)
        return sb.http{ method = "POST", path = path, body = body,
            headers = { ["content-type"] = ctype, authorization = "Bearer " .. token } }
    end
    if step.wait then sb.wait(path, token) end
    local headers = {}
    if not path:find("^/identity/") then headers.authorization = "Bearer " .. token end
    return sb.http{ path = path, headers = headers }
end

local function replay(scenario)
    local batch_id
    for i, step in ipairs(scenario) do
        local status, headers, body = send(step, batch_id)
        local where = step.doc .. ": " .. step.method .. " " .. step.path
        if step.status then
            assert.equal(step.status, status, where)
        elseif step.text then
            assert.equal(200, status, where)
            assert.equal("text/csv;charset=UTF-8", headers["content-type"], where)
            assert.equal(step.text, body, where)
        else
            assert.equal(200, status, where)
            assert.truthy(headers["content-type"]:find("^application/json;charset=UTF%-8"), where)
            local got = sandbox.decode(body)
            if step.json then
                assert.same({}, compare(step.json, got, "answer", {}), where)
            else
                assert.equal(true, got.success, where .. ": " .. body)
            end
            if i == 1 and got.result then batch_id = got.result[1].batchId end
        end
    end
end

describe("marketo.sandbox against the pairs Marketo's docs print", function()
    for _, scenario in ipairs(pairs_doc.SCENARIOS) do
        it("answers as printed: " .. scenario.name, function()
            replay(scenario)
        end)
    end

    it("compares field by field, both ways (a changed or added field is a difference)",
        function()
        local want = { requestId = "d01f#1", success = true,
                       result = { { batchId = 1, importId = "1", status = "Queued" } } }
        assert.same({}, compare(want, { requestId = "a#b", success = true,
            result = { { batchId = 7, importId = "7", status = "Queued" } } }, "answer", {}))
        assert.same({ 'answer.result.1.status: printed "Queued", got "Importing"',
                      'answer.result.1.extra: not printed, got 1' },
            compare(want, { requestId = "a#b", success = true,
                result = { { batchId = 7, importId = "7", status = "Importing", extra = 1 } } },
                "answer", {}))
        assert.same({ 'answer.result.1.importId: printed "1", got "8" (not of its form)' },
            compare(want, { requestId = "a#b", success = true,
                result = { { batchId = 7, importId = "8", status = "Queued" } } }, "answer", {}))
    end)
end)
