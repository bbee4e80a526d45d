-- marketo.core's file helpers for what an import reads: mkdir (no shell),
-- file_mode (a profile's privacy), is_folder, gunzip (zlib) and to_utf8 (iconv). Run under
-- ASan+UBSan and LuaJIT too.
local core = require("marketo.core")
local files = require("spec.support.files")

local read = files.read

local function mode_of(path)
    local p = io.popen("stat -c %a " .. files.q(path))
    local m = p:read("*l")
    p:close()
    return m
end

describe("marketo.core input helpers", function()
    local dir
    before_each(function() dir = files.tmpdir() end)
    after_each(function() files.rmdir(dir) end)

    describe("mkdir", function()
        it("makes a folder and its parents, 0700, whatever the name", function()
            local path = dir .. "/-a/it's $(x)/b"
            assert.is_true(core.mkdir(path))
            assert.is_true(core.mkdir(path .. "/")) -- there already: fine
            assert.equal("700", mode_of(path))
        end)

        it("names what is in the way", function()
            files.write(dir .. "/file", "")
            local ok, msg, code = core.mkdir(dir .. "/file/sub")
            assert.is_nil(ok)
            assert.equal("IO_ERROR", code)
            assert.equal(("IO_ERROR: %s/file/sub: Not a directory"):format(dir), msg)
            assert.has_error(function() core.mkdir("") end)
        end)
    end)

    describe("file_mode", function()
        it("gives a file's permission bits, and names a missing file", function()
            files.write(dir .. "/f", "")
            os.execute("chmod 640 " .. files.q(dir .. "/f"))
            assert.equal(416, core.file_mode(dir .. "/f")) -- 0640
            local mode, msg, code = core.file_mode(dir .. "/none")
            assert.is_nil(mode)
            assert.equal("ENOENT", code)
            assert.matches("/none: No such file or directory", msg, 1, true)
        end)
    end)

    describe("is_folder", function()
        it("is true of a folder only: not of a file, a missing path, or a file's child",
            function()
            files.write(dir .. "/f", "")
            assert.is_true(core.is_folder(dir))
            assert.is_false(core.is_folder(dir .. "/f"))
            assert.is_false(core.is_folder(dir .. "/none"))
            assert.is_false(core.is_folder(dir .. "/f/x"))
        end)
    end)

    describe("gunzip", function()
        it("decompresses every member, to a file only its owner reads", function()
            files.write(dir .. "/a", "email\na@x.com\n")
            os.execute(("gzip -c %s > %s; gzip -c %s >> %s"):format(files.q(dir .. "/a"),
                files.q(dir .. "/a.gz"), files.q(dir .. "/a"), files.q(dir .. "/a.gz")))
            assert.equal(28, core.gunzip(dir .. "/a.gz", dir .. "/out"))
            assert.equal("email\na@x.com\nemail\na@x.com\n", read(dir .. "/out"))
            assert.equal("600", mode_of(dir .. "/out"))
        end)

        it("refuses a file cut short, leaving nothing behind", function()
            files.write(dir .. "/a", string.rep("email,x\n", 5000))
            os.execute(("gzip -c %s | head -c 100 > %s"):format(files.q(dir .. "/a"),
                files.q(dir .. "/a.gz")))
            local n, msg, code = core.gunzip(dir .. "/a.gz", dir .. "/out")
            assert.is_nil(n)
            assert.equal("GZIP", code)
            assert.matches("a.gz: not a whole gzip file", msg, 1, true)
            assert.is_nil(read(dir .. "/out"))
        end)
    end)

    describe("to_utf8", function()
        it("converts cp1252 and UTF-16 across its chunks", function()
            local big = string.rep("Zo\235 \128\n", 40000) -- ë and the euro sign
            files.write(dir .. "/w", big)
            assert.is_true(core.to_utf8(dir .. "/w", dir .. "/u", "CP1252"))
            assert.equal(string.rep("Zo\195\171 \226\130\172\n", 40000), read(dir .. "/u"))
            files.write(dir .. "/le", "\255\254" .. string.rep("a\0\235\0", 50000))
            assert.is_true(core.to_utf8(dir .. "/le", dir .. "/u", "UTF-16"))
            assert.equal(string.rep("a\195\171", 50000), read(dir .. "/u"))
        end)

        it("names a byte the encoding lacks, and one cut off at the end", function()
            files.write(dir .. "/w", "ab\129c")
            local ok, msg, code = core.to_utf8(dir .. "/w", dir .. "/u", "CP1252")
            assert.is_nil(ok)
            assert.equal("ENCODING", code)
            assert.equal(("ENCODING: %s/w: byte 0x81 at offset 2 is not CP1252"):format(dir), msg)
            assert.is_nil(read(dir .. "/u"))
            files.write(dir .. "/le", "\255\254a\0b")
            ok, msg = core.to_utf8(dir .. "/le", dir .. "/u", "UTF-16")
            assert.is_nil(ok)
            assert.matches("at offset 4 is not UTF%-16", msg)
        end)
    end)
end)
