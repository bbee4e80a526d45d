--- marketo.sandbox.store: the records the sandbox holds, per object type,
-- upserted by their dedupe key ("insert or update", docs sec. 5.1): leads by the
-- job's lookupField (email by default; `id` updates only), custom objects by
-- their dedupe fields, program members by email within a program.
local normalize_key = require("marketo.objects").normalize_key

local M = {}
M.__index = M

function M.new()
    local self = setmetatable({}, M)
    self:reset()
    return self
end

function M:reset()
    self.leads = {}         -- id -> record (with its `id`)
    self.lead_count = 0
    self.next_id = 1
    self.indexes = {}       -- lookup field -> key -> id
    self.lists = {}         -- listId -> { id -> true }
    self.objects = {}       -- api name (lower) -> { api_name, records = key -> record, count }
    self.programs = {}      -- programId -> { email key -> member }
end

local function index_key(field, value)
    value = tostring(value)
    if field == "email" then return normalize_key(value) end
    return value
end

-- The index of a lookup field, built on first use and kept up to date after.
function M:index(field)
    local idx = self.indexes[field]
    if idx then return idx end
    idx = {}
    for id, rec in pairs(self.leads) do
        local v = rec[field]
        if v ~= nil and v ~= "" and type(v) ~= "userdata" then idx[index_key(field, v)] = id end
    end
    self.indexes[field] = idx
    return idx
end

local function merge(into, from)
    for k, v in pairs(from) do into[k] = v end
end

-- Keeps every index in step with a record's new values.
function M:reindex(rec, old)
    for field, idx in pairs(self.indexes) do
        local before, after = old[field], rec[field]
        if before ~= after then
            if before ~= nil and type(before) ~= "userdata" then
                local k = index_key(field, before)
                if idx[k] == rec.id then idx[k] = nil end
            end
            if after ~= nil and type(after) ~= "userdata" and after ~= "" then
                idx[index_key(field, after)] = rec.id
            end
        end
    end
end

--- Upserts a lead by `lookup`. Returns the lead's id, or nil and the reason
-- when the lookup is `id` and no such lead exists (update only).
function M:upsert_lead(lookup, key, fields)
    local id
    if lookup == "id" then
        id = math.tointeger(tonumber(key))
        if not id or not self.leads[id] then return nil, "Lead not found" end
    else
        id = self:index(lookup)[key]
    end
    local rec = id and self.leads[id]
    local old = {}
    if rec then
        merge(old, rec)
    else
        id = self.next_id
        self.next_id = id + 1
        rec = { id = id }
        self.leads[id] = rec
        self.lead_count = self.lead_count + 1
    end
    merge(rec, fields)
    rec.id = id
    self:reindex(rec, old)
    return id
end

function M:add_to_list(list_id, lead_id)
    local list = self.lists[list_id] or {}
    self.lists[list_id] = list
    list[lead_id] = true
end

--- Upserts a custom object record by its dedupe key.
function M:upsert_object(object, key, fields)
    local lower = object.api_name:lower()
    local store = self.objects[lower] or { api_name = object.api_name, records = {}, count = 0 }
    self.objects[lower] = store
    local rec = store.records[key]
    if not rec then
        rec = {}
        store.records[key] = rec
        store.count = store.count + 1
    end
    merge(rec, fields)
end

--- Upserts a program member: the lead by email, then its membership.
function M:upsert_member(program_id, key, lead_fields, member_fields, status)
    local lead_id = self:upsert_lead("email", key, lead_fields)
    local program = self.programs[program_id] or {}
    self.programs[program_id] = program
    local member = program[key] or { leadId = lead_id }
    program[key] = member
    merge(member, member_fields)
    member.email = lead_fields.email or member.email
    member.leadId = lead_id
    member.status = status
end

--- Arrays for the inspection endpoints, in a stable order.
function M:lead_list()
    local out = {}
    for id = 1, self.next_id - 1 do
        if self.leads[id] then out[#out + 1] = self.leads[id] end
    end
    return out
end

local function sorted_values(t)
    local keys = {}
    for k in pairs(t) do keys[#keys + 1] = k end
    table.sort(keys)
    local out = {}
    for i, k in ipairs(keys) do out[i] = t[k] end
    return out
end

function M:object_list(api_name)
    local store = self.objects[api_name:lower()]
    return store and sorted_values(store.records) or {}
end

function M:member_list(program_id)
    return sorted_values(self.programs[program_id] or {})
end

function M:list_members(list_id)
    local out = {}
    for id in pairs(self.lists[list_id] or {}) do out[#out + 1] = id end
    table.sort(out)
    return out
end

function M:summary()
    local objects, programs, lists = {}, {}, {}
    for _, s in pairs(self.objects) do objects[s.api_name] = s.count end
    for id, p in pairs(self.programs) do
        local n = 0
        for _ in pairs(p) do n = n + 1 end
        programs[id] = n
    end
    for id, l in pairs(self.lists) do
        local n = 0
        for _ in pairs(l) do n = n + 1 end
        lists[tostring(id)] = n
    end
    return { leads = self.lead_count, customObjects = objects, programMembers = programs,
             lists = lists }
end

return M
