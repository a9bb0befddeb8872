-- smtpdiag.session_end: what a conversation's end decides: a connection nobody answered, a DATA
-- phase or BDAT chunk left open, a TLS handshake that never completed, a server that never
-- greeted, and what the capture lacks (one side, the start, the end).
local M = {}

local causal = require("smtpdiag.causal")
local dns = require("smtpdiag.dns")
local session = require("smtpdiag.session")
local smtp_commands = require("smtpdiag.smtp_commands")
local smtp_data = require("smtpdiag.smtp_data")
local smtp_replies = require("smtpdiag.smtp_replies")
local tls = require("smtpdiag.tls")
local util = require("smtpdiag.util")

local add_anomaly, finding, txn_cause = session.add_anomaly, session.finding, session.txn_cause
local release_held, close_data_phase = smtp_commands.release_held, smtp_data.close_data_phase
local pregreet_confirm, tls_judge = smtp_replies.pregreet_confirm, tls.judge_at_end
local secs = util.secs
local format = string.format

-- SYNs and nothing back: no_response (a refused one was decided by its RST).
local function unanswered_syns(S)
    if S.refused then return end
    finding(S, "no_response", S.syn_frame, S.syn_ts,
        format("%d SYN%s from %s to %s:%d over %s, no SYN-ACK (frames %d-%d)",
            S.syns, S.syns > 1 and "s" or "", S.cli or "?", S.srv or "?", S.sport or 0,
            secs((S.last_syn_ts or S.syn_ts) - S.syn_ts), S.syn_frame, S.last_syn_frame or S.syn_frame))
end

local function bdat_judge(S, frame, ts, cli_only)
    if S.cmode == "bdat" and S.bdat_remaining > 0 and not cli_only then
        finding(S, "bdat_incomplete", frame, ts,
            format("BDAT %d announced (frame %d), %d bytes missing when the session ended (frame %d)",
                S.bdat_announced or 0, S.bdat_frame or 0, S.bdat_remaining, frame))
        txn_cause(S, "bdat_incomplete")
    elseif S.txn and S.txn.bdat and not S.txn.bdat_last and not S.txn.cause and not cli_only then
        finding(S, "bdat_incomplete", frame, ts,
            format("BDAT chunks sent but no BDAT LAST before the session ended (frame %d)", frame))
        txn_cause(S, "bdat_incomplete")
    end
end

-- Established, the server sent something, yet no greeting: no_banner.
local function greeting_judge(S, frame, ts, at_capture_end)
    if S.pregreet_cand and (S.bytes_s or 0) > 0 then pregreet_confirm(S, frame) end
    if S.established and not S.greeted and not S.midstream and not S.implicit_tls and S.s.pkts > 0
        and not S.truncated and not S.s_gap then
        local since = S.syn_ts or S.first_ts
        finding(S, "no_banner", frame, ts,
            format("TCP established, no greeting from the server in %s; %s (frame %d)",
                secs(ts - since), at_capture_end and "the capture ended" or "the connection closed", frame))
    end
end

-- The TCP session ended at frame (both FINs, an RST, or the capture's end).
function M.finish_session(S, frame, ts, at_capture_end)
    if S.done then return end
    if S.ack_wait then causal.settle(S, frame, ts, true) end
    S.done = true
    S.cur_frame = frame
    local cli_only = S.c.pkts > 0 and S.s.pkts == 0
    local srv_only = S.s.pkts > 0 and S.c.pkts == 0
    -- One-sided captures: the replies are not there, so infer the DATA phase from the client's DATA.
    if cli_only and S.cmode == "hold" and #S.held > 0 then release_held(S, true) end
    S.cur_frame = frame
    if S.syns > 0 and not S.synack and not S.established then
        unanswered_syns(S)
        return
    end
    if S.D then
        if cli_only then add_anomaly(S, "one_sided") end
        close_data_phase(S, at_capture_end and "capture ended with the server still waiting" or "the connection closed",
            frame, ts, nil)
    end
    bdat_judge(S, frame, ts, cli_only)
    tls_judge(S, frame, ts, at_capture_end, srv_only or cli_only)
    greeting_judge(S, frame, ts, at_capture_end)
    if cli_only or srv_only then
        add_anomaly(S, "one_sided")
    end
    if S.midstream then add_anomaly(S, "midstream") end
    if at_capture_end and not S.c.fin and not S.s.fin then add_anomaly(S, "open_at_capture_end") end
end
local finish_session = M.finish_session

-- The capture ended (at its last frame) with the conversation S still open.
function M.finish_at_capture_end(S, last_frame)
    if S.kind == "dns" then
        dns.finish_at_capture_end(S, last_frame)
    else
        finish_session(S, S.last_frame, S.last_ts, true)
    end
end

return M
