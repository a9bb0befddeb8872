-- smtpdiag.mailbox: POP3 and IMAP sessions (same TCP layer as SMTP, their own line protocols):
-- commands and status replies, logins (the user, never the password), STLS/STARTTLS, literals.
local M = {}

local prefs = require("smtpdiag.prefs")
local session = require("smtpdiag.session")
local tls = require("smtpdiag.tls")
local util = require("smtpdiag.util")

local P = prefs.P
local ann, ann_append, add_anomaly = session.ann, session.ann_append, session.add_anomaly
local finding, drop_finding = session.finding, session.drop_finding
local push_pending, pop_pending = session.push_pending, session.pop_pending
local tls_feed, tls_start = tls.feed, tls.start
local line_begin, line_part, cred_line = session.line_begin, session.line_part, session.cred_line
local clean, take_line, b64decode, chomp = util.clean, util.take_line, util.b64decode, util.chomp
local format, min = string.format, math.min

-- The user of AUTH PLAIN's initial response ("authzid\0authcid\0password"): the password is dropped here.
function M.plain_user(b64)
    local raw = b64decode(b64 or "")
    local _, authcid = raw:match("^([^%z]*)%z([^%z]*)%z")
    return authcid and clean(authcid, 100) or nil
end
local plain_user = M.plain_user

-- POP3 and IMAP verbs shown as they are; any other is shown as UNKNOWN_VERB (and counted as
-- OTHER): a client line need not be a command (credentials read out of their exchange).
local function verb_set(words)
    local t = {}
    for v in words:gmatch("%S+") do t[v] = true end
    return t
end
local POP_VERBS = verb_set("USER PASS APOP AUTH STAT LIST RETR DELE NOOP RSET QUIT TOP UIDL CAPA STLS UTF8 LANG LAST XTND")
local IMAP_VERBS = verb_set("CAPABILITY NOOP LOGOUT STARTTLS AUTHENTICATE LOGIN SELECT EXAMINE CREATE DELETE RENAME "
    .. "SUBSCRIBE UNSUBSCRIBE LIST LSUB STATUS APPEND CHECK CLOSE EXPUNGE SEARCH FETCH STORE COPY MOVE UID IDLE "
    .. "NAMESPACE ENABLE ID UNSELECT GETQUOTA GETQUOTAROOT SETQUOTA GETACL SETACL DELETEACL MYRIGHTS LISTRIGHTS "
    .. "COMPRESS XLIST GETMETADATA SETMETADATA NOTIFY ESEARCH SORT THREAD UNAUTHENTICATE REPLACE XAPPLEPUSHSERVICE")
local IMAP_UID_VERBS = verb_set("FETCH STORE COPY MOVE SEARCH EXPUNGE SORT THREAD")
local UNKNOWN_VERB = "(unknown)"

-- A line that is no base64 token (a space or a colon inside): a command, not credentials.
local function not_base64(text)
    return text:match("^%s*(.-)%s*$"):find("[%s:]") ~= nil
end

