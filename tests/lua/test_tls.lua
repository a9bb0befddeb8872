-- The TLS record walker (smtpdiag.tls): whether a handshake after STARTTLS completed, from
-- record headers alone, however the records are split; and what tls_failed says when not.
local testlib = require("testlib")
local session = require("smtpdiag.session")
local tls = require("smtpdiag.tls")

local WALK, FAIL, END, CLOSE = "walk", "failures", "session end", "reset close"
testlib.init({ [WALK] = 9, [FAIL] = 6, [END] = 7, [CLOSE] = 10 })

-- A TLS record: content type, version 3.x, length, and that many (zero) bytes.
local function record(ctype, len, vmaj)
    return string.char(ctype, vmaj or 3, 3, math.floor(len / 256), len % 256) .. string.rep("\0", len)
end
local HANDSHAKE, CCS, ALERT, APPDATA = 22, 20, 21, 23

-- A session whose STARTTLS was accepted at frame 7.
local function started()
    local S = session.new_session(0, 1, 0)
    tls.start(S, 7, 0.7)
    return S
end
-- Feeds each {role, bytes} as its own segment, frames 8, 9, ...
local function play(S, flights)
    for i, f in ipairs(flights) do tls.feed(S, f[1], f[2], 7 + i, 0.7 + i / 10) end
    return S
end

local TLS12 = {
    { "c", record(HANDSHAKE, 200) },
    { "s", record(HANDSHAKE, 90) .. record(HANDSHAKE, 1500) .. record(HANDSHAKE, 4) },
    { "c", record(HANDSHAKE, 70) .. record(CCS, 1) .. record(HANDSHAKE, 40) },
    { "s", record(CCS, 1) .. record(HANDSHAKE, 40) },
}
local TLS13 = {
    { "c", record(HANDSHAKE, 300) },
    { "s", record(HANDSHAKE, 120) .. record(CCS, 1) .. record(APPDATA, 2000) },
    { "c", record(CCS, 1) .. record(APPDATA, 53) },
}

do
    local S = started()
    testlib.test(WALK, "start: TLS mode, a walker", S.tls and S.phase == "tls" and S.cmode == "tls" and S.tlsw ~= nil)
    play(S, { TLS12[1], TLS12[2] })
    testlib.test(WALK, "TLS 1.2: not done after the server's flight", not S.tlsw.done)
    testlib.eq(WALK, "... records counted", { S.tlsw.c.records, S.tlsw.s.records }, { 1, 3 })
    play(S, { TLS12[3] })
    testlib.test(WALK, "TLS 1.2: done once the client's ChangeCipherSpec follows", S.tlsw.done == true)
    testlib.test(WALK, "TLS 1.3: done", play(started(), TLS13).tlsw.done == true)
    testlib.test(WALK, "TLS 1.3 without ChangeCipherSpec: done on application data", play(started(), {
        { "c", record(HANDSHAKE, 300) }, { "s", record(HANDSHAKE, 120) .. record(APPDATA, 2000) },
        { "c", record(APPDATA, 53) } }).tlsw.done == true)
    -- The same bytes cut into 7-byte segments (headers split across segments).
    local cut = {}
    for _, f in ipairs(TLS12) do
        for i = 1, #f[2], 7 do cut[#cut + 1] = { f[1], f[2]:sub(i, i + 6) } end
    end
    S = play(started(), cut)
    testlib.test(WALK, "TLS 1.2 in 7-byte segments: done", S.tlsw.done == true and not S.tlsw.failed)
    S = play(started(), { { "c", record(HANDSHAKE, 10):sub(1, 3) } })
    testlib.eq(WALK, "a partial header waits", S.tlsw.c.hdr, "\22\3\3")
    S = play(started(), { { "c", record(HANDSHAKE, 10):sub(1, 8) } })
    testlib.eq(WALK, "inside a record: bytes left to skip", S.tlsw.c.skip, 7)
end

do
    local S = play(started(), { TLS12[1], { "s", record(ALERT, 2) } })
    testlib.test(FAIL, "alert from the server fails the handshake", S.tlsw.failed ~= nil)
    testlib.eq(FAIL, "... why", S.tlsw.failed.why, "a TLS alert from the server (frame 9)")
    S = play(started(), { { "c", "EHLO again\r\n" } })
    testlib.eq(FAIL, "plain text from the client", S.tlsw.failed and S.tlsw.failed.why, "non-TLS bytes from the client (frame 8)")
    S = play(started(), { { "c", record(HANDSHAKE, 5, 2) } })
    testlib.test(FAIL, "SSL 2 version byte is not TLS", S.tlsw.failed ~= nil)
    S = play(started(), TLS12)
    play(S, { { "s", record(ALERT, 2) } })
    testlib.test(FAIL, "an alert after the handshake changes nothing", S.tlsw.done and not S.tlsw.failed)
    S = play(started(), { { "c", record(19, 1) } })
    testlib.test(FAIL, "content type 19 is not TLS", S.tlsw.failed ~= nil)
