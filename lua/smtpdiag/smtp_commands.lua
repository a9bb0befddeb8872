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
local ann_append, add_anomaly, finding = session.ann_append, session.add_anomaly, session.finding
local txn_begin, txn_current, push_pending = session.txn_begin, session.txn_current, session.push_pending
local data_start, data_feed, terminated_ok, bdat_feed =
    smtp_data.data_start, smtp_data.data_feed, smtp_data.terminated_ok, smtp_data.bdat_feed
local tls_feed = tls.feed
local line_begin, line_part, cred_line = session.line_begin, session.line_part, session.cred_line
local clean, take_line, rest_of, chomp, MOD32 = util.clean, util.take_line, util.rest_of, util.chomp, util.MOD32
local format = string.format

-- SMTP verbs (and extensions) shown as they are; any other verb is shown as UNKNOWN_VERB: a
-- client line need not be a command (a credential read out of its exchange), never echo it.
local KNOWN = {}
for v in ("HELO EHLO LHLO MAIL RCPT DATA BDAT RSET VRFY EXPN HELP NOOP QUIT AUTH STARTTLS TURN ETRN ATRN "
          .. "SEND SOML SAML BURL XCLIENT XFORWARD VERB ONEX XEXPS XADR XQUE XSTA XTRN XUSR"):gmatch("%S+") do
    KNOWN[v] = true
end
M.KNOWN = KNOWN
local UNKNOWN_VERB = "(unknown)"
M.UNKNOWN_VERB = UNKNOWN_VERB

-- The verb as shown: itself when known, or masked by a middlebox ("XXXX"), else UNKNOWN_VERB.
local function shown_verb(verb)
    if KNOWN[verb] or (#verb >= 3 and verb:match("^X+$")) then return verb end
    return UNKNOWN_VERB
end

-- A line that is no base64 token (a space or a colon inside): a command, not credentials.
local function not_base64(text)
    return text:match("^%s*(.-)%s*$"):find("[%s:]") ~= nil
end

-- A line answering a 334 challenge (or sent before it, or the first line of a capture that
-- starts inside the exchange): credentials, never shown. "*" cancels. While the exchange is
-- only guessed (S.auth_guess: no AUTH, no 334 seen) no reply is expected of it.
local function credentials(S, frame, ts, after)
    ann_append(S, frame, "cmds", "(AUTH data)")
    cred_line(S, S.c, frame, after)
    if not S.auth_guess then push_pending(S, "AUTH", "(continuation)", frame, ts) end
end

-- The client line being assembled is credentials whatever follows: in an AUTH exchange, an
-- AUTH command's initial response, or a bare token opening a capture that starts mid-session.
local function partial_is_credentials(S, part)
    if S.cmode == "auth" then return true end
    if part:match("^%s*[Aa][Uu][Tt][Hh]%s+%S+%s+%S") then return true end
    return S.midstream and not S.c_lines and not S.greeted and not part:match("^%s*%S+%s")
end

-- What every command says about the session, whatever its verb (shown: as shown_verb says).
local function note_command(S, shown, arg, frame, ts, after)
    if not P.batch then ann_append(S, frame, "cmds", clean(shown, 32)) end
    S.last_cmd_frame = frame
    if shown == "AUTH" and arg:match("^%S+%s+%S") then cred_line(S, S.c, frame, after) end  -- an initial response
    if not S.greeted and not S.midstream and not S.pregreet_cand then
        S.pregreet_cand = { frame = frame, ts = ts, verb = clean(shown, 32) }
    end
    if #shown >= 3 and shown:match("^X+$") then
        finding(S, "command_masked", frame, ts,
            format("client command rewritten to '%s' (frame %d): a middlebox's SMTP inspection masks commands", clean(shown, 32), frame))
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
        push_pending(S, verb, arg, frame, ts, "bdat_last")
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

-- A complete line from the client, in command mode (it ends at position after of the bytes
-- being read).
local function command_line(S, line, frame, ts, after)
    local text = chomp(line)
    local first = not S.c_lines
    S.c_lines = true
    if S.cmode == "auth" then
        -- Until AUTH's final reply every client line is credentials, even one sent before the
        -- 334; before any 334 (or when the server's bytes were lost) a line that is no base64
        -- token is a command pipelined after AUTH's initial response.
        if (S.auth_challenged and not S.s_gap) or not not_base64(text) then
            credentials(S, frame, ts, after)
            return
        end
        S.cmode = "cmd"
    end
    local verb, arg = text:match("^%s*(%S+)%s*(.-)%s*$")
    if not verb then return end
    verb = verb:upper():sub(1, 32)
    if first and arg == "" and S.midstream and not S.greeted and not KNOWN[verb] then
        -- The capture starts inside an AUTH exchange: this token answers a challenge.
        S.cmode, S.auth_guess = "auth", true
        credentials(S, frame, ts, after)
        return
    end
    local shown = shown_verb(verb)
    note_command(S, shown, arg, frame, ts, after)
    local handler = VERBS[verb]
    if handler and handler(S, verb, arg, frame, ts) then return end
    push_pending(S, shown, verb ~= "AUTH" and arg or nil, frame, ts)
    if verb == "AUTH" then
        -- Until AUTH's final reply every client line is credentials, even one sent before the 334.
        S.cmode = "auth"
        S.auth_challenged = false
    end
end
M.command_line = command_line

-- Consumes client bytes in order; s is never shared with another frame.
local function client_bytes(S, s, frame, ts)
    local pos, n = 1, #s
    local guard = 0
    local d = S.c
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
                S.held[#S.held + 1] = { data = chunk, frame = frame, ts = ts, src = d.dsrc,
                                        seq = d.dseq and (d.dseq + pos - 1) % MOD32 }
                S.held_bytes = S.held_bytes + #chunk
            end
            return
        else
            -- command (or auth continuation) lines
            if not P.batch then line_begin(d, pos) end
            local line, after = take_line(d, s, pos)
            if not line then
                if not P.batch then line_part(S, d, partial_is_credentials(S, d.line)) end
                return
            end
            pos = after
            command_line(S, line, frame, ts, after)
            d.lfr = nil
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
        S.c.dseq, S.c.dsrc = h.seq, h.src
        client_bytes(S, h.data, h.frame, h.ts)
    end
end

return M
