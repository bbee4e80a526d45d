std = "min"
max_line_length = 100
include_files = {
    "lua/**/*.lua", "spec/**/*.lua", "examples/**/*.lua", "bench/**/*.lua", "tools/**/*.lua",
    "*.rockspec", ".busted", ".luacheckrc",
}
exclude_files = { "build/**", "lua_modules/**" }
files["spec/**/*.lua"] = { std = "+busted" }
files["tools/**/*.lua"] = { std = "lua54" }
files["lua/marketo/cli.lua"] = { std = "lua54" }
files["lua/marketo/commands/**/*.lua"] = { std = "lua54" }
files["lua/marketo/sandbox/**/*.lua"] = { std = "lua54" }
files["bench/**/*.lua"] = { std = "lua54" }
files["examples/**/*.lua"] = { std = "lua54" }
files["*.rockspec"] = { std = "min", globals = {
    "rockspec_format", "package", "version", "source", "description", "dependencies",
    "external_dependencies", "build", "test_dependencies", "test",
} }
files["lua/marketo/resty/**/*.lua"] = { std = "ngx_lua" }
files["examples/openresty/**/*.lua"] = { std = "ngx_lua" }
