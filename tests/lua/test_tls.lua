-- The TLS record walker (smtpdiag.tls): whether a handshake after STARTTLS completed, from
-- record headers alone, however the records are split; and what tls_failed says when not.
local testlib = require("testlib")
local session = require("smtpdiag.session")
local tls = require("smtpdiag.tls")

local WALK, FAIL, END = "walk", "failures", "session end"
testlib.init({ [WALK] = 9, [FAIL] = 6, [END] = 7 })

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

testlib.results()
