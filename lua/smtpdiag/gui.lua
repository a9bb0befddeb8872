-- smtpdiag.gui: what only Wireshark's GUI gets (tshark registers none of it).
-- 1. A display filter applied while a file loads (`wireshark -r f -Y ...`, a filter left in the
--    bar) runs on the first pass, before any session is decided: a filter on the plugin's fields
--    would silently show only what was decided so far. When the load has finished (the tap's
--    draw), such a filter is applied once more, on complete verdicts.
-- 2. Tools → smtpdiag → Diagnosed sessions: every diagnosed conversation in a window, with
--    buttons that filter to one of them or go to its evidence frame.
local M = {}

local session = require("smtpdiag.session")
local verdict = require("smtpdiag.verdict")

local verdict_of, root_cause = verdict.verdict, verdict.root_cause
local format, concat = string.format, table.concat

-- Filters naming one of these depend on the plugin's verdicts.
local OWN = { "smtpdiag", "smtp.failure_cause", "smtp.data_terminated" }

local refilter_pending = false    -- a first pass (a load) started and its end was not seen yet
local finalize = nil              -- gives open sessions their end-of-capture verdict (dissect.lua)

function M.reset()
    refilter_pending = true
end

local function names_our_fields(filter)
    for _, name in ipairs(OWN) do
        if filter:find(name, 1, true) then return true end
    end
    return false
end

-- At the end of a load: the filter in the bar again, now that every session is decided.
local function refilter_after_load()
    if not refilter_pending then return end
    refilter_pending = false
    local ok, filter = pcall(get_filter)
    if ok and type(filter) == "string" and filter ~= "" and names_our_fields(filter) then
        set_filter(filter)
        apply_filter()
    end
end

-- Every diagnosed conversation once (a DNS lookup is registered under each of its queries'
-- keys), as shown on later passes (an open one with its end-of-capture verdict), in capture order.
function M.conversations()
    if finalize then finalize() end
    local list, seen = {}, {}
    for _, S in pairs(session.sessions) do
        if not seen[S] then
            seen[S] = true
            list[#list + 1] = S.view or S
        end
    end
    table.sort(list, function(a, b)
        if a.first_frame ~= b.first_frame then return a.first_frame < b.first_frame end
        return (a.kind or "") < (b.kind or "")
    end)
    return list
end

-- The display filter that shows one conversation.
function M.filter_for(S)
    if S.kind == "dns" then
        return format('dns.qry.name == "%s" && ip.addr == %s && ip.addr == %s', S.query or "", S.cli or "", S.srv or "")
    end
    return format("tcp.stream == %d", S.stream or -1)
end

-- The frame that shows why: the root cause's evidence, else the conversation's first frame.
function M.evidence_frame(S)
    local f = root_cause(S)
    return f and f.frame or S.first_frame
end

local function endpoint(addr, port)
    if not addr then return "?" end
    if addr:find(":", 1, true) then return format("[%s]:%d", addr, port or 0) end
    return format("%s:%d", addr, port or 0)
end

-- Two lines per conversation (numbered from 1): row, cause, protocol, session, endpoints and
-- evidence frame; then the detail, indented. The window's text.
function M.table_text(list)
    local lines = { format("%d diagnosed conversations. Filter to one or go to its evidence with the buttons "
                           .. "below (row number: first column).", #list), "" }
    for i, S in ipairs(list) do
        local v = verdict_of(S)
        local what = endpoint(S.cli, S.cport) .. " → " .. endpoint(S.srv, S.sport)
        if S.kind == "dns" then what = what .. "  " .. (S.query or "") end
        lines[#lines + 1] = format("%4d  %-20s %-4s %-8s %s  (evidence: frame %d)", i, v.cause, S.kind or "smtp",
                                   S.stream and ("#" .. S.stream) or "", what, M.evidence_frame(S))
        if v.detail and v.detail ~= "" then lines[#lines + 1] = "        " .. v.detail end
    end
    if #list == 0 then lines[#lines + 1] = "(no mail conversation diagnosed in this capture)" end
    return concat(lines, "\n")
end

function M.open_window()
    local list = M.conversations()
    local win = TextWindow.new("smtpdiag: diagnosed sessions")
    win:set(M.table_text(list))
    local function pick(label, then_do)
        return function()
            new_dialog(label, function(n)
                local S = list[tonumber(n or "")]
                if S then then_do(S) end
            end, "Row # (first column)")
        end
    end
    win:add_button("Filter to session…", pick("Filter to session", function(S)
        set_filter(M.filter_for(S))
        apply_filter()
    end))
    win:add_button("Go to evidence frame…", pick("Go to evidence frame", function(S)
        goto_frame(M.evidence_frame(S))
    end))
    win:add_button("Failing sessions", function()
        set_filter('smtpdiag.failure_cause && smtpdiag.failure_cause != "ok"')
        apply_filter()
    end)
end

-- Registers the end-of-load tap and the menu entry, in the GUI only. `finalize_fn` gives the
-- sessions still open their end-of-capture verdict (on a view, as later passes show them).
function M.register(finalize_fn)
    finalize = finalize_fn
    if not gui_enabled() then return end
    local tap = Listener.new(nil, nil)
    function tap.draw() refilter_after_load() end
    register_menu("smtpdiag/Diagnosed sessions", M.open_window, MENU_TOOLS_UNSORTED)
end

return M
