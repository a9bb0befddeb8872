-- smtpdiag.smtp_data: SMTP message data. The terminator scan reads DATA bytes as they come
-- (terminators split across segments, bare LF, <LF>.<CR><LF>, <CR>.<CR>, commands smuggled
-- after a non-standard end), BDAT chunks are counted, and a DATA phase that ends without its
-- terminator is judged.
local M = {}

local prefs = require("smtpdiag.prefs")
local session = require("smtpdiag.session")
local util = require("smtpdiag.util")

local P = prefs.P

local ann, add_anomaly, finding = session.ann, session.add_anomaly, session.finding
local txn_current, txn_cause, push_pending = session.txn_current, session.txn_cause, session.push_pending
local clean, secs, side = util.clean, util.secs, util.side
local format, min = string.format, math.min

-- The session's transactions with a DATA phase, counted by how it ended (t.terminated true
-- or false), and its terminator (the first that is not crlf, else crlf): kept as they change,
-- for the verdict, so that no verdict walks every transaction of the session.
local function tally(S, t, sign)
    if t.had_data and t.terminated ~= nil then
        local k = t.terminated and "n_terminated" or "n_unterminated"
        S[k] = (S[k] or 0) + sign
    end
end

local function note_terminator(S, how)
    local term = S.terminator
    if how and (term == nil or (term == "crlf" and how ~= "crlf")) then S.terminator = how end
end

-- The 354 reply (frame) starts message data; inferred: from a one-sided capture's DATA command.
function M.data_start(S, frame, ts, inferred)
    S.phase = "data"
    S.cmode = "data"
    S.D = { prev_crlf = true, head = "", len = 0, last_cr = false, bytes = 0,
            start_frame = frame, start_ts = ts, last_ts = ts, cand = nil, smuggle = nil,
            bare_lines = 0, gap = false, inferred = inferred, after_cand = false }
    local t = txn_current(S, frame)
    tally(S, t, -1)
    t.had_data = true
    tally(S, t, 1)
end

-- Ends the DATA phase. how: "crlf" | "bare_lf" | "mixed" | "none"
function M.data_end(S, frame, ts, how, terminated)
    local D = S.D
    if not D then return end
    local t = txn_current(S, frame)
    tally(S, t, -1)
    t.terminated = terminated
    tally(S, t, 1)
    t.terminator = how
    note_terminator(S, how)
    t.bytes = D.bytes
    t.last_frame = frame
    local a = ann(S, frame)
    a.terminator = how
    if terminated ~= nil then a.data_terminated = terminated end
    a.data_bytes = D.bytes
    a.data_duration = ts - D.start_ts
    if not P.batch then S.decided[frame] = true end
    S.last_D = D
    S.D = nil
    S.phase = "cmd"
    S.cmode = "cmd"
end
local data_end = M.data_end

local CMD_PATTERNS = { "^MAIL FROM", "^RCPT TO", "^DATA", "^EHLO", "^HELO", "^BDAT", "^RSET", "^QUIT", "^AUTH", "^STARTTLS" }
function M.looks_like_command(head)
    local u = head:upper()
    for _, pat in ipairs(CMD_PATTERNS) do
        if u:find(pat) then return true end
    end
    return false
end
local looks_like_command = M.looks_like_command

-- A dot line that a lenient server may take as the end: <LF>.<LF>, <CRLF>.<LF>, <LF>.<CRLF>.
local function dot_candidate(S, D, crlf, frame, ts)
    local kind = (not crlf and not D.prev_crlf) and "bare_lf" or "mixed"
    local seqname = (D.prev_crlf and "<CR><LF>" or "<LF>") .. "." .. (crlf and "<CR><LF>" or "<LF>")
    if not D.cand then
        D.cand = { frame = frame, ts = ts, kind = kind, seqname = seqname, bytes = D.bytes }
    end
    D.last_cand = { frame = frame, ts = ts, kind = kind, seqname = seqname, bytes = D.bytes }
    D.after_cand = true
    ann(S, frame).smuggling = true
    if not P.batch then S.decided[frame] = true end
    add_anomaly(S, "smuggling_suspect")
end

-- One complete line of message data (head: its first bytes, len: its length with the line
-- break, crlf: it ends in CRLF). Returns true when it is the standard terminator.
local function data_line(S, D, head, len, crlf, frame, ts)
    if D.skip_line then
        -- The line after a capture gap starts somewhere unknown: not judged.
        D.skip_line = false
        D.prev_crlf = crlf
        return false
    end
    local content_len = len - 1 - (crlf and 1 or 0)
    if content_len == 1 and head:sub(1, 1) == "." then
        if crlf and D.prev_crlf then
            return true
        end
        dot_candidate(S, D, crlf, frame, ts)
    elseif D.after_cand and looks_like_command(head) and not D.smuggle then
        D.smuggle = { frame = frame, ts = ts, cmd = clean(head:match("^[^\r\n]*"), 40), cand = D.last_cand }
    end
    if not crlf then D.bare_lines = D.bare_lines + 1 end
    D.prev_crlf = crlf
    return false
end

local function crdotcr_seen(S, D, frame, ts)
    ann(S, frame).smuggling = true
    add_anomaly(S, "smuggling_suspect")
    if not D.cand then D.cand = { frame = frame, ts = ts, kind = "mixed", seqname = "<CR>.<CR>", bytes = D.bytes } end
    D.after_cand = true
end