end

local function codes(S)
    local out = {}
    for _, f in ipairs(S.findings) do out[#out + 1] = f.code .. " @" .. f.frame end
    return out
end
do
    local S = play(started(), { TLS12[1], { "s", record(ALERT, 2) } })
    tls.judge_at_end(S, 12, 1.2, false, false)
    testlib.eq(END, "failed walk: tls_failed at the alert", codes(S), { "tls_failed @9" })
    testlib.eq(END, "... its detail", S.findings[1].detail,
        "STARTTLS accepted (frame 7), then a TLS alert from the server (frame 9) before the TLS handshake completed")
    S = started()
    tls.judge_at_end(S, 12, 1.2, true, false)
    testlib.eq(END, "no record before the capture ended: tls_failed", codes(S), { "tls_failed @12" })
    S = play(started(), { TLS12[1], TLS12[2] })
    tls.judge_at_end(S, 12, 1.2, true, false)
    testlib.eq(END, "records flowing when the capture ended: undecided", codes(S), {})
    S = play(started(), { TLS12[1], TLS12[2] })
    tls.judge_at_end(S, 12, 1.2, false, false)
    testlib.eq(END, "records, then the connection closed: tls_failed", codes(S), { "tls_failed @12" })
    S = started()
    tls.judge_at_end(S, 12, 1.2, true, true)
    testlib.eq(END, "one-sided capture: undecided", codes(S), {})
    S = play(started(), TLS12)
    tls.judge_at_end(S, 12, 1.2, false, false)
    testlib.eq(END, "completed handshake: nothing", codes(S), {})
end

-- Whether a RST now is the normal end of the TLS session (tls_reset_close): the segments played
-- as data of their side, in order (what causal.lua records as last_data_role).
local function closes(flights)
    local S = started()
    for i, f in ipairs(flights) do
        S.last_data_role = f[1]
        tls.feed(S, f[1], f[2], 7 + i, 0.7 + i / 10)
    end
    return tls.reset_close(S) == true
end
local function with(...)
    local out = {}
    for _, f in ipairs(TLS13) do out[#out + 1] = f end
    for _, f in ipairs({ ... }) do out[#out + 1] = f end
    return out
end
do
    local reply, command = { "s", record(APPDATA, 40) }, { "c", record(APPDATA, 30) }
    local notify13, notify12 = { "c", record(APPDATA, 19) }, { "c", record(ALERT, 26) }
    testlib.test(CLOSE, "the server's records last", closes(with(command, reply)))
    testlib.test(CLOSE, "a command unanswered", not closes(with(command, reply, command)))
    testlib.test(CLOSE, "TLS 1.3: the client's close_notify after the server's last records",
        closes(with(command, reply, notify13)))
    testlib.test(CLOSE, "TLS 1.2: the client's alert record after the server's last records",
        closes(with(command, reply, notify12)))
    testlib.test(CLOSE, "a command, then close_notify: the command is unanswered",
        not closes(with(command, reply, command, notify13)))
    testlib.test(CLOSE, "the command and close_notify in one segment: unanswered",
        not closes(with(command, reply, { "c", record(APPDATA, 30) .. record(APPDATA, 19) })))
    local split = record(APPDATA, 19)
    testlib.test(CLOSE, "close_notify split across segments",
        closes(with(command, reply, { "c", split:sub(1, 3) }, { "c", split:sub(4) })))
    testlib.test(CLOSE, "the handshake not completed: never", not closes({ TLS13[1], TLS13[2] }))
    local S = started()
    for i, f in ipairs(with(command, reply, notify13)) do
        S.last_data_role = f[1]
        tls.feed(S, f[1], f[2], 7 + i, 0.7 + i / 10)
    end
    S.s.fin = true
    testlib.test(CLOSE, "close_notify after a FIN: not this rule (a RST after a close)", not tls.reset_close(S))
    testlib.test(CLOSE, "record boundaries lost after the handshake: only the server-last rule",
        not closes(with(command, reply, { "c", "garbage!" }, notify13)))
end

testlib.results()
