--- marketo.pipeline.html: the report as one self-contained page (REPORT.html,
-- next to the JSON one): rows by outcome, the jobs on a timeline (the two import
-- slots; each part queued, then importing), failures, warnings and rejects
-- grouped by reason with their lines, and the API calls by kind. No network:
-- no link, font, image or script from elsewhere, and a Content-Security-Policy
-- that forbids them. A small inline script reads back the numbers the page
-- shows into #rendered (JSON), so a test can compare them with the JSON report.
--
--   local page = html.render(doc)   -- doc: report:document(...) with its parts
local M = {}

local ESCAPES = { ["&"] = "&amp;", ["<"] = "&lt;", [">"] = "&gt;", ['"'] = "&quot;",
    ["'"] = "&#39;" }

local function esc(v)
    return (tostring(v == nil and "" or v):gsub("[&<>\"']", ESCAPES))
end

local LABELS = {
    { "read", "read" }, { "imported", "imported" }, { "warned", "imported with warnings" },
    { "failed", "failed" }, { "filtered", "filtered out" },
    { "rejected", "rejected (malformed or invalid)" }, { "unsent", "not sent" },
    { "pending", "uploaded, outcome pending (resume to learn it)" },
}

local COLORS = { imported = "#2e7d32", warned = "#f9a825", failed = "#c62828",
    filtered = "#78909c", rejected = "#6a1b9a", unsent = "#bdbdbd", pending = "#1565c0" }

