-- smtpdiag.smtp_replies: the SMTP server's bytes: reply lines (multi-line replies joined),
-- each matched to the command it answers, and what the answer means for the session:
-- greeting, EHLO capabilities, transaction outcomes, AUTH, STARTTLS, replies during DATA.
local M = {}

local prefs = require("smtpdiag.prefs")
local session = require("smtpdiag.session")
local smtp_commands = require("smtpdiag.smtp_commands")
local smtp_data = require("smtpdiag.smtp_data")
local tls = require("smtpdiag.tls")
local util = require("smtpdiag.util")

local P = prefs.P
local ann, ann_append, add_anomaly = session.ann, session.ann_append, session.add_anomaly
local finding, drop_finding = session.finding, session.drop_finding
local txn_current, txn_cause, pop_pending = session.txn_current, session.txn_cause, session.pop_pending
local data_start, data_end, smuggling_check = smtp_data.data_start, smtp_data.data_end, smtp_data.smuggling_check
local release_held = smtp_commands.release_held
local tls_feed, tls_start = tls.feed, tls.start
local clean, secs, take_line, chomp = util.clean, util.secs, util.take_line, util.chomp
local format, floor = string.format, math.floor
local late_greeting

-- The reply's last line, printable.
local function reply_text(S)
    local l = S.reply_lines[#S.reply_lines] or ""
    return clean(l, 200)
end

-- A greeting whose text a middlebox replaced by asterisks ("220 *****").
function M.is_masked_banner(lines)
    local txt = (lines[1] or ""):sub(5)
    return #txt >= 3 and txt:match("^[%*%s]+$") ~= nil
end
local is_masked_banner = M.is_masked_banner

-- Client data before the greeting counts once the server is seen to speak.
function M.pregreet_confirm(S, frame)
    local c = S.pregreet_cand
    if c and not S.pregreet_done then
        S.pregreet_done = true
        finding(S, "pregreet", c.frame, c.ts,
            format("client sent '%s' (frame %d) before the server's greeting (frame %d)", c.verb, c.frame, frame))
    end
end
local pregreet_confirm = M.pregreet_confirm

-- The command a reply answers: the queued verb, "<greeting>" for the first reply, nil for none.
local function answered_verb(S, verb, code)
    if S.midstream and not S.greeted and not verb and not S.last_cmd_frame and code == 220 then
        -- The capture starts after the handshake but before the greeting: judgeable.
        S.midstream = false
    end
    if not S.greeted and (not verb or verb == "<greeting>") and not S.midstream then
        return "<greeting>"
    elseif verb == "<greeting>" and S.greeted then
        return nil
    end
    return verb
end

local function on_greeting(S, code, cls, text, a, frame, ts)
    S.greeted = true
    pregreet_confirm(S, frame)
    S.greet_ts = ts
    local since = S.syn_ts or S.first_ts
    a.greeting_latency = ts - since
    S.phase = "cmd"
    if cls == 4 or cls == 5 then
        finding(S, "greeting_rejected", frame, ts, format("greeting rejected: '%s' (frame %d)", text, frame))
    elseif code == 220 and is_masked_banner(S.reply_lines) then
        finding(S, "banner_masked", frame, ts,
            format("greeting '%s' is masked (frame %d): a middlebox's SMTP inspection is in the path", text, frame))
    end
end

-- The EHLO reply's capability lines: STARTTLS masked by a middlebox, early pipelining.
local function ehlo_capabilities(S, frame, ts)
    for _, l in ipairs(S.reply_lines) do
        local cap = l:sub(5)
        if #cap >= 4 and cap:match("^XXX+%u?$") then  -- a keyword masked to X's (its last letter may stay)
            finding(S, "starttls_stripped", frame, ts,
                format("EHLO capability '%s' in frame %d: STARTTLS hidden by a middlebox", clean(l, 40), frame))
        end
        if cap:upper():match("^PIPE_CONNECT") then
            -- Early pipelining: this server invites commands before its greeting.
            S.pipe_connect = true
            if S.pregreet_done then drop_finding(S, "pregreet"); add_anomaly(S, "pipe_connect") end
        end
    end
end

local function on_helo_reply(S, _, verb, _, cls, text, _, frame, ts)
    if cls == 2 then
        S.helo_ok = true
        drop_finding(S, S.helo_refusal or "")
        ehlo_capabilities(S, frame, ts)
    elseif cls == 4 or cls == 5 then
        add_anomaly(S, "helo_refused")
        if not S.helo_ok then
            local code_name = cls == 4 and "tempfail" or "rejected"
            if not S.anomaly_set[code_name] then
                S.helo_refusal = code_name
                finding(S, code_name, frame, ts, format("%s answered '%s' (frame %d)", clean(verb, 32), text, frame))
            end
        end
    end
end

-- MAIL, RCPT, DATA, BDAT and the end of data: the transaction's outcome.
local function on_transaction_reply(S, cmd, verb, code, cls, text, a, frame, ts)
    if verb == "DATA" then
        if code == 354 then data_start(S, frame, ts, false) else S.cmode = "cmd" end
        release_held(S)
        S.cur_frame = frame
    end
    local message_end = verb == "<end-of-data>" or (verb == "BDAT" and cmd.mark == "bdat_last")
    if verb == "<end-of-data>" then
        a.final_latency = ts - cmd.ts
        local t = S.txn
        if t and t.terminator and t.terminator ~= "crlf" and cls == 2 then
            add_anomaly(S, "nonstandard_terminator_accepted")
        end
    end
    if cls == 4 or cls == 5 then
        local code_name = cls == 4 and "tempfail" or "rejected"
        local what = verb == "<end-of-data>" and "end of data" or verb
        if verb == "RCPT" or verb == "MAIL" then
            what = format("%s %s", verb, clean(cmd.arg and ("<" .. cmd.arg .. ">") or "", 80))
        end
        finding(S, code_name, frame, ts, format("%s answered '%s' (frame %d)", what, text, frame))
        txn_cause(S, code_name)
        if verb == "BDAT" and S.cmode == "bdat" then
            add_anomaly(S, "bdat_rejected")
        end
    end
    if message_end then
        if cls == 2 then S.messages = S.messages + 1 end
        S.msgs_done = S.msgs_done + 1
        S.bdat_done = false
        S.txn = nil
    end
end

local function on_auth_reply(S, _, _, code, cls, text, _, frame, ts)
    S.auth_guess = false
    if code ~= 334 and S.cmode == "auth" then S.cmode, S.auth_challenged = "cmd", false end
    if code == 334 then
        S.cmode = "auth"
        S.auth_challenged = true
    elseif cls == 2 then
        S.auth_ok = true
        drop_finding(S, S.auth_refusal or "")
    elseif cls == 4 or cls == 5 then
        add_anomaly(S, "auth_refused")
        local code_name = cls == 5 and "auth_failed" or "tempfail"
        S.auth_refusal = code_name
        finding(S, code_name, frame, ts, format("AUTH answered '%s' (frame %d)", text, frame))
    end
end

local function on_starttls_reply(S, _, _, code, cls, text, _, frame, ts)
    if code == 220 then
        local t = txn_current(S, frame)
        t.tls, t.activity, t.last_reply = true, true, text
        tls_start(S, frame, ts)
    elseif cls == 4 or cls == 5 then
        add_anomaly(S, "starttls_refused")
    end
end

local function on_other_reply(S, _, _, _, cls)
    if cls == 4 or cls == 5 then
        add_anomaly(S, "command_refused")
    end
end

-- What each answered verb's reply means; other verbs: on_other_reply.
local ON_REPLY = {
    EHLO = on_helo_reply, HELO = on_helo_reply, LHLO = on_helo_reply,
    MAIL = on_transaction_reply, RCPT = on_transaction_reply, DATA = on_transaction_reply,
    BDAT = on_transaction_reply, ["<end-of-data>"] = on_transaction_reply,
    AUTH = on_auth_reply,
    STARTTLS = on_starttls_reply,
    QUIT = function(S, _, _, _, cls) if cls == 2 then S.ended_normally = true end end,
}

-- A refusal quoting a masked verb ('500 5.5.1 Command unrecognized: "XXXX ..."') the client never
-- sent: a middlebox between this capture point and the server rewrote the command.
local function masked_in_reply(S, cmd, verb, cls, text, frame, ts)
    if cls ~= 5 and cls ~= 4 then return end
    local masked = text:match("[\"'`]%s*(XXX+)[%s\"'`]") or text:match("[\"'`]%s*(XXX+)$")
    if masked and not verb:match("^X+$") then
        finding(S, "command_masked", frame, ts,
            format("the client sent %s (frame %d), the reply quotes it masked as '%s': '%s' (frame %d): a middlebox's SMTP inspection masks commands",
                clean(verb, 32), cmd and cmd.frame or frame, clean(masked, 32), text, frame))
    end
end

-- A capture without the handshake whose client spoke first: a 220 as the server's first bytes, at
-- exactly the sequence number the client's first segment acknowledged, is the greeting (the
-- client had received nothing when it sent its command): the session is judgeable, and pregreet.
late_greeting = function(S, code)
    local nth = (S.nreplies or 0) + 1
    S.nreplies = nth
    if not (nth == 1 and S.midstream and not S.greeted and code == 220) then return false end
    local first = S.pending[S.qh]
    if not (first and S.first_c_ack and S.first_s_seq and S.first_c_ack == S.first_s_seq) then return false end
    S.midstream = false
    S.pregreet_cand = S.pregreet_cand or { frame = first.frame, ts = first.ts, verb = clean(first.verb, 32) }
    return true
