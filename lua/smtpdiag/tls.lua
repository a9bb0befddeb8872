-- smtpdiag.tls: after STARTTLS (SMTP), STLS (POP3) or STARTTLS (IMAP) was accepted, or from the
-- first byte of an implicit-TLS session, a TLS record walker learns whether the handshake
-- completed; what it saw becomes tls_failed. A completed handshake makes a later RST from the
-- side with nothing left unanswered the normal end (tls_reset_close).
local M = {}

local session = require("smtpdiag.session")
local util = require("smtpdiag.util")

local finding = session.finding
local side = util.side
local format, min = string.format, math.min

local function new_walker()
    return { c = { hdr = "", skip = 0, records = 0 }, s = { hdr = "", skip = 0, records = 0 } }
end
M.new_walker = new_walker

-- The server accepted the upgrade (frame): from now on both directions are TLS records.
function M.start(S, frame, ts)
    S.tls = true
    S.phase = "tls"
    S.cmode = "tls"
    S.tls_frame, S.tls_ts = frame, ts
    S.tlsw = new_walker()
end

-- Implicit TLS (a TLS port, or a client whose first bytes are a TLS handshake record): the
-- session is TLS from its first byte (frame).
function M.start_implicit(S, frame, ts)
    S.implicit_tls, S.tls = true, true
    S.phase, S.cmode = "tls", "tls"
    S.tls_frame, S.tls_ts = frame, ts
    S.tlsw = new_walker()
    S.tlsw.implicit = true
end

-- Whether bytes are the start of a TLS handshake record (a ClientHello: 16 03 0x).
local function is_handshake_record(s)
    local t, vmaj, vmin = (s or ""):byte(1, 3)
    return t == 22 and vmaj == 3 and (vmin == nil or vmin <= 4)
end

-- A mail server's plaintext greeting ("220 ...", "+OK", "* OK"): the line, printable; else nil.
local function plaintext_greeting(s)
    if s:match("^%d%d%d[ %-]") or s:match("^%+OK") or s:match("^%* OK") then
        return util.clean(s:match("^[^\r\n]*"), 80)
    end
    return nil
end

-- The first payload of direction role (S.first_c / S.first_s, its start) arrived at frame. A client
-- that opens with a ClientHello speaks implicit TLS, on any port; a server that greets in
-- plaintext (before or after it) does not: tls_failed.
function M.first_bytes(S, role, frame, ts)
    local c, s = S.first_c, S.first_s
    if role == "c" and not S.tlsw and is_handshake_record(c) then
        M.start_implicit(S, frame, ts)
    end
    local greeting = c and s and is_handshake_record(c) and plaintext_greeting(s)
    if greeting and S.tlsw and S.tlsw.implicit then
        finding(S, "tls_failed", frame, ts,
            format("the client opened with a TLS ClientHello (frame %d), the server greeted in plaintext: '%s' (frame %d)",
                S.first_c_frame, greeting, S.first_s_frame))
    end
end

-- After the handshake the walk goes on only to see whether the client's records since the
-- server's last one are all closing alerts (c_tail: nil when there are none): TLS 1.2 shows an
-- alert record; TLS 1.3 an encrypted record of 19 bytes (a 2-byte alert, its inner type and a
-- 16-byte AEAD tag).
local function after_handshake(W, role, ctype, rlen)
    if role == "s" then
        W.c_tail = nil
    else
        W.c_tail = W.c_tail ~= false and (ctype == 21 or (ctype == 23 and rlen == 19))
    end
end

