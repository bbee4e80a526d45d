-- The README's Lua examples must at least compile: an example that rotted
-- is worse than none.
describe("README.md", function()
    it("has Lua examples that all compile", function()
        local f = assert(io.open("README.md"))
        local text = f:read("a")
        f:close()
        local n = 0
        for block in text:gmatch("```lua\n(.-)```") do
            n = n + 1
            local chunk, err = load(block, "README.md block " .. n)
            assert(chunk, err)
        end
        assert.is_true(n >= 2)
    end)

    it("opens with the two commands", function()
        local f = assert(io.open("README.md"))
        local text = f:read("a")
        f:close()
        local first = text:match("```sh\n(.-)```")
        assert.matches("^make demo", first)
        assert.matches("\nmake test", first)
    end)
end)