local function count_cmd(S, verb)
    if verb == UNKNOWN_VERB then verb = "OTHER" end
    S.cmd_counts = S.cmd_counts or {}
    if not S.cmd_counts[verb] then
        S.cmd_order = S.cmd_order or {}
        if #S.cmd_order >= 40 then verb = "OTHER" end
        if not S.cmd_counts[verb] then S.cmd_order[#S.cmd_order + 1] = verb; S.cmd_counts[verb] = 0 end
    end
    S.cmd_counts[verb] = S.cmd_counts[verb] + 1
end

-- A client line (ending at position after of the bytes being read) shown as text; cred: it
-- carries credentials, every frame that holds a byte of it is flagged.
local function note_cmd(S, frame, text, cred, after)
    if P.batch then return end
    if cred then cred_line(S, S.c, frame, after) end
    ann_append(S, frame, "cmds", text, 32)
end

local function note_reply(S, frame, ts, status, cmd)
    if P.batch then return end
    ann_append(S, frame, "status", status, 32)
    if cmd then
        ann_append(S, frame, "replies",
                   { to = cmd.verb, to_frame = cmd.frame, latency = cmd.ts and (ts - cmd.ts) or nil })
    end
end

-- The server's greeting (status or untagged word) was seen at frame.
local function greeted(S, frame, ts, status)
    S.greeted, S.greet_ts = true, ts
    S.phase = "cmd"
    note_reply(S, frame, ts, status, nil)
    ann(S, frame).greeting_latency = ts - (S.syn_ts or S.first_ts)
end

local function auth_refused(S, code, frame, ts, what, text)
    add_anomaly(S, "auth_refused")
    if not S.auth_ok then
        S.auth_refusal = code
        finding(S, code, frame, ts, format("%s answered '%s' (frame %d)", what, text, frame))
    end
end

local function auth_accepted(S)
    S.auth_ok = true
    if S.auth_refusal then drop_finding(S, S.auth_refusal); add_anomaly(S, "auth_refused") end
end

-- A client line inside a POP3 AUTH / IMAP AUTHENTICATE exchange: credentials, never shown;
-- only the user name is taken from LOGIN's first answer or PLAIN's response.
local function auth_line(S, text, frame, after)
    note_cmd(S, frame, "(AUTH data)", true, after)
    if S.auth_login_user_next then
        S.user = S.user or clean(b64decode(text), 100)
        S.auth_login_user_next = false
    elseif S.auth_plain_next then
        S.user = S.user or plain_user(text)
        S.auth_plain_next = false
    end
end

-- AUTH (POP3) / AUTHENTICATE (IMAP) with mechanism and optional initial response: who logs in,
-- and whether the client's next line is the user name (LOGIN) or PLAIN's response.
local function auth_start(S, mech, initial, login_next)
    mech = (mech or ""):upper()
    if mech == "PLAIN" and initial ~= "" then S.user = S.user or plain_user(initial) end
    S.auth_login_user_next = mech == "LOGIN" and login_next
    S.auth_plain_next = mech == "PLAIN" and initial == ""
    return mech
end

-- What a POP3/IMAP status reply means for the session, by the command it answers.
local POP_RULES = { login_ok = { PASS = true, APOP = true, AUTH = true },
                    login_refused = { USER = true, PASS = true, APOP = true, AUTH = true },
                    tls = "STLS", quit = "QUIT", auth_failed = "pop_auth_failed" }
local IMAP_RULES = { login_ok = { LOGIN = true, AUTHENTICATE = true },
                     login_refused = { LOGIN = true, AUTHENTICATE = true },
                     tls = "STARTTLS", quit = "LOGOUT", auth_failed = "imap_auth_failed" }

local function outcome(S, rules, ok, verb, frame, ts, shown)
    if ok then
        if rules.login_ok[verb] then auth_accepted(S) end
        if verb == rules.tls then tls_start(S, frame, ts) end
        if verb == rules.quit then S.ended_normally = true end
    elseif rules.login_refused[verb] then
        auth_refused(S, rules.auth_failed, frame, ts, verb, shown)
    elseif verb == rules.tls then
        add_anomaly(S, "starttls_refused")
    else
        add_anomaly(S, "command_refused")
    end
end

-- POP3 ----------------------------------------------------------------------

local POP_MULTI = { CAPA = true, RETR = true, TOP = true }

local function pop_command(S, line, frame, ts, after)
    local text = chomp(line)
    local first = not S.c_lines
    S.c_lines = true
    if S.cmode == "auth" then
        -- Until the final +OK/-ERR every client line is credentials; before any "+ " challenge
        -- (or when the server's bytes were lost) a line that is no base64 token is a command.
        if (S.auth_challenged and not S.s_gap) or not not_base64(text) then
            auth_line(S, text, frame, after)
            return
        end
        S.cmode = "cmd"
    end
    local verb, arg = text:match("^%s*(%S+)%s*(.-)%s*$")
    if not verb then return end
    verb = verb:upper():sub(1, 16)
    if not POP_VERBS[verb] then
        if first and arg == "" and S.midstream and not S.greeted then
            -- The capture starts inside an AUTH exchange: this token answers a challenge.
            S.cmode, S.auth_challenged = "auth", true
            S.last_cmd_frame = frame  -- the server's next status answers it: no greeting
            auth_line(S, text, frame, after)
            return
        end
        verb = UNKNOWN_VERB
    end
    note_cmd(S, frame, verb, verb == "PASS" or verb == "APOP" or (verb == "AUTH" and arg:match("^%S+%s+%S") ~= nil), after)
    count_cmd(S, verb)
    S.last_cmd_frame = frame
    if verb == "USER" then
        S.user = clean(arg, 100)
    elseif verb == "APOP" then
        S.user = clean(arg:match("^(%S+)") or "", 100)
    elseif verb == "AUTH" then
        local mech, initial = arg:match("^(%S+)%s*(%S*)")
        mech = auth_start(S, mech, initial, initial == "")
        if mech == "" then verb = "AUTH-LIST" else S.cmode, S.auth_challenged = "auth", false end
    elseif verb == "QUIT" then
        S.quit = true
    end
    local multi = POP_MULTI[verb] or ((verb == "LIST" or verb == "UIDL") and arg == "") or verb == "AUTH-LIST"
    push_pending(S, verb, nil, frame, ts, multi and "multi" or nil)
end

local function pop_response(S, line, frame, ts)
    local text = chomp(line)
    if S.pop_multiline then
        if text == "." then S.pop_multiline = false end
        return
    end
    if text:match("^%+ ") or text == "+" then
        -- AUTH challenge: the client's next line is credentials.
        S.cmode, S.auth_challenged = "auth", true
        return
    end
    local status = text:match("^([%+%-][OE][KR]R?)")
    if status ~= "+OK" and status ~= "-ERR" then
        add_anomaly(S, "malformed_reply")
        return
    end
    local shown = clean(text, 200)
    S.last_reply = shown
    local cmd = pop_pending(S)
    local verb = cmd and cmd.verb
    if S.midstream and not S.greeted and not verb and not S.last_cmd_frame and status == "+OK" then
        S.midstream = false
    end
    if not S.greeted and (verb == "<greeting>" or (not verb and not S.midstream)) then
        greeted(S, frame, ts, status)
        if status == "-ERR" then
            finding(S, "greeting_rejected", frame, ts, format("greeting rejected: '%s' (frame %d)", shown, frame))
        end
        return
    end
    if verb == "<greeting>" then verb, cmd = nil, nil end
    note_reply(S, frame, ts, status, cmd)
    if S.cmode == "auth" then S.cmode, S.auth_challenged = "cmd", false end
    if not verb then add_anomaly(S, "unsolicited_reply"); return end
    if status == "+OK" and cmd.mark == "multi" then S.pop_multiline = true end
    outcome(S, POP_RULES, status == "+OK", verb, frame, ts, shown)
end

-- IMAP: "tag COMMAND ..." from the client; "* ..." untagged, "+ ..." continuation, "tag OK|NO|BAD ..." from the server.

-- LOGIN's first argument: a quoted string (spaces and \" \\ escapes inside), a literal, or an atom.
local function imap_first_arg(rest)
    if rest:sub(1, 1) == '"' then
        local out, i, n = {}, 2, math.min(#rest, 1024)
        while i <= n do
            local c = rest:sub(i, i)
            if c == '"' then break end
            if c == "\\" then
                i = i + 1
                c = rest:sub(i, i)
            end
            out[#out + 1] = c
            i = i + 1
        end
        return table.concat(out)
    end
    if rest:match("^{%d+%+?}") then return "(literal)" end
    return rest:match("^(%S+)")
end

local function imap_command(S, line, frame, ts, after)
    local text = chomp(line)
    local literal = text:match("{(%d+)%+?}$")
    local first = not S.c_lines
    S.c_lines = true
    if S.cmode == "auth" then
        auth_line(S, text, frame, after)
        return
    end
    local tag, verb, rest = text:match("^(%S+)%s+(%S+)%s*(.-)%s*$")
    if not tag then
        if first and S.midstream and not S.greeted and text:match("^%s*%S+%s*$") then
            -- The capture starts inside an AUTHENTICATE exchange: this token answers a challenge.
            S.cmode = "auth"
            auth_line(S, text, frame, after)
        end
        return
    end
    verb = verb:upper():sub(1, 24)
    if verb == "UID" then
        local sub = (rest:match("^(%S+)") or ""):upper()
        if IMAP_UID_VERBS[sub] then verb = "UID " .. sub end
    elseif not IMAP_VERBS[verb] then
        verb = UNKNOWN_VERB
    end
    local shown = verb
    note_cmd(S, frame, shown, verb == "LOGIN" or (verb == "AUTHENTICATE" and rest:match("^%S+%s+%S") ~= nil), after)
    if verb == "LOGIN" and literal then S.cred_literal = true end
    count_cmd(S, shown)
    S.last_cmd_frame = frame
    if verb == "LOGIN" then
        S.user = clean(imap_first_arg(rest) or "", 100)
    elseif verb == "AUTHENTICATE" then
        local mech, initial = rest:match("^(%S+)%s*(%S*)")
        auth_start(S, mech, initial, true)
        S.cmode = "auth"
    elseif verb == "LOGOUT" then
        S.quit = true
    end
    -- Tags awaiting their reply (at most 10000 at once: a client that never reads replies).
    local tags = S.imap_tags
    if not tags then tags = {}; S.imap_tags = tags end
    if tags[tag] then
        tags[tag] = { verb = verb, frame = frame, ts = ts }
    elseif (S.imap_ntags or 0) < 10000 then
        tags[tag] = { verb = verb, frame = frame, ts = ts }
        S.imap_ntags = (S.imap_ntags or 0) + 1
    end
end

-- "* OK", "* PREAUTH" or "* BYE" before anything else: the greeting.
local function imap_untagged(S, text, shown, frame, ts)
    local word = (text:match("^%* (%u+)") or "")
    if not S.greeted and (word == "OK" or word == "PREAUTH" or word == "BYE") then
        S.midstream = false
        greeted(S, frame, ts, word)
        if word == "BYE" then
            finding(S, "greeting_rejected", frame, ts, format("greeting rejected: '%s' (frame %d)", shown, frame))
        end
        if word == "PREAUTH" then S.auth_ok = true end
        S.last_reply = shown
    end
end

local function imap_response(S, line, frame, ts)
    local text = chomp(line)
    local shown = clean(text, 200)
    if text:match("^%* ") then
        imap_untagged(S, text, shown, frame, ts)
        return
    end
    if text:match("^%+") then
        S.cmode = "auth"
        return
    end
    local tag, status = text:match("^(%S+)%s+(%u+)")
    if not tag or (status ~= "OK" and status ~= "NO" and status ~= "BAD") then
        add_anomaly(S, "malformed_reply")
        return
    end
    S.last_reply = shown
    local cmd = S.imap_tags and S.imap_tags[tag]
    if cmd then
        S.imap_tags[tag] = nil
        S.imap_ntags = S.imap_ntags - 1
    end
    note_reply(S, frame, ts, status, cmd)
    if S.cmode == "auth" then S.cmode = "cmd" end
    if not cmd then add_anomaly(S, "unsolicited_reply"); return end
    outcome(S, IMAP_RULES, status == "OK", cmd.verb, frame, ts, shown)
end

-- One IMAP line of direction role; the rest of a line after a literal continues the same
-- command or response.
local function imap_line(S, role, d, line, frame, ts, after)
    if d.after_literal then
        d.after_literal = false
        if role == "c" and S.cred_literal then
            cred_line(S, d, frame, after)
            S.cred_literal = line:match("{%d+%+?}\r?\n$") ~= nil
        end
    elseif role == "c" then
        imap_command(S, line, frame, ts, after)
    else
        imap_response(S, line, frame, ts)
    end
    local lit = line:match("{(%d+)%+?}\r?\n$")
    if lit and #lit <= 12 then d.literal = tonumber(lit) end
end

-- The client line being assembled (in d) is credentials whatever follows: inside an AUTH
-- exchange, a literal of LOGIN, a PASS/APOP/LOGIN line, an initial response, or a bare token
-- opening a capture that starts mid-session.
local function partial_is_credentials(S, d)
    if S.cmode == "auth" or (d.after_literal and S.cred_literal) then return true end
    local head = d.line:sub(1, 64):upper()
    if S.kind == "pop" then
        if head:match("^%s*PASS%s") or head:match("^%s*APOP%s") or head:match("^%s*AUTH%s+%S+%s+%S") then return true end
    elseif head:match("^%S+%s+LOGIN%s") or head:match("^%S+%s+AUTHENTICATE%s+%S+%s+%S") then
        return true
    end
    return S.midstream and not S.c_lines and not S.greeted and not d.line:match("^%s*%S+%s")
end

-- Consumes one direction's bytes (role "c" or "s") of a POP3 or IMAP session, in order.
function M.bytes(S, role, s, frame, ts)
    local d = S[role]
    local pos, n = 1, #s
    local guard = 0
    while pos <= n do
        guard = guard + 1
        if guard > 100000 then return end
        if S.phase == "tls" then
            tls_feed(S, role, s:sub(pos), frame, ts)
            return
        end
        if (d.literal or 0) > 0 then
            if role == "c" and S.cred_literal then
                ann(S, frame).cred = true
                if d.dsrc then ann(S, d.dsrc).cred = true end
            end
            local k = min(d.literal, n - pos + 1)
            d.literal = d.literal - k
            pos = pos + k
            if d.literal == 0 then d.after_literal = true end
        else
            local cli = role == "c" and not P.batch
            if cli then line_begin(d, pos) end
            local line, after = take_line(d, s, pos)
            if not line then
                if cli then line_part(S, d, partial_is_credentials(S, d)) end
                return
            end
            pos = after
            if S.kind == "pop" then
                if role == "c" then pop_command(S, line, frame, ts, after) else pop_response(S, line, frame, ts) end
            else
                imap_line(S, role, d, line, frame, ts, after)
            end
            if cli then d.lfr = nil end
        end
    end
end

return M