end

-- A complete reply (its last line has code) outside message data.
local function on_reply(S, code, frame, ts)
    local text = reply_text(S)
    local cls = floor(code / 100)
    S.last_reply = text
    local cmd = not late_greeting(S, code) and pop_pending(S) or nil
    local verb = answered_verb(S, cmd and cmd.verb or nil, code)
    if not P.batch then
        ann_append(S, frame, "replies", { code = code, to = verb, to_frame = cmd and cmd.frame or nil,
                                          latency = cmd and cmd.ts and (ts - cmd.ts) or nil })
    end
    local a = ann(S, frame)
    if S.txn then S.txn.last_reply = text; S.txn.last_frame = frame end
    if verb == "<greeting>" then
        on_greeting(S, code, cls, text, a, frame, ts)
        return
    end
    if not verb then
        if code == 334 and (S.cmode == "cmd" or S.cmode == "auth") then
            S.cmode, S.auth_challenged, S.auth_guess = "auth", true, false
        elseif S.cmode == "auth" then
            S.cmode, S.auth_challenged, S.auth_guess = "cmd", false, false  -- a final reply
        end
        add_anomaly(S, "unsolicited_reply")
        if code == 421 then
            finding(S, "tempfail", frame, ts, format("server closed the session: '%s' (frame %d)", text, frame))
        end
        return
    end
    masked_in_reply(S, cmd, verb, cls, text, frame, ts)
    local handler = ON_REPLY[verb] or on_other_reply
    if code == 334 and verb ~= "AUTH" and (S.cmode == "cmd" or S.cmode == "auth") then
        -- Only AUTH is answered 334 (its command not in the capture, or answered out of
        -- turn): the client's next line is credentials.
        handler = on_auth_reply
    end
    handler(S, cmd, verb, code, cls, text, a, frame, ts)
    if code == 421 then
        finding(S, "tempfail", frame, ts,
            format("server closed the session: '%s' after %s (frame %d)", text, clean(verb, 32), frame))
    end
