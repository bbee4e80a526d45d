--- marketo-bulk completion bash: the bash completion script, made from the
-- commands' own flags (each command's FLAGS) and the object kinds of
-- marketo.objects, so that it never lists a flag a command does not take.
-- `make install` puts it where bash-completion looks.
local objects = require("marketo.objects")
local args = require("marketo.commands.args")

local M = { summary = "print the bash completion script (make install puts it in place)" }

M.usage = [[
usage: marketo-bulk completion bash

Prints a bash completion script for marketo-bulk: the commands, each command's
flags and the object kinds. `make install` installs it in
PREFIX/share/bash-completion/completions/.

Examples:
  marketo-bulk completion bash > marketo-bulk.bash   # then: source marketo-bulk.bash
  source <(marketo-bulk completion bash)              # in ~/.bashrc
]]

local FLAGS = { help = "boolean" }
M.FLAGS = FLAGS

-- A command's words after `--`: its flags, sorted, then -h and its short ones.
local function flags_of(mod)
    local list = {}
    for key in pairs(mod.FLAGS or {}) do
        -- --client-secret is there only to be refused with why: never offered
        if key ~= "client_secret" then list[#list + 1] = "--" .. key:gsub("_", "-") end
    end
    table.sort(list)
    list[#list + 1] = "-h"
    for _, short in ipairs(mod.SHORT or {}) do list[#list + 1] = short end
    return table.concat(list, " ")
end

--- The script, for the commands `names` (marketo.cli's list).
function M.script(names)
    local kinds = {}
    for _, kind in ipairs(objects.LIST) do kinds[#kinds + 1] = kind.name end
    local cases = {}
    for _, name in ipairs(names) do
        local mod = require("marketo.commands." .. name)
        cases[#cases + 1] = ("        %s) flags=%q ;;"):format(name, flags_of(mod))
    end
    return ([==[
# bash completion for marketo-bulk (made by `marketo-bulk completion bash`)
_marketo_bulk() {
    local cur=${COMP_WORDS[COMP_CWORD]} cmd=${COMP_WORDS[1]} flags=""
    if [ "$COMP_CWORD" -eq 1 ]; then
        COMPREPLY=($(compgen -W "%s help --help --version --verbose --debug" -- "$cur"))
        return
    fi
    case "$cmd" in
%s
        help) COMPREPLY=($(compgen -W "%s" -- "$cur")); return ;;
    esac
    if [[ $cur == -* ]]; then
        COMPREPLY=($(compgen -W "$flags" -- "$cur"))
    elif [ "$COMP_CWORD" -eq 2 ] && [[ " import status failures warnings " == *" $cmd "* ]]
    then
        COMPREPLY=($(compgen -W "%s" -f -- "$cur"))
    else
        COMPREPLY=($(compgen -f -- "$cur"))
    fi
}
complete -o filenames -F _marketo_bulk marketo-bulk
]==]):format(table.concat(names, " "), table.concat(cases, "\n"), table.concat(names, " "),
        table.concat(kinds, " "))
end

function M.main(argv, out, err)
    local flags, positional = args.parse(argv, 2, FLAGS)
    if not flags then return args.usage_error(err, "completion", positional) end
    if flags.help then out:write(M.usage); return 0 end
    if positional[1] ~= "bash" or #positional ~= 1 then
        return args.usage_error(err, "completion", "bash expected (the one shell it knows)")
    end
    out:write(M.script(require("marketo.cli").COMMANDS))
    return 0
end

return M