-- Feeds message data; returns the number of bytes consumed (through the terminator), or nil if all.
-- Lines are judged in place: only the start of a line that can matter is copied.
function M.data_feed(S, s, frame, ts)
    local D = S.D
    local pos, n = 1, #s
    D.last_ts = ts
    local q = s:find("\r.\r", 1, true)  -- the next "\r.\r" (it holds no line break: never across lines)
    while pos <= n do
        if q and q < pos then q = s:find("\r.\r", pos, true) end
        local nl = s:find("\n", pos, true)
        if not nl then
            if #D.head < 64 then D.head = D.head .. s:sub(pos, pos + 63 - #D.head) end
            D.len = D.len + n - pos + 1
            D.last_cr = s:byte(n) == 13
            if q then crdotcr_seen(S, D, frame, ts) end
            D.bytes = D.bytes + n - pos + 1
            return nil
        end
        local len = D.len + nl - pos + 1
        local crlf
        if nl > pos then crlf = s:byte(nl - 1) == 13 else crlf = D.last_cr end
        if q and q + 2 < nl then crdotcr_seen(S, D, frame, ts) end
        local head = D.head
        -- data_line reads the line's start only for a one-character line or after a candidate terminator.
        if #head < 64 and (len - 1 - (crlf and 1 or 0) == 1 or D.after_cand) then
            head = head .. s:sub(pos, min(nl - 1, pos + 63 - #head))
        end
        D.bytes = D.bytes + (nl - pos + 1)
        D.head, D.len, D.last_cr = "", 0, false
        if data_line(S, D, head, len, crlf, frame, ts) then
            return nl
        end
        pos = nl + 1
    end
    return nil
end

-- A command seen after a non-standard end inside the data: smuggling_attempt.
function M.smuggling_check(S, D)
    if D and D.smuggle then
        local c = D.smuggle.cand or D.cand
        finding(S, "smuggling_attempt", c and c.frame or D.smuggle.frame, c and c.ts or D.smuggle.ts,
            format("non-standard end-of-data %s in frame %d is followed by the SMTP command '%s' inside the message data (frame %d)",
                c and c.seqname or "sequence", c and c.frame or 0, D.smuggle.cmd, D.smuggle.frame))
        txn_cause(S, "smuggling_attempt")
    end
end
local smuggling_check = M.smuggling_check

-- Standard terminator seen at the client.
function M.terminated_ok(S, frame, ts)
    local D = S.D
    smuggling_check(S, D)
    if D.bare_lines > 0 then add_anomaly(S, "bare_lf_in_data") end
    data_end(S, frame, ts, "crlf", true)
    push_pending(S, "<end-of-data>", nil, frame, ts)
end

-- Counts BDAT chunk bytes; returns how many of s belong to the chunk.
function M.bdat_feed(S, s)
    local take = min(S.bdat_remaining, #s)
    S.bdat_remaining = S.bdat_remaining - take
    S.bdat_total = S.bdat_total + take
    if S.txn then S.txn.bytes = (S.txn.bytes or 0) + take end
    if S.bdat_remaining <= 0 then
        S.cmode = "cmd"
        S.phase = "cmd"
        if S.bdat_last then
            S.bdat_done = true
        end
    end
    return take
end

-- nbytes of the client's message data are missing from the capture.
function M.data_gap(D, nbytes)
    D.gap = true
    D.head, D.len, D.last_cr = "", 0, false
    D.prev_crlf = false
    D.skip_line = true
    D.bytes = D.bytes + nbytes
end

-- nbytes of a BDAT chunk are missing from the capture.
function M.bdat_gap(S, nbytes)
    local take = min(nbytes, S.bdat_remaining)
    S.bdat_remaining = S.bdat_remaining - take
    S.bdat_total = S.bdat_total + take
    if S.bdat_remaining <= 0 then S.cmode = "cmd"; S.phase = "cmd" end
end

-- The DATA phase ends without the server's reply to its end (why: "RST", "server FIN", or words).
function M.close_data_phase(S, why, frame, ts, by_role)
    local D = S.D
    if not D then return end
    if D.cand then
        local c = D.last_cand or D.cand
        finding(S, "bare_lf_terminator", c.frame, c.ts,
            format("message data ended by %s in frame %d, not <CRLF>.<CRLF>; no reply to it before the %s (frame %d)",
                c.seqname, c.frame, why, frame))
        txn_cause(S, "bare_lf_terminator")
        smuggling_check(S, D)
    end
    local since = secs(ts - D.start_ts)
    if D.gap and not D.cand then
        add_anomaly(S, "capture_gap")
        data_end(S, frame, ts, nil, nil)
        return
    end
    local code, detail
    if why == "RST" then
        code, detail = "data_reset", format("RST from the %s in DATA after %d bytes, %s after 354 (frame %d)",
            side(by_role), D.bytes, since, frame)
    elseif why == "server FIN" then
        code, detail = "data_timeout",
            format("354 at frame %d, %d bytes of data, no <CRLF>.<CRLF>; the server closed the connection %s after the last data (frame %d)",
                D.start_frame, D.bytes, secs(ts - D.last_ts), frame)
    else
        code, detail = "data_not_terminated",
            format("354 at frame %d, %d bytes of data, no <CRLF>.<CRLF>; %s %s after 354 (frame %d)",
                D.start_frame, D.bytes, why, since, frame)
    end
    finding(S, code, frame, ts, detail)
    txn_cause(S, code)
    data_end(S, frame, ts, D.cand and (D.last_cand or D.cand).kind or "none", false)
end

return M
