-- The terminator scan (smtpdiag.smtp_data through smtpdiag.smtp_commands.client_bytes): where
-- message data ends, however the bytes are split, and what a non-standard end looks like.
local testlib = require("testlib")
local session = require("smtpdiag.session")
local smtp_data = require("smtpdiag.smtp_data")
local smtp_commands = require("smtpdiag.smtp_commands")

local SPLIT, SEQ, STUFF, ODD = "split", "sequences", "dot-stuffing", "non-standard"
local MESSAGE = "Subject: t\r\n\r\nHello\r\n.\r\n"
testlib.init({ [SPLIT] = 4 * #MESSAGE + 6, [SEQ] = 9, [STUFF] = 6, [ODD] = 15 })

-- A session in the DATA phase (354 seen at frame 10).
local function in_data()
    local S = session.new_session(0, 1, 0)
    S.greeted = true
    smtp_data.data_start(S, 10, 1.0, false)
    return S
end

-- Feeds the chunks as client segments, frames 11, 12, ...
local function feed(S, chunks)
    for i, c in ipairs(chunks) do smtp_commands.client_bytes(S, c, 10 + i, 1.0 + i) end
    return S
end

local function ended(S) return S.D == nil and S.txns[1].terminated == true end

-- Every split into two segments, and the message byte by byte: one end, after all its bytes.
for cut = 1, #MESSAGE do
    local S = feed(in_data(), { MESSAGE:sub(1, cut), MESSAGE:sub(cut + 1) .. "QUIT\r\n" })
    testlib.test(SPLIT, "two segments cut at " .. cut, ended(S), "D open or not terminated")
    testlib.eq(SPLIT, "bytes when cut at " .. cut, S.txns[1].bytes, #MESSAGE)
    testlib.eq(SPLIT, "terminator when cut at " .. cut, S.txns[1].terminator, "crlf")
    testlib.test(SPLIT, "command after the end, cut at " .. cut, S.quit == true and S.cmode == "cmd")
end
do
    local chunks = {}
    for i = 1, #MESSAGE do chunks[i] = MESSAGE:sub(i, i) end
    local S = feed(in_data(), chunks)
    testlib.test(SPLIT, "byte by byte", ended(S))
    testlib.eq(SPLIT, "byte by byte: bytes", S.txns[1].bytes, #MESSAGE)
    testlib.eq(SPLIT, "byte by byte: decided on the last byte's frame", S.txns[1].last_frame, 10 + #MESSAGE)
    testlib.eq(SPLIT, "end of data queued for its reply", S.pending[S.qh] and S.pending[S.qh].verb, "<end-of-data>")
end
do
    -- The scan itself: data_feed returns how many bytes of the segment the message used.
    local S = in_data()
    testlib.eq(SPLIT, "data_feed: whole message", smtp_data.data_feed(S, MESSAGE .. "QUIT\r\n", 11, 2), #MESSAGE)
    S = in_data()
    testlib.eq(SPLIT, "data_feed: no end yet", smtp_data.data_feed(S, "Hello\r\n.", 11, 2), nil)
end

-- Sequences that are and are not the end.
do
    local S = feed(in_data(), { ".\r\n" })
    testlib.test(SEQ, "empty message: .<CRLF> right after 354", ended(S))
    testlib.eq(SEQ, "empty message bytes", S.txns[1].bytes, 3)
    S = feed(in_data(), { "a\r\n.\r\n" })
    testlib.test(SEQ, "<CRLF>.<CRLF>", ended(S))
    S = feed(in_data(), { "a\r\n. \r\nb\r\n" })
    testlib.test(SEQ, "'. ' is data", S.D ~= nil and S.D.cand == nil)
    S = feed(in_data(), { "a\r\n.\r" })
    testlib.test(SEQ, "<CRLF>.<CR> is not the end yet", S.D ~= nil)
    feed(S, { "\n" })
    testlib.test(SEQ, "... its <LF> in the next segment is", S.D == nil)
    S = feed(in_data(), { "a\r\n\r\n" })
    testlib.test(SEQ, "an empty line is data", S.D ~= nil and S.D.bare_lines == 0)
    S = feed(in_data(), { "a\n\r\n.\r\n" })
    testlib.test(SEQ, "a bare LF line inside the data, then the end", ended(S))
    testlib.test(SEQ, "... counts as bare_lf_in_data", S.anomaly_set.bare_lf_in_data == true)
end

-- Dot-stuffing (RFC 5321 4.5.2): a line starting with "." is sent with one more ".".
do
    local S = feed(in_data(), { "..\r\n" })
    testlib.test(STUFF, "'..' (a stuffed '.') is data", S.D ~= nil and S.D.cand == nil)
    S = feed(in_data(), { "a\r\n...\r\n" })
    testlib.test(STUFF, "'...' is data", S.D ~= nil)
    S = feed(in_data(), { "a\r\n..\r\n.\r\n" })
    testlib.test(STUFF, "a stuffed line, then the end", ended(S))
    testlib.eq(STUFF, "... all of it counted", S.txns[1].bytes, #"a\r\n..\r\n.\r\n")
    S = feed(in_data(), { "a\r\n.", ".\r\n", ".\r\n" })
    testlib.test(STUFF, "'..' split after its first dot is data, the next '.' line ends", ended(S))
    S = feed(in_data(), { ".foo\r\n" })
    testlib.test(STUFF, "'.foo' is data", S.D ~= nil and S.D.cand == nil)
end

-- Non-standard ends a lenient server may take: recorded as candidates, the data goes on.
local function candidate(chunks)
    local S = feed(in_data(), chunks)
    return S, S.D and S.D.cand
end
do
    local S, c = candidate({ "a\n.\n" })
    testlib.eq(ODD, "<LF>.<LF>: kind", c and c.kind, "bare_lf")
    testlib.eq(ODD, "<LF>.<LF>: name", c and c.seqname, "<LF>.<LF>")
    testlib.test(ODD, "<LF>.<LF>: smuggling_suspect", S.anomaly_set.smuggling_suspect == true)
    testlib.test(ODD, "<LF>.<LF>: data goes on", S.cmode == "data")
    c = select(2, candidate({ "a\n.\r\n" }))
    testlib.eq(ODD, "<LF>.<CR><LF>", c and { c.kind, c.seqname }, { "mixed", "<LF>.<CR><LF>" })
    c = select(2, candidate({ "a\r\n.\n" }))
    testlib.eq(ODD, "<CR><LF>.<LF>", c and { c.kind, c.seqname }, { "mixed", "<CR><LF>.<LF>" })
    c = select(2, candidate({ "a\r.\rb\r\n" }))
    testlib.eq(ODD, "<CR>.<CR>", c and { c.kind, c.seqname }, { "mixed", "<CR>.<CR>" })
    c = select(2, candidate({ "x\r\n", "a\r.\rb\r\n" }))
    testlib.eq(ODD, "<CR>.<CR> in a later segment: its frame", c and c.frame, 12)
    c = select(2, candidate({ "a\n", ".\n" }))
    testlib.eq(ODD, "<LF>.<LF> across segments: its frame", c and c.frame, 12)
    testlib.eq(ODD, "... and the data bytes through it", c and c.bytes, 4)
    -- A command after a candidate end, inside the data: smuggling_attempt once the data ends.
    S = feed(in_data(), { "a\n.\r\n", "MAIL FROM:<evil@x>\r\n", "RCPT TO:<v@y>\r\n\r\n.\r\n" })
    testlib.eq(ODD, "smuggled command", S.last_D and S.last_D.smuggle and S.last_D.smuggle.cmd, "MAIL FROM:<evil@x>")
    testlib.eq(ODD, "smuggling_attempt found", S.findings[1] and S.findings[1].code, "smuggling_attempt")
    testlib.eq(ODD, "... at the candidate's frame", S.findings[1] and S.findings[1].frame, 11)
    testlib.eq(ODD, "... the transaction's cause", S.txns[1].cause, "smuggling_attempt")
    testlib.eq(ODD, "a lowercase command is one too",
        feed(in_data(), { "a\n.\n", "rcpt to:<v@y>\r\n" }).D.smuggle.cmd, "rcpt to:<v@y>")
end

testlib.results()
