--- marketo.day: Marketo's day. The daily API quota resets at midnight US
-- Central time (America/Chicago: CST, UTC-6, and CDT, UTC-5, by the US daylight
-- saving rules), whatever the time zone of the machine that asks. Pure: epoch
-- seconds in, dates and epoch seconds out; it never reads the process's TZ.
--
--   day.of(t)          -> "2026-12-07": the day the quota counts at epoch t
--   day.start(date)    -> epoch seconds of that day's midnight, US Central
--   day.after(date)    -> "2026-12-08"
--   day.next_reset(t)  -> epoch seconds of the first midnight US Central after t
--   day.zone(t)        -> "CST" | "CDT"
--   day.reset_text(reset, now[, local_time]) -> "resets at 2026-12-08 00:00 CST
--                         (06:00 UTC), in 13 h 35 min"
--
-- The US rules since 2007: daylight time from 2:00 on the second Sunday of
-- March to 2:00 on the first Sunday of November; 1987-2006: first Sunday of
-- April to last Sunday of October. Earlier years count as standard time.
local M = {}

local DAY, HOUR = 86400, 3600
local floor = math.floor

-- Days since 1970-01-01 of a civil date, and back (H. Hinnant's algorithms:
-- exact for every proleptic Gregorian date, integer arithmetic only).
local function days_from_civil(y, m, d)
    if m <= 2 then y = y - 1 end
    local era = floor(y / 400)
    local yoe = y - era * 400
    local mp = m > 2 and m - 3 or m + 9
    local doy = floor((153 * mp + 2) / 5) + d - 1
    local doe = yoe * 365 + floor(yoe / 4) - floor(yoe / 100) + doy
    return era * 146097 + doe - 719468
end

local function civil_from_days(z)
    z = z + 719468
    local era = floor(z / 146097)
    local doe = z - era * 146097
    local yoe = floor((doe - floor(doe / 1460) + floor(doe / 36524) - floor(doe / 146096)) / 365)
    local doy = doe - (365 * yoe + floor(yoe / 4) - floor(yoe / 100))
    local mp = floor((5 * doy + 2) / 153)
    local d = doy - floor((153 * mp + 2) / 5) + 1
    local m = mp < 10 and mp + 3 or mp - 9
    local y = yoe + era * 400
    if m <= 2 then y = y + 1 end
    return y, m, d
end

-- 0 is Sunday (1970-01-01 was a Thursday).
local function weekday(days) return (days + 4) % 7 end

local function nth_sunday(y, m, n)
    local first = days_from_civil(y, m, 1)
    return first + (7 - weekday(first)) % 7 + 7 * (n - 1)
end

local function last_sunday(y, m, last_day)
    local last = days_from_civil(y, m, last_day)
    return last - weekday(last)
end

-- The epoch seconds daylight time starts and ends in year y (2:00 local:
-- 08:00 UTC in standard time, 07:00 UTC in daylight time), or nil.
local function dst_window(y)
    local s, e
    if y >= 2007 then
        s, e = nth_sunday(y, 3, 2), nth_sunday(y, 11, 1)
    elseif y >= 1987 then
        s, e = nth_sunday(y, 4, 1), last_sunday(y, 10, 31)
    else
        return nil
    end
    return s * DAY + 8 * HOUR, e * DAY + 7 * HOUR
end

local function is_dst(t)
    -- the year at t in Central time: daylight time is never near the new year
    local y = civil_from_days(floor((t - 6 * HOUR) / DAY))
    local s, e = dst_window(y)
    return s ~= nil and t >= s and t < e
end

--- offset(t) -> seconds US Central time is from UTC at epoch t (-21600 | -18000).
function M.offset(t)
    return is_dst(t) and -5 * HOUR or -6 * HOUR
end

function M.zone(t)
    return is_dst(t) and "CDT" or "CST"
end

local function date_of(days)
    local y, m, d = civil_from_days(days)
    return ("%04d-%02d-%02d"):format(y, m, d)
end

-- Days since 1970-01-01 of a "YYYY-MM-DD" (anything after the date ignored:
-- "2015-10-17T00:00:00Z" is 2015-10-17) | nil.
local function days_of(date)
    local y, m, d = tostring(date):match("^(%d%d%d%d)%-(%d%d)%-(%d%d)")
    if not y then return nil end
    return days_from_civil(tonumber(y), tonumber(m), tonumber(d))
end

-- The day number in Central time at epoch t.
local function central_days(t)
    return floor((t + M.offset(t)) / DAY)
end

function M.of(t)
    return date_of(central_days(t))
end

-- Midnight at the start of day number `days`, in epoch seconds: daylight
-- time changes at 2:00, so midnight is in the offset of 05:00 UTC that day.
local function start_of(days)
    local t = days * DAY
    return t + (is_dst(t + 5 * HOUR) and 5 or 6) * HOUR
end

-- A function of a day number as one of a date: nil for what is not a date.
local function by_date(fn)
    return function(date)
        local days = days_of(date)
        return days and fn(days)
    end
end

--- start(date) -> epoch seconds of its midnight US Central | nil (not a date).
M.start = by_date(start_of)
--- after(date) -> the next day's date | nil.
M.after = by_date(function(days) return date_of(days + 1) end)
--- normalize(date) -> "YYYY-MM-DD" | nil (not a date).
M.normalize = by_date(date_of)

function M.next_reset(t)
    return start_of(central_days(t) + 1)
end

--- central(t) -> "2026-12-08 00:00 CST": epoch t in US Central time.
function M.central(t)
    local local_t = t + M.offset(t)
    local days = floor(local_t / DAY)
    local s = local_t - days * DAY
    return ("%s %02d:%02d %s"):format(date_of(days), floor(s / HOUR), floor(s % HOUR / 60),
        M.zone(t))
end

--- duration(s) -> "13 h 35 min", "12 min", "40 s" (rounded up to the minute
-- from a minute on: a wait is never shorter than it says).
function M.duration(s)
    s = math.max(0, math.ceil(s))
    if s < 60 then return ("%d s"):format(s) end
    local minutes = math.ceil(s / 60)
    if minutes < 60 then return ("%d min"):format(minutes) end
    return ("%d h %d min"):format(floor(minutes / 60), minutes % 60)
end

-- The user's own clock (the process's time zone): "06:00 UTC", or with the
-- date when it is not the Central one.
local function user_time(t, central_date)
    if os.date("%Y-%m-%d", t) ~= central_date then return os.date("%Y-%m-%d %H:%M %Z", t) end
    return os.date("%H:%M %Z", t)
end

--- reset_text(reset, now[, local_time]) -> "resets at 2026-12-08 00:00 CST
-- (06:00 UTC), in 13 h 35 min": US Central, then the user's clock
-- (local_time(t, central_date), default the process's time zone).
function M.reset_text(reset, now, local_time)
    local central = M.central(reset)
    return ("resets at %s (%s), in %s"):format(central,
        (local_time or user_time)(reset, central:sub(1, 10)), M.duration(reset - now))
end

return M
