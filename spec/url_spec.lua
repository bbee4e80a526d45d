-- marketo.url: the one percent-encoder of paths, queries and forms.
local url = require("marketo.url")

describe("marketo.url", function()
    it("keeps RFC 3986's unreserved bytes and encodes every other one", function()
        assert.equal("aZ09-._~", url.encode("aZ09-._~"))
        assert.equal("a%20b%2Fc%3F%26%3D%2B%25%C3%A9", url.encode("a b/c?&=+%é"))
    end)

    it("writes whole numbers as integers, also floats under Lua 5.3+", function()
        assert.equal("42", url.encode(42.0))
        assert.equal("1.5", url.encode(1.5))
    end)

    it("builds a query in key order, empty without parameters", function()
        assert.equal("?format=csv&listId=7&lookupField=email",
            url.query({ lookupField = "email", format = "csv", listId = 7.0 }))
        assert.equal("", url.query({}))
        assert.equal("", url.query(nil))
    end)
end)