-- The 5-byte record header in w.hdr is complete: a record is counted, or the walk fails.
local function record_header(W, w, role, frame, ts)
    local ctype, vmaj = w.hdr:byte(1), w.hdr:byte(2)
    local rlen = w.hdr:byte(4) * 256 + w.hdr:byte(5)
    w.hdr = ""
    if ctype < 20 or ctype > 24 or vmaj ~= 3 then
        if W.done then              -- lost the record boundaries: no judgement of the end from records
            W.lost, W.c_tail = true, false
            return false
        end
        W.failed = { frame = frame, ts = ts, why = format("non-TLS bytes from the %s (frame %d)", side(role), frame) }
        return false
    end
    if W.done then
        after_handshake(W, role, ctype, rlen)
        w.skip = rlen
        return true
    end
    if ctype == 21 then
        W.failed = { frame = frame, ts = ts, why = format("a TLS alert from the %s (frame %d)", side(role), frame) }
        return false
    end
    w.records = w.records + 1
    if ctype == 20 or ctype == 23 then w.finished = true end
    w.skip = rlen
    return true
end

-- Walks the records in bytes s from one direction (role "c" or "s"), across segments.
function M.feed(S, role, s, frame, ts)
    local W = S.tlsw
    if not W or W.failed or W.lost then return end
    local w = W[role]
    local pos, n = 1, #s
    while pos <= n do
        if w.skip > 0 then
            local k = min(w.skip, n - pos + 1)
            w.skip = w.skip - k
            pos = pos + k
        else
            local need = 5 - #w.hdr
            w.hdr = w.hdr .. s:sub(pos, pos + need - 1)
            pos = pos + need
            if #w.hdr == 5 and not record_header(W, w, role, frame, ts) then return end
        end
    end
    -- TLS 1.2: both sides sent ChangeCipherSpec; TLS 1.3: the client sent its
    -- ChangeCipherSpec/encrypted Finished after the server's flight.
    if not W.done and W.c.finished and W.s.records > 0 and (W.s.finished or W.c.records >= 2) then
        W.done = true
    end
end

local function undecided(W)
    return W and not W.done and not W.failed
end

-- Whether an RST ends a TLS session normally: the handshake completed, the server's records came
-- last (the client's last ones were answered) or, with neither side closed yet, the client's
-- records since then only close TLS (close_notify), and no decoded command waits.
function M.reset_close(S)
    local W = S.tlsw
    return W ~= nil and W.done == true
        and (S.last_data_role == "s" or (W.c_tail == true and not S.c.fin and not S.s.fin))
        and not S.pending[S.qh]
end

-- An RST from role before the handshake completed (and before either side closed).
function M.on_rst(S, role, frame, ts)
    if undecided(S.tlsw) and not S.c.fin and not S.s.fin then
        S.tlsw.failed = { frame = frame, ts = ts, why = format("an RST from the %s (frame %d)", side(role), frame) }
    end
end

-- A FIN from role before the client sent any TLS record.
function M.on_fin(S, role, frame, ts)
    if undecided(S.tlsw) and S.tlsw.c.records == 0 then
        S.tlsw.failed = { frame = frame, ts = ts,
            why = format("the %s closed the connection (frame %d)", side(role), frame) }
    end
end

-- The session ended (frame) with the handshake not seen to complete: tls_failed, unless the
-- capture cannot tell (bytes missing, one direction only, records still flowing at its end).
function M.judge_at_end(S, frame, ts, at_capture_end, one_sided)
    local W = S.tlsw
    if not W or W.done then return end
    if W.implicit then return end  -- implicit TLS: only a plaintext answer is a finding
    if W.failed then
        finding(S, "tls_failed", W.failed.frame, W.failed.ts,
            format("STARTTLS accepted (frame %d), then %s before the TLS handshake completed", S.tls_frame, W.failed.why))
    elseif not W.unknown and not one_sided then
        local why = at_capture_end and "the capture ended" or "the connection closed"
        if (W.c.records == 0 and W.s.records == 0) or not at_capture_end then
            finding(S, "tls_failed", frame, ts,
                format("STARTTLS accepted (frame %d), then %s before the TLS handshake completed (frame %d)",
                    S.tls_frame, why, frame))
        end
    end
end

return M
