--- marketo.sandbox.hazard: Marketo's warning made real (option
-- duplicate_hazard): near-simultaneous upserts of one key can create
-- duplicate records. With the option on, a lead row whose key another job
-- upserted while both are Importing is inserted as a new record instead of
-- updating the one that exists. Keys are compared by marketo.objects'
-- rule (trimmed, case-insensitive), the rule the import plans by, so a
-- spec can prove that an import never puts one key in two jobs that can
-- import together.
local objects = require("marketo.objects")

local M = {}

-- A key is "in" a job once it upserted it, until the job stops Importing.
local function other_importing(queue, touched, job)
    for other in pairs(touched) do
        if other ~= job and other.status == "Importing" and queue.jobs[other.id] == other then
            return true
        end
    end
    return false
end

--- store_for(queue, job) -> the store a job's rows go to: the queue's own,
-- or with the option on (leads), one whose upsert makes the duplicates.
function M.store_for(queue, job)
    local store = queue.store
    if not queue.conf.duplicate_hazard or job.kind ~= "leads" then return store end
    if queue.hazard_store ~= store then
        queue.hazard_store, queue.hazard_keys = store, {}
    end
    local keys = queue.hazard_keys
    local wrapped = {}
    function wrapped.upsert_lead(_, lookup, key, fields)
        local k = lookup .. "\0" .. objects.normalize_key(key)
        local touched = keys[k] or setmetatable({}, { __mode = "k" })
        keys[k] = touched
        touched[job] = true
        -- another job Importing has upserted this key: insert, as the race would
        local insert = lookup ~= "id" and other_importing(queue, touched, job)
        return store:upsert_lead(lookup, key, fields, insert)
    end
    return setmetatable(wrapped, { __index = function(_, name)
        local v = store[name]
        if type(v) ~= "function" then return v end
        return function(_, ...) return v(store, ...) end
    end })
end

return M
