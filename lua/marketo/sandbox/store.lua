--- marketo.sandbox.store: the records the sandbox holds, per object type,
-- upserted by their dedupe key ("insert or update", docs sec. 5.1): leads by the
-- job's lookupField (email by default; `id` updates only), custom objects by
-- their dedupe fields, program members by email within a program.
-- Each kind lives in a marketo.records (the C core): every record one packed
-- value, so a rehearsal of millions of rows costs about the bytes of its
-- values (doc/sandbox.md, "Tests and bench"), not a Lua table per row.
local core = require("marketo.core")

local M = {}
M.__index = M

function M.new()
    local self = setmetatable({}, M)
    self:reset()
    return self
end

-- Every marketo.records of the store, so a reset can free them at once (the
-- collector does not see their size).
local function each_records(self, fn)
    if self.leads then fn(self.leads) end
    for _, s in pairs(self.objects or {}) do fn(s.records) end
    for _, t in pairs(self.programs or {}) do fn(t) end
    for _, t in pairs(self.lists or {}) do fn(t) end
end

function M:reset()
    each_records(self, function(r) r:close() end)
    self.leads = core.records()   -- lead id = record number
    self.indexed = {}             -- lookup fields with an index on the leads
    self.lists = {}               -- listId -> records keyed by lead id
    self.objects = {}             -- api name (lower) -> { api_name, records = by dedupe key }
    self.programs = {}            -- programId -> records keyed by email (lower)
end

-- A store that cannot grow is out of memory: nothing a caller can mend.
local function stored(n, err)
    if not n then error("sandbox store: " .. tostring(err), 0) end
    return n
end

-- The id of the lead whose `lookup` field is `key`, through an index made on
-- first use and kept up to date after (emails compare case-insensitively).
function M:find_lead(lookup, key)
    if not self.indexed[lookup] then
        stored(self.leads:index(lookup, lookup == "email"))
        self.indexed[lookup] = true
    end
    return self.leads:lookup(lookup, key)
end

--- Upserts a lead by `lookup`. Returns the lead's id, or nil and the reason
-- when the lookup is `id` and no such lead exists (update only). With
-- `insert`, always makes a new lead (two can then share a key; the key then
-- finds the newer).
function M:upsert_lead(lookup, key, fields, insert)
    local leads = self.leads
    local id
    if lookup == "id" then
        id = math.tointeger(tonumber(key))
        if not id or id < 1 or id > leads:count() then return nil, "Lead not found" end
    elseif not insert then
        id = self:find_lead(lookup, key)
    end
    if id then return stored(leads:merge(id, fields)) end
    return stored(leads:insert(nil, fields))
end

--- The lead with this id (a table with its `id`), or nil.
function M:lead(id)
    local rec = self.leads:get(id)
    if rec then rec.id = id end
    return rec
end

function M:add_to_list(list_id, lead_id)
    local list = self.lists[list_id] or core.records()
    self.lists[list_id] = list
    -- big-endian, so that the key order is the id order
    stored(list:upsert(string.pack(">I8", lead_id), {}))
end

--- Upserts a custom object record by its dedupe key (with `insert`, always
-- a new record, as upsert_lead).
function M:upsert_object(object, key, fields, insert)
    local lower = object.api_name:lower()
    local store = self.objects[lower] or { api_name = object.api_name, records = core.records() }
    self.objects[lower] = store
    if insert then
        stored(store.records:insert(key, fields))
    else
        stored(store.records:upsert(key, fields))
    end
end

--- Upserts a program member: the lead by email, then its membership.
function M:upsert_member(program_id, key, lead_fields, member_fields, status)
    local lead_id = self:upsert_lead("email", key, lead_fields)
    local program = self.programs[program_id] or core.records()
    self.programs[program_id] = program
    member_fields.email = lead_fields.email
    member_fields.leadId = lead_id
    member_fields.status = status
    stored(program:upsert(key, member_fields))
end

-- The inspection endpoints read a kind through a view: `count` records, the
-- i-th (1-based, in the endpoint's order) by `at(i)`.

--- Leads, in id order.
function M:lead_view()
    return { count = self.leads:count(), at = function(i) return self:lead(i) end }
end

local function keyed_view(records, value)
    if not records then return { count = 0, at = function() return nil end } end
    return { count = records:count(), at = function(i)
        local n = records:ordered(i)
        return n and value(records, n)
    end }
end

local function record(records, n) return records:get(n) end

--- A custom object's records, in dedupe key order.
function M:object_view(api_name)
    local store = self.objects[api_name:lower()]
    return keyed_view(store and store.records, record)
end

--- A program's members, in email order.
function M:member_view(program_id)
    return keyed_view(self.programs[program_id], record)
end

--- Lead ids on a static list, in id order.
function M:list_view(list_id)
    return keyed_view(self.lists[list_id], function(records, n)
        return (string.unpack(">I8", records:key(n)))
    end)
end

local function all(view)
    local out = {}
    for i = 1, view.count do out[i] = view.at(i) end
    return out
end

--- Arrays of a whole kind, in the views' order (for specs in-process).
function M:lead_list() return all(self:lead_view()) end
function M:object_list(api_name) return all(self:object_view(api_name)) end
function M:member_list(program_id) return all(self:member_view(program_id)) end
function M:list_members(list_id) return all(self:list_view(list_id)) end

function M:summary()
    local objects, programs, lists = {}, {}, {}
    for _, s in pairs(self.objects) do objects[s.api_name] = s.records:count() end
    for id, p in pairs(self.programs) do programs[id] = p:count() end
    for id, l in pairs(self.lists) do lists[tostring(id)] = l:count() end
    return { leads = self.leads:count(), customObjects = objects, programMembers = programs,
             lists = lists }
end

--- Bytes the records and their indexes hold.
function M:memory()
    local total = 0
    each_records(self, function(r) total = total + r:memory() end)
    return total
end

return M
