-- marketo.json: decode keeps whole numbers whole; decode_file reads a file's
-- JSON, its failures naming the file. Also marketo.pipeline.rejects.each, which
-- reads the JSON array of an older journal's rejects through it.
local json = require("marketo.json")
local rejects = require("marketo.pipeline.rejects")
local files = require("spec.support.files")

local function literal(s)
    return (s:gsub("%p", "%%%0"))
end

describe("marketo.json.decode_file", function()
    local path
    files.temp_each(function(p) path = p end)

    it("reads a file's object or array, whole numbers whole", function()
        files.write(path, '{"batchId": 3404, "rows": [1, 2]}')
        local doc = json.decode_file(path)
        assert.same({ batchId = 3404, rows = { 1, 2 } }, doc)
        assert.equal("3404", tostring(doc.batchId))
        files.write(path, "[]")
        assert.same({}, json.decode_file(path))
    end)

    it("names the file that is missing, or what it does not hold", function()
        local doc, msg = json.decode_file(path .. ".missing")
        assert.is_nil(doc)
        assert.matches("^" .. literal(path .. ".missing") .. ": ", msg)
        files.write(path, "3")
        doc, msg = json.decode_file(path, "the JSON the import wrote")
        assert.is_nil(doc)
        assert.equal(path .. ": not the JSON the import wrote", msg)
        files.write(path, "{oops")
        doc, msg = json.decode_file(path)
        assert.is_nil(doc)
        assert.matches("^" .. literal(path) .. ": .", msg)
    end)
end)

describe("marketo.pipeline.rejects.each", function()
    local path
    files.temp_each(function(p) path = p .. ".json" end)
    after_each(function() os.remove(path) end)

    it("reads an older journal's rejects.json array, in order", function()
        files.write(path, '[{"line": 2, "code": "CSV_FIELD_COUNT"}, {"line": 9}]')
        local seen = {}
        assert.is_true(rejects.each(path, function(rej) seen[#seen + 1] = rej.line end))
        assert.same({ 2, 9 }, seen)
        files.write(path, '{"line": 2')
        local ok, msg = rejects.each(path, function() end)
        assert.is_nil(ok)
        assert.equal(path .. ": not the JSON the import wrote", msg)
    end)
end)
