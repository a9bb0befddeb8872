-- smtpdiag.dissect: the per-frame entry. On the first pass (pinfo.visited false) a frame goes
-- through the DNS and TCP stages and shows what it decided; on later passes (tshark -2, the GUI)
-- every frame shows its conversation's whole verdict, open conversations finished on a view as
-- if the capture ended there. Batch mode writes conversations out as they end.
local M = {}

local connection = require("smtpdiag.connection")
local dns = require("smtpdiag.dns")
local prefs = require("smtpdiag.prefs")
local render = require("smtpdiag.render")
local session = require("smtpdiag.session")
local session_end = require("smtpdiag.session_end")
local summary_file = require("smtpdiag.summary_file")

local P = prefs.P
local sessions, session_view, enqueue_done, done, done_due =
    session.sessions, session.session_view, session.enqueue_done, session.done, session.done_due
local finish_at_capture_end = session_end.finish_at_capture_end
local dns_process, dns_expire, dns_at_frame, dns_waiting = dns.process, dns.expire, dns.at_frame, dns.waiting
local stream_of_frame, process, expire_syn_only, syn_queue =
    connection.stream_of_frame, connection.process, connection.expire_syn_only, connection.syn_queue
local flush_done = summary_file.flush_done
local render_session = render.render

local f_frame = Field.new("frame")