end

-- A server reply arriving while the client is still in the DATA phase.
local function reply_during_data(S, code, frame, ts)
    local D = S.D
    local text = reply_text(S)
    local cls = floor(code / 100)
    local cmd_frame = D.start_frame
    if D.cand then
        -- The server took a non-standard sequence as the end of data.
        local c = D.last_cand or D.cand
        finding(S, "bare_lf_terminator", c.frame, c.ts,
            format("message data ended by %s in frame %d, not <CRLF>.<CRLF>; server replied '%s' (frame %d)",
                c.seqname, c.frame, text, frame))
        txn_cause(S, "bare_lf_terminator")
        if D.smuggle and D.smuggle.frame > c.frame then
            smuggling_check(S, D)
        end
        if code == 421 then
            finding(S, "data_timeout", frame, ts,
                format("server gave up waiting for <CRLF>.<CRLF>: '%s' %s after the last data (frame %d)",
                    text, secs(ts - D.last_ts), frame))
            data_end(S, frame, ts, c.kind, false)
        else
            if cls == 2 then add_anomaly(S, "nonstandard_terminator_accepted") end
            data_end(S, c.frame, c.ts, c.kind, false)
            ann(S, c.frame).data_terminated = false
        end
    elseif D.gap then
        add_anomaly(S, "capture_gap")
        data_end(S, frame, ts, nil, nil)
    else
        if code == 421 or cls == 4 then
            finding(S, "data_timeout", frame, ts,
                format("354 at frame %d, %d bytes of data, no <CRLF>.<CRLF>; server replied '%s' %s after the last data (frame %d)",
                    cmd_frame, D.bytes, text, secs(ts - D.last_ts), frame))
            txn_cause(S, "data_timeout")
        else
            finding(S, cls == 5 and "rejected" or "data_not_terminated", frame, ts,
                format("server answered '%s' in the middle of message data, %d bytes after 354 (frame %d)", text, D.bytes, frame))
        end
        data_end(S, frame, ts, "none", false)
    end
    ann_append(S, frame, "replies", { code = code, to = "<data>", to_frame = cmd_frame, latency = ts - D.start_ts })
    S.last_reply = text
    if S.txn then S.txn.last_reply = text end
    if cls == 2 then S.messages = S.messages + 1 end
    S.msgs_done = S.msgs_done + 1
    S.txn = nil
end

-- One line from the server: "250-..." continues a reply, "250 ..." completes it.
local function server_line(S, line, frame, ts)
    local text = chomp(line)
    local codes, sep = text:match("^(%d%d%d)([ %-]?)")
    local code = tonumber(codes or "")
    if not code or code < 200 or code > 599 then
        add_anomaly(S, "malformed_reply")
        return
    end
    if #S.reply_lines < 64 then S.reply_lines[#S.reply_lines + 1] = text:sub(1, 512) end
    if sep == "-" then return end
    if S.D then
        reply_during_data(S, code, frame, ts)
    else
        on_reply(S, code, frame, ts)
    end
    local rl = S.reply_lines
    for i = #rl, 1, -1 do rl[i] = nil end
end
M.server_line = server_line

-- Consumes server bytes in order.
function M.server_bytes(S, s, frame, ts)
    if S.phase == "tls" then
        tls_feed(S, "s", s, frame, ts)
        return
    end
    local pos, n = 1, #s
    local d = S.s
    while pos <= n do
        local line, after = take_line(d, s, pos)
        if not line then return end
        pos = after
        server_line(S, line, frame, ts)
        if S.phase == "tls" and pos <= n then
            tls_feed(S, "s", s:sub(pos), frame, ts)
            return
        end
    end
end

return M