local function rows_section(rows, out)
    out[#out + 1] = '<h2>Rows</h2><table id="rows"><tr><th>outcome</th><th>rows</th></tr>'
    for _, l in ipairs(LABELS) do
        out[#out + 1] = ('<tr><td>%s</td><td class="n" data-outcome="%s">%d</td></tr>')
            :format(esc(l[2]), l[1], rows[l[1]] or 0)
    end
    out[#out + 1] = '</table><div class="bar">'
    local read = math.max(rows.read or 0, 1)
    for _, l in ipairs(LABELS) do
        local n = rows[l[1]] or 0
        if COLORS[l[1]] and n > 0 then
            out[#out + 1] = ('<span style="width:%.3f%%;background:%s" title="%s: %d"></span>')
                :format(100 * n / read, COLORS[l[1]], esc(l[2]), n)
        end
    end
    out[#out + 1] = "</div>"
end

-- Each part's times: sent, uploaded (queued), importing, finished; and the import
-- slot it held. Marketo runs the queue in order on two slots, so a part starts
-- importing when it is uploaded and a slot is free; a job that ended before a
-- poll saw it importing gets that estimate (seen = false).
local function timed_parts(parts)
    local list, t0, t1 = {}, math.huge, -math.huge
    for _, p in ipairs(parts) do
        local from, to = p.uploaded_at or p.sent_at, p.finished_at
        if from and to then
            local start = p.importing_at or from
            list[#list + 1] = { part = p.part, sent = p.sent_at or from, queued = from,
                importing = start, finished = to, status = p.status, rows = p.rows,
                seen = p.importing_at ~= nil }
            t0, t1 = math.min(t0, p.sent_at or from), math.max(t1, to)
        end
    end
    table.sort(list, function(a, b) return a.queued < b.queued end)
    local free = { -math.huge, -math.huge }
    for _, p in ipairs(list) do
        local slot = free[1] <= free[2] and 1 or 2
        if not p.seen then
            p.importing = math.min(math.max(p.queued, free[slot]), p.finished)
        end
        p.slot, free[slot] = slot, p.finished
    end
    table.sort(list, function(a, b) return a.part < b.part end)
    return list, t0, t1
end

local function timeline_section(parts, out)
    out[#out + 1] = "<h2>Jobs</h2>"
    local list, t0, t1 = timed_parts(parts)
    if #list == 0 then
        out[#out + 1] = "<p>No job finished in this run.</p>"
        return
    end
    local span = math.max(t1 - t0, 0.001)
    local W, ROW, LEFT = 900, 18, 110
    local height = (#list + 3) * ROW + 10
    local function x(t) return LEFT + (t - t0) / span * (W - LEFT - 10) end
    out[#out + 1] = ('<svg id="timeline" width="%d" height="%d" role="img">'):format(W, height)
    for slot = 1, 2 do
        local y = (slot - 1) * ROW
        out[#out + 1] = ('<text x="0" y="%d">import slot %d</text>'):format(y + 13, slot)
        for _, p in ipairs(list) do
            if p.slot == slot then
                out[#out + 1] = ('<rect class="%s" x="%.1f" y="%d" width="%.1f" '
                    .. 'height="14"><title>part %d importing</title></rect>'):format(
                    p.seen and "importing" or "unseen", x(p.importing), y + 2,
                    math.max(x(p.finished) - x(p.importing), 1), p.part)
            end
        end
    end
    for i, p in ipairs(list) do
        local y = (i + 2) * ROW
        out[#out + 1] = ('<g data-part="%d"><text x="0" y="%d">part %d</text>'
            .. '<rect class="uploading" x="%.1f" y="%d" width="%.1f" height="14"/>'
            .. '<rect class="queued" x="%.1f" y="%d" width="%.1f" height="14"/>'
            .. '<rect class="%s" x="%.1f" y="%d" width="%.1f" height="14"/>'
            .. '<title>part %d (%d rows, %s): queued %.1f s, importing %.1f s, slot %d</title>'
            .. '</g>'):format(p.part, y + 13, p.part,
            x(p.sent), y + 2, math.max(x(p.queued) - x(p.sent), 0),
            x(p.queued), y + 2, math.max(x(p.importing) - x(p.queued), 0),
            p.seen and "importing" or "unseen", x(p.importing), y + 2,
            math.max(x(p.finished) - x(p.importing), 1),
            p.part, p.rows or 0, esc(p.status), p.importing - p.queued,
            p.finished - p.importing, p.slot)
    end
    out[#out + 1] = ('<text x="%d" y="%d">%.1f s from the first upload to the last job\'s '
        .. 'end</text></svg>'):format(LEFT, height - 2, span)
    out[#out + 1] = '<p class="legend"><span class="uploading"></span> uploading '
        .. '<span class="queued"></span> queued <span class="importing"></span> importing '
        .. '<span class="unseen"></span> importing, its start estimated (the job ended '
        .. 'before a poll saw it importing)</p>'
end

local function reasons_section(title, kind, groups, out, note)
    if #groups == 0 then return end
    out[#out + 1] = ('<h2>%s</h2>'):format(esc(title))
    if note then out[#out + 1] = ("<p>%s</p>"):format(esc(note)) end
    out[#out + 1] = ('<table class="reasons" data-kind="%s"><tr><th>rows</th><th>reason</th>'
        .. '<th>lines</th></tr>'):format(kind)
    for _, g in ipairs(groups) do
        local lines = {}
        for i, l in ipairs(g.lines or {}) do lines[i] = esc(l) end
        local more = g.count - #lines
        out[#out + 1] = ('<tr><td class="n" data-count="%d">%d</td><td>%s</td><td>%s%s</td></tr>')
            :format(g.count, g.count, esc(g.reason), table.concat(lines, ", "),
                more > 0 and (" … and %d more"):format(more) or "")
    end
    out[#out + 1] = "</table>"
end

local function calls_section(calls, out)
    local kinds = {}
    for kind in pairs(calls or {}) do kinds[#kinds + 1] = kind end
    table.sort(kinds)
    out[#out + 1] = '<h2>API calls</h2><table id="calls"><tr><th>kind</th><th>calls</th></tr>'
    for _, kind in ipairs(kinds) do
        out[#out + 1] = ('<tr><td>%s</td><td class="n" data-kind="%s">%d</td></tr>')
            :format(esc(kind), esc(kind), calls[kind])
    end
    out[#out + 1] = "</table>"
end

local STYLE = [[
body{font:14px/1.4 system-ui,sans-serif;margin:2em;color:#222;max-width:960px}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:2px 8px;
text-align:left;vertical-align:top}.n{text-align:right}.bar{display:flex;height:14px;width:600px;
border:1px solid #ccc}.bar span{display:block;height:100%}.problem{color:#c62828}
svg text{font:11px sans-serif}.uploading{fill:#90caf9;background:#90caf9}
.queued{fill:#e0e0e0;background:#e0e0e0}.importing{fill:#1565c0;background:#1565c0}
.unseen{fill:#7986cb;background:#7986cb}
.legend span{display:inline-block;width:12px;height:12px}
]]

-- Reads back what the page shows: the numbers a test compares with the JSON.
local SCRIPT = [[
(function () {
  var n = function (el) { return parseInt(el.textContent, 10); };
  var out = { rows: {}, calls: {}, parts: 0, reasons: {} };
  document.querySelectorAll('#rows [data-outcome]').forEach(function (el) {
    out.rows[el.getAttribute('data-outcome')] = n(el);
  });
  document.querySelectorAll('#calls [data-kind]').forEach(function (el) {
    out.calls[el.getAttribute('data-kind')] = n(el);
  });
  out.parts = document.querySelectorAll('#timeline [data-part]').length;
  document.querySelectorAll('table.reasons').forEach(function (t) {
    var sum = 0;
    t.querySelectorAll('[data-count]').forEach(function (el) { sum += n(el); });
    out.reasons[t.getAttribute('data-kind')] = sum;
  });
  document.getElementById('rendered').textContent = JSON.stringify(out);
})();
]]

--- render(doc) -> text: the page for a report document.
function M.render(doc)
    local out = { '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">',
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
            .. 'style-src \'unsafe-inline\'; script-src \'unsafe-inline\'">',
        ("<title>marketo-bulk: %s import %s</title><style>%s</style></head><body>")
            :format(esc(doc.object), esc(doc.ended), STYLE) }
    local sources = type(doc.source) == "table" and table.concat(doc.source, ", ") or doc.source
    out[#out + 1] = ("<h1>%s import: %s</h1><p>%s<br>from %s to %s (UTC), marketo-bulk %s</p>")
        :format(esc(doc.object), esc(doc.ended), esc(sources), esc(doc.started),
            esc(doc.finished), esc(doc.marketo_bulk))
    if not doc.reconciled then
        out[#out + 1] = ('<p class="problem">NOT RECONCILED: %s</p>'):format(
            esc(doc.reconcile_error))
    end
    for _, problem in ipairs(doc.problems or {}) do
        out[#out + 1] = ('<p class="problem">%s</p>'):format(esc(problem))
    end
    rows_section(doc.rows, out)
    timeline_section(doc.parts or {}, out)
    local files = doc.files or {}
    local function name(path) return path and path:match("[^/]*$") end
    reasons_section("Failed rows", "failed", doc.failed_reasons or {}, out,
        files.failed and ("The rows, ready to fix and import again: " .. name(files.failed)))
    reasons_section("Rows imported with warnings", "warned", doc.warned_reasons or {}, out,
        files.warned and ("The rows: " .. name(files.warned)))
    reasons_section("Rejected rows", "rejected", doc.rejected_reasons or {}, out,
        files.rejected and ("Every one, with its line and row: " .. name(files.rejected)))
    calls_section(doc.api_calls, out)
    out[#out + 1] = '<pre id="rendered" hidden></pre><script>' .. SCRIPT
        .. "</script></body></html>\n"
    return table.concat(out, "\n")
end

return M