local reset_pending = true
local first_calls, first_tree = 0, 0     -- first-pass frames seen, and whether they had a tree
local later_calls = 0                     -- frames seen again (tshark -2, the GUI's later passes)
local degraded, degraded_last = false, 0  -- tshark -2 without a filter: later passes act as first
local finalized, finalized_at = false, -1
local capture_last_frame = 0              -- the last frame read on the first pass
-- Each first-pass frame's TCP stream (-1: not TCP), so that later passes need no field extractor
-- (not kept in batch mode, which has no later pass).
local frame_stream = {}

function M.reset()
    first_calls, first_tree, degraded, degraded_last, later_calls = 0, 0, false, 0, 0
    finalized, finalized_at = false, -1
    capture_last_frame = 0
    frame_stream = {}
end

-- tshark -2 re-runs the init routines before its second pass: state is only dropped when a
-- first pass really starts again (a new or reloaded file).
function M.init()
    reset_pending = true
end

-- Every loaded smtpdiag module's reset(): each forgets the state it keeps across frames.
local function reset_all()
    local names = {}
    for name, m in pairs(package.loaded) do
        if type(name) == "string" and name:find("^smtpdiag%.") and type(m) == "table" and m.reset then
            names[#names + 1] = name
        end
    end
    table.sort(names)
    for _, name in ipairs(names) do package.loaded[name].reset() end
end

-- The capture is (so far) complete: open sessions get their end-of-capture verdict
-- on a view, so that more first-pass frames can still be added to the originals.
local function finalize_all()
    if first_calls == 0 or (finalized and finalized_at == first_calls) then return end
    finalized, finalized_at = true, first_calls
    for _, S in pairs(sessions) do
        if not S.done and not S.view then
            local V = session_view(S)
            finish_at_capture_end(V, capture_last_frame)
            S.view = V
        end
    end
end

M.finalize = finalize_all

-- Shows a conversation on its first pass: every finding not shown before was decided on frame.
local function show_decided(S, pinfo, tree, frame)
    for _, f in ipairs(S.findings) do f.decided_at = f.decided_at or frame end
    render_session(S, pinfo, tree, frame, true, degraded)
end

-- First pass, mail DNS lookups: the frame's lookup and those that expired by now.
local function dns_first_pass(pinfo, tree, frame, ts, sport, dport)
    local expired = dns_waiting[dns_waiting.head] and dns_expire(frame, ts) or nil
    local L = (sport == 53 or dport == 53 or P.dns_any_port) and dns_process(pinfo, frame, ts) or nil
    if P.batch then return end
    if L then show_decided(L, pinfo, tree, frame) end
    if expired then
        for _, X in ipairs(expired) do show_decided(X, pinfo, tree, frame) end
    end
end

-- Later passes: the session a TCP frame belongs to (its view if it was open at the end).
local function later_pass_session(stream, frame)
    if degraded then return sessions[stream] end
    finalize_all()
    local S = sessions[stream]
    while S and S.older and frame < S.first_frame do S = S.older end
    if S and S.view then S = S.view end
    return S
end

-- The per-frame work, kept in one function: it runs on every frame of the capture.
function M.dissect(tvb, pinfo, tree)
    if reset_pending then
        reset_pending = false
        if not pinfo.visited then reset_all() end
    end
    local visited = pinfo.visited
    if visited then later_calls = later_calls + 1 end
    if not visited then
        first_calls = first_calls + 1
        if first_tree == 0 and f_frame() then first_tree = 1 end
    elseif not finalized and not degraded and first_calls > 0 and first_tree == 0 then
        -- tshark -2 builds no tree on its first pass unless a filter is given (-Y/-R).
        degraded = true
    end
    local frame, ts = pinfo.number, pinfo.abs_ts
    local first_pass = not visited or (degraded and frame > degraded_last)
    if first_pass and frame > capture_last_frame then capture_last_frame = frame end
    if degraded and frame > degraded_last then degraded_last = frame end
    -- Mail DNS lookups
    local sport, dport
    if first_pass then
        sport, dport = pinfo.src_port, pinfo.dst_port
        if dns_waiting[dns_waiting.head] or sport == 53 or dport == 53 or P.dns_any_port then
            dns_first_pass(pinfo, tree, frame, ts, sport, dport)
        end
    else
        local L = dns_at_frame(frame)
        if L then
            finalize_all()
            render_session(L.view or L, pinfo, tree, frame, false, degraded, first_calls)
        end
    end
    -- TCP mail sessions
    if P.batch then
        if done[done.head] and done_due(ts) then flush_done(ts, false) end
        if syn_queue.head <= syn_queue.tail then expire_syn_only(ts) end
    end
    local stream, tcplen, len_fi
    if first_pass then
        stream, tcplen, len_fi = stream_of_frame()
        if not P.batch then frame_stream[frame] = stream or -1 end
    else
        stream = frame_stream[frame]
        if stream == nil then stream = stream_of_frame() elseif stream == -1 then stream = nil end
    end
    if stream == nil then return end
    local S
    if first_pass then
        S = process(tvb, pinfo, stream, tcplen, len_fi, frame, ts, sport, dport)
        if S then
            local findings = S.findings
            for i = 1, #findings do
                local f = findings[i]
                if not f.decided_at then f.decided_at = frame end
            end
            if P.batch then
                if S.done then enqueue_done(S, ts) end
                return
            end
        end
    else
        S = later_pass_session(stream, frame)
    end
    if S and (not first_pass or P.first_pass_fields or degraded) then
        render_session(S, pinfo, tree, frame, first_pass, degraded, first_calls)
    end
end

local ONE_PASS = "smtpdiag: this run read the capture once: the plugin's verdicts are complete only from "
    .. "a second pass on, so a display filter, column or field on smtpdiag.*, smtp.failure_cause or "
    .. "smtp.data_terminated saw only what was decided so far; add -2 for complete results\n"

-- At the end of the capture: batch mode writes every conversation still open (its end-of-capture
-- verdict) to the summary file; a one-pass run with a tree (tshark -Y/-V/-T fields without -2)
-- is told on stderr that the verdicts it filtered or printed were incomplete.
function M.finish_capture()
    if P.batch then
        pcall(summary_file.finish_capture, capture_last_frame)
    elseif first_tree == 1 and later_calls == 0 and first_calls > 0 and not gui_enabled() then
        io.stderr:write(ONE_PASS)
    end
end

return M
