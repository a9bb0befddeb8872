-- smtpdiag.smtp_commands: the SMTP client's bytes, in order: command lines (transactions,
-- AUTH exchanges, masked commands, talking before the greeting), then message data, BDAT
-- chunks or TLS records as the session's mode says; bytes after DATA wait for its reply.
local M = {}

local prefs = require("smtpdiag.prefs")
local session = require("smtpdiag.session")
local smtp_data = require("smtpdiag.smtp_data")
local tls = require("smtpdiag.tls")
local util = require("smtpdiag.util")

local P = prefs.P
local ann, ann_append, add_anomaly, finding = session.ann, session.ann_append, session.add_anomaly, session.finding
local txn_begin, txn_current, push_pending = session.txn_begin, session.txn_current, session.push_pending
local data_start, data_feed, terminated_ok, bdat_feed =
    smtp_data.data_start, smtp_data.data_feed, smtp_data.terminated_ok, smtp_data.bdat_feed
local tls_feed = tls.feed
local clean, take_line, rest_of = util.clean, util.take_line, util.rest_of
local format = string.format

-- A line answering a 334 challenge: credentials, never shown. "*" cancels.
local function auth_continuation(S, frame, ts)
    ann_append(S, frame, "cmds", "(AUTH data)")
    ann(S, frame).cred = true
    push_pending(S, "AUTH", "(continuation)", frame, ts)
end

-- What every command says about the session, whatever its verb.
local function note_command(S, verb, arg, frame, ts)
    if not P.batch then ann_append(S, frame, "cmds", clean(verb, 32)) end
    S.last_cmd_frame = frame
    if verb == "AUTH" and arg:match("^%S+%s+%S") then ann(S, frame).cred = true end  -- an initial response
    if not S.greeted and not S.midstream and not S.pregreet_cand then
        S.pregreet_cand = { frame = frame, ts = ts, verb = clean(verb, 32) }
    end
    if #verb >= 3 and verb:match("^X+$") then
        finding(S, "command_masked", frame, ts,
            format("client command rewritten to '%s' (frame %d): a middlebox's SMTP inspection masks commands", clean(verb, 32), frame))
    end
end

local function on_bdat(S, verb, arg, frame, ts)
    local size, rest = arg:match("^(%d+)%s*(.-)$")
    local t = txn_current(S, frame)
    t.bdat = true
    if size and #size <= 15 then
        S.bdat_remaining = tonumber(size)
        S.bdat_last = rest:upper() == "LAST"
        S.bdat_frame = frame
        S.bdat_announced = tonumber(size)
        t.bytes = t.bytes or 0
        if S.bdat_remaining > 0 then
            S.cmode = "bdat"
            S.phase = "bdat"
        elseif S.bdat_last then
            S.bdat_done = true
        end
        if S.bdat_last then t.bdat_last = true end
    else
        add_anomaly(S, "bdat_invalid")
    end
    if rest and rest:upper() == "LAST" or arg:upper():match(" LAST$") then
        push_pending(S, verb, arg, frame, ts)
        S.pending[S.qt].bdat_last = true
        return true
    end
end

local function on_helo(S, _, arg) S.helo = clean(arg, 100) end

-- What each verb does to the session; a handler that queued the command itself returns true.
local VERBS = {
    MAIL = function(S, _, arg, frame)
        if S.txn and S.txn.activity then S.txn = nil end
        local t = txn_begin(S, frame)
        t.mailfrom = arg:match("^[Ff][Rr][Oo][Mm]:%s*<([^>]*)>") or arg:match("^[Ff][Rr][Oo][Mm]:%s*(%S*)")
        t.activity = true
    end,
    RCPT = function(S, verb, arg, frame, ts)
        local t = txn_current(S, frame)
        local addr = arg:match("^[Tt][Oo]:%s*<([^>]*)>") or arg:match("^[Tt][Oo]:%s*(%S+)")
        if addr and #t.rcpt < 1000 then
            addr = addr:gsub("ORCPT=rfc822;?", "")
            t.rcpt[#t.rcpt + 1] = clean(addr, 200)
        end
        t.activity = true
        push_pending(S, verb, addr, frame, ts)
        return true
    end,
    DATA = function(S, _, _, frame)
        -- Bytes after DATA wait for the reply: 354 makes them message data, 5xx commands.
        S.cmode = "hold"
        txn_current(S, frame)
    end,
    BDAT = on_bdat,
    EHLO = on_helo, HELO = on_helo, LHLO = on_helo,
    QUIT = function(S) S.quit = true end,
}

-- A complete line from the client, in command mode.
local function command_line(S, line, frame, ts)
    local text = line:gsub("\r?\n$", "")
    if S.cmode == "auth" and text:find("[ :]") then
        S.cmode = "cmd"  -- not base64: the exchange is over (its final reply may be missing)
    end
    if S.cmode == "auth" then
        auth_continuation(S, frame, ts)
        return
    end
    local verb, arg = text:match("^%s*(%S+)%s*(.-)%s*$")
    if not verb then return end
    verb = verb:upper():sub(1, 32)
    note_command(S, verb, arg, frame, ts)
    local handler = VERBS[verb]
    if handler and handler(S, verb, arg, frame, ts) then return end
    push_pending(S, verb, arg, frame, ts)
    if verb == "AUTH" then
        -- Until AUTH's final reply every client line is credentials, even one sent before the 334.
        S.cmode = "auth"
    end
end
M.command_line = command_line

-- Consumes client bytes in order; s is never shared with another frame.
local function client_bytes(S, s, frame, ts)
    local pos, n = 1, #s
    local guard = 0
    while pos <= n do
        guard = guard + 1
        if guard > 100000 then return end
        local m = S.cmode
        if m == "tls" then
            tls_feed(S, "c", rest_of(s, pos), frame, ts)
            return
        elseif m == "data" then
            local used = data_feed(S, rest_of(s, pos), frame, ts)
            if not used then return end
            terminated_ok(S, frame, ts)
            pos = pos + used
        elseif m == "bdat" then
            pos = pos + bdat_feed(S, rest_of(s, pos))
        elseif m == "hold" then
            local chunk = rest_of(s, pos)
            if S.held_bytes < 1048576 then
                S.held[#S.held + 1] = { data = chunk, frame = frame, ts = ts }
                S.held_bytes = S.held_bytes + #chunk
            end
            return
        else
            -- command (or auth continuation) lines
            local line, after = take_line(S.c, s, pos)
            if not line then return end
            pos = after
            command_line(S, line, frame, ts)
        end
    end
end
M.client_bytes = client_bytes

-- Replays bytes held after a DATA command, now that its reply is known (as_data: the capture
-- has no reply, so they are taken as message data).
function M.release_held(S, as_data)
    local held = S.held
    S.held, S.held_bytes = {}, 0
    if as_data then data_start(S, held[1].frame, held[1].ts, true) end
    for _, h in ipairs(held) do
        S.cur_frame = h.frame
        client_bytes(S, h.data, h.frame, h.ts)
    end
end

return M
