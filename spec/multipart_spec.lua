local multipart = require("marketo.sandbox.multipart")

local CT = "multipart/form-data; boundary=XyZ"

-- A body as curl -F builds it: CRLF everywhere, "--" after the last boundary.
local function body(parts, closing)
    local out = {}
    for _, p in ipairs(parts) do
        out[#out + 1] = "--XyZ\r\n" .. p[1] .. "\r\n\r\n" .. p[2] .. "\r\n"
    end
    out[#out + 1] = closing or "--XyZ--\r\n"
    return table.concat(out)
end

local FIELD = { 'Content-Disposition: form-data; name="format"', "csv" }
local FILE = { 'Content-Disposition: form-data; name="file"; filename="leads.csv"\r\n'
    .. "Content-Type: text/csv", "email,firstName\r\na@example.com,Ann\r\n" }

describe("marketo.sandbox.multipart", function()
    describe("boundary", function()
        it("reads a plain or quoted boundary, whatever the case of the names", function()
            assert.equal("XyZ", multipart.boundary(CT))
            assert.equal("a b;c", multipart.boundary('Multipart/Form-Data; charset=utf-8; '
                .. 'BOUNDARY="a b;c"'))
            assert.equal("----WebKitFormBoundary7MA4", multipart.boundary(
                "multipart/form-data;boundary=----WebKitFormBoundary7MA4 "))
        end)

        it("fails for another media type or without a boundary", function()
            local b, why = multipart.boundary("text/csv; boundary=x")
            assert.is_nil(b)
            assert.equal("Content-Type is not multipart/form-data", why)
            assert.is_nil(multipart.boundary("multipart/form-data"))
            assert.is_nil(multipart.boundary('multipart/form-data; boundary=""'))
            assert.is_nil(multipart.boundary('multipart/form-data; boundary="XyZ'))
            assert.is_nil(multipart.boundary(nil))
        end)
    end)

    describe("parse", function()
        it("returns the parts with name, filename, content type and data", function()
            local parts = assert(multipart.parse(body({ FIELD, FILE }), CT))
            assert.equal(2, #parts)
            assert.equal("format", parts[1].name)
            assert.is_nil(parts[1].filename)
            assert.is_nil(parts[1].content_type)
            assert.equal("csv", parts[1].data)
            assert.equal("file", parts[2].name)
            assert.equal("leads.csv", parts[2].filename)
            assert.equal("text/csv", parts[2].content_type)
            assert.equal("text/csv", parts[2].headers["content-type"])
            assert.equal(FILE[2], parts[2].data)
            assert.equal(parts[2], multipart.find(parts, "file"))
            assert.is_nil(multipart.find(parts, "nope"))
        end)

        it("accepts a closing boundary without its trailing --", function()
            for _, closing in ipairs({ "--XyZ\r\n", "--XyZ" }) do
                local parts = assert(multipart.parse(body({ FIELD, FILE }, closing), CT))
                assert.equal(2, #parts)
                assert.equal(FILE[2], parts[2].data)
            end
        end)

        it("ignores a preamble and an epilogue", function()
            local parts = assert(multipart.parse("preamble\r\n" .. body({ FIELD })
                .. "epilogue --XyZ\r\n", CT))
            assert.equal(1, #parts)
            assert.equal("csv", parts[1].data)
        end)

        it("keeps data that looks like a boundary but is not one", function()
            local data = "a\r\n--XyZ-not\r\nb--XyZ\r\n--XyZZ\r\n--xyz\r\n\r\n--XyZ x"
            local parts = assert(multipart.parse(body({ { FIELD[1], data }, FIELD }), CT))
            assert.equal(data, parts[1].data)
            assert.equal("csv", parts[2].data)
        end)

        it("keeps every byte value and empty parts", function()
            local bytes = {}
            for i = 0, 255 do bytes[#bytes + 1] = string.char(i) end
            bytes = table.concat(bytes)
            local b = body({ { FILE[1], bytes }, { FIELD[1], "" } })
            local parts = assert(multipart.parse(b, CT))
            assert.equal(bytes, parts[1].data)
            assert.equal("", parts[2].data)
        end)

        it("accepts any part content type and unquoted or escaped names", function()
            local parts = assert(multipart.parse(body({
                { "content-disposition: form-data; name=plain; "
                  .. "filename=\"C:\\dir\\a \\\"q\\\".csv\"\r\n"
                  .. "Content-Type: Application/X-Whatever; x=1", "d" },
            }), CT))
            assert.equal("plain", parts[1].name)
            assert.equal('C:\\dir\\a "q".csv', parts[1].filename)
            assert.equal("application/x-whatever; x=1", parts[1].content_type)
        end)

        it("parses a 10 MB part quickly and intact", function()
            local big = ("0123456789abcdef\r\n"):rep(600000) -- 10.8 MB of short lines
            local t0 = os.clock()
            local parts = assert(multipart.parse(body({ FIELD, { FILE[1], big } }), CT))
            local took = os.clock() - t0
            assert.is_true(parts[2].data == big)
            assert.is_true(took < 0.25, "took " .. took)
        end)

        local function broken(b, ct)
            local parts, why = multipart.parse(b, ct or CT)
            assert.is_nil(parts)
            assert.is_string(why)
            return why
        end

        it("fails for a body that is not multipart", function()
            assert.equal("Content-Type is not multipart/form-data",
                broken(body({ FIELD }), "application/json"))
            assert.equal("no opening boundary", broken("email\r\na@b.c\r\n"))
            assert.equal("no body", broken(nil))
            assert.equal("no parts", broken("--XyZ--\r\n"))
        end)

        it("fails for a truncated body", function()
            local whole = body({ FIELD, FILE })
            assert.equal("part 2 is not terminated", broken(whole:sub(1, #whole - 12)))
            assert.equal("part headers not terminated", broken("--XyZ\r\nContent-Disp"))
        end)

        it("fails for parts without a usable Content-Disposition", function()
            assert.equal("part 1 has no Content-Disposition",
                broken(body({ { "Content-Type: text/csv", "x" } })))
            assert.equal("part 1: bad Content-Disposition",
                broken(body({ { "Content-Disposition: attachment; name=x", "x" } })))
            assert.equal("part 2: bad Content-Disposition",
                broken(body({ FIELD, { "Content-Disposition: form-data; filename=a", "x" } })))
            assert.equal("bad part header line", broken(body({ { "no colon here", "x" } })))
        end)

        it("fails for garbage after a boundary", function()
            assert.equal("bad boundary line", broken("--XyZ junk\r\n"))
        end)
    end)
end)
