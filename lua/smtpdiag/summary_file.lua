-- smtpdiag.summary_file: batch mode (the toolkit's run: one pass, summary_file set): one
-- tab-separated line per conversation, written as conversations end (after a linger for their
-- trailing packets) and at the end of the capture; the header names every field.
local M = {}

local connection = require("smtpdiag.connection")
local dns = require("smtpdiag.dns")
local fields = require("smtpdiag.fields")
local prefs = require("smtpdiag.prefs")
local render = require("smtpdiag.render")
local plugin_version = require("smtpdiag.version")
local session = require("smtpdiag.session")
local session_end = require("smtpdiag.session_end")
local verdict_of = require("smtpdiag.verdict").verdict

local P = prefs.P
local F, ABBR, U64 = fields.F, fields.ABBR, fields.U64
local sessions, bury, next_done = session.sessions, session.bury, session.next_done
local each_verdict_item, each_summary_item = render.each_verdict_item, render.each_summary_item
local finish_at_capture_end = session_end.finish_at_capture_end
local syn_wait_release, dns_forget = connection.syn_wait_release, dns.forget
local format, floor, concat = string.format, math.floor, table.concat

local header = nil        -- the column names, once the file is open
local out = nil           -- the open file
local failed = false      -- the file could not be opened: nothing more is tried

function M.reset()
    if out then pcall(function() out:close() end) end
    out, failed = nil, false
end

local function cell(x)
    if x == true then return "1" elseif x == false then return "0" end
    x = tostring(x)
    if not x:find("[%z\1-\31]") then return x end
    return (x:gsub("[%z\1-\31]", " "))
end

-- Opens the summary file and writes its header: a line naming the plugin that wrote it
-- ("#smtpdiag", version, build), then every field's name, in the fields' order.
local function open()
    out = io.open(P.summary_file, "w")
    if not out then failed = true; return false end
    out:write("#smtpdiag\t", plugin_version.version, "\t", plugin_version.build, "\n")
    local names, seen = {}, {}
    for _, f in ipairs(fields.LIST) do
        local n = ABBR[f]
        if n and not seen[n] then seen[n] = true; names[#names + 1] = n end
    end
    header = names
    out:write(concat(names, "\t"), "\n")
    return true
end

-- One summary line's cells by column name (reused: a line is written per conversation). A
-- column with several values (one per transaction) gathers them in a list, joined once: a
-- session of N transactions costs O(N), not the O(N^2) of joining as they come.
local cols, multi, line = {}, {}, {}
local function put(f, x)
    local n = ABBR[f]
    if not n then return end
    local c = U64[f] and format("%.0f", floor(x)) or cell(x)
    local prev = cols[n]
    if prev == nil then
        cols[n] = c
    else
        local l = multi[n]
        if not l then l = { prev }; multi[n] = l end
        l[#l + 1] = c
    end
end

-- The conversation's line.
local function write(S)
    if failed then return end
    if not out and not open() then return end
    local v = verdict_of(S)
    put(F.proto, S.kind or "smtp")
    put(F.stream, S.stream)
    each_verdict_item(S, v, put)
    each_summary_item(S, v.terminator, put)
    for i, n in ipairs(header) do
        local l = multi[n]
        line[i] = l and concat(l, "\31") or cols[n] or ""
        cols[n], multi[n] = nil, nil
    end
    for k in pairs(cols) do cols[k] = nil end
    for k in pairs(multi) do multi[k] = nil end
    out:write(concat(line, "\t"), "\n")
end

-- Ended conversations due at capture time ts (or all) are written and forgotten, oldest first.
function M.flush_done(ts, all)
    while true do
        local S = next_done(ts, all)
        if not S then return end
        if sessions[S.key] == S then
            write(S)
            sessions[S.key] = nil
            if type(S.key) == "number" then bury(S.key) end
            if S.kind == "dns" then dns_forget(S, all and S.last_ts or ts) end
            syn_wait_release(S)
        end
    end
end
local flush_done = M.flush_done

-- The capture ended (at its last frame): every conversation still open gets its
-- end-of-capture verdict and its line, in the order they started; then the file is closed.
function M.finish_capture(last_frame)
    flush_done(0, true)
    local rest = {}
    for _, S in pairs(sessions) do
        if not S.done then finish_at_capture_end(S, last_frame) end
        rest[#rest + 1] = S
    end
    table.sort(rest, function(a, b)
        if a.first_frame ~= b.first_frame then return a.first_frame < b.first_frame end
        return (a.kind or "") < (b.kind or "")
    end)
    -- Even an empty capture says the plugin ran: a header line.
    if not out and not failed then open() end
    for _, S in ipairs(rest) do write(S) end
    for k in pairs(sessions) do sessions[k] = nil end
    if out then out:close() end
    out = nil
end

return M
