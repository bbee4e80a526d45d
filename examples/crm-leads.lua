-- A CRM export into Marketo leads: columns renamed, values cleaned, rows
-- without an email left out, and a report that accounts for every row.
--   marketo-bulk run examples/crm-leads.lua [FILE]
-- With no MARKETO_* credentials in the environment this runs against the
-- embedded sandbox. The journal and the reports go to build/demo (or
-- $MARKETO_DEMO_DIR), never next to the source.
local import = require("marketo.import")

local work = os.getenv("MARKETO_DEMO_DIR") or "build/demo"
os.execute("mkdir -p '" .. work .. "'")

local function title_case(s)
    return (s:lower():gsub("(%a)([%w']*)", function(a, b) return a:upper() .. b end))
end

local result, msg = import.run({
    object = "leads",
    lookup_field = "email",
    source = arg[1] or "examples/data/crm-export.csv",
    mapping = {
        email = function(row) return row["E-mail Address"]:lower() end,
        firstName = function(row) return title_case(row.First) end,
        lastName = function(row) return title_case(row.Last) end,
        company = "Account Name",           -- a column, renamed
        title = "Job Title",
        leadScore = "Score",                -- Marketo fails a score that is not a whole number
        phone = "Phone",
        country = "Country",
        leadSource = { value = "CRM export" },  -- a constant
    },
    filter = function(row) return row["E-mail Address"] ~= "" end,
    lenient = true,                         -- a malformed row is reported, not fatal
    part_bytes = 60000,                     -- small parts, to show the scheduler at work
    journal = work .. "/crm-leads.journal",
    report = work .. "/crm-leads.report.json",
})
if not result then
    io.stderr:write(msg, "\n")
    return 4
end
io.write(result.summary)
local files = result.report.files
io.write("report: ", result.report_path, "; for people: ", files.html, "\n")
for _, what in ipairs({ "failed", "warned", "rejected" }) do
    if files[what] then io.write(what, " rows: ", files[what], "\n") end
end
return result.exit
