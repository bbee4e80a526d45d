-- A CRM export into Marketo leads: columns renamed, values cleaned, rows
-- without an email left out, and a report that accounts for every row.
--
--   marketo-bulk run examples/crm-leads.lua [FILE]
--
-- With no MARKETO_* credentials in the environment this runs against the
-- embedded sandbox, so it is safe to try anywhere.
local import = require("marketo.import")

local source = arg[1] or "examples/data/crm-export.csv"
local work = os.getenv("MARKETO_DEMO_DIR") or "build/demo"
os.execute("mkdir -p " .. work)

local function title_case(s)
    return (s:lower():gsub("(%a)([%w']*)", function(a, b) return a:upper() .. b end))
end

local result, msg = import.run({
    object = "leads",
    lookup_field = "email",
    source = source,
    mapping = {
        email = function(row) return row["E-mail Address"]:lower() end,
        firstName = function(row) return title_case(row.First) end,
        lastName = function(row) return title_case(row.Last) end,
        company = "Account Name",
        title = "Job Title",
        leadScore = "Score",            -- Marketo rejects a score that is not a whole number
        phone = "Phone",
        country = "Country",
        leadSource = { value = "CRM export" },
    },
    filter = function(row) return row["E-mail Address"] ~= "" end,
    lenient = true,                      -- a malformed row is reported, not fatal
    part_bytes = 60000,                  -- small parts, to show the scheduler at work
    journal = work .. "/crm-leads.journal",
    report = work .. "/crm-leads.report.json",
    on_event = require("marketo.pipeline.progress").new({ out = io.stderr,
        tty = require("marketo.core").isatty(2) }),
})
if not result then
    io.stderr:write(msg, "\n")
    return 4
end
io.write(result.summary)
io.write("report: ", result.report_path, "\n")
for what, path in pairs(result.report.files or {}) do
    io.write(what, " rows, ready to fix and import again: ", path, "\n")
end
return result.exit
