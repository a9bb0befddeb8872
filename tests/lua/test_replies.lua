-- Reply parsing (smtpdiag.smtp_replies): multi-line replies however split, which command a
-- reply answers, masked banners and capabilities, replies during message data.
local testlib = require("testlib")
local session = require("smtpdiag.session")
local smtp_commands = require("smtpdiag.smtp_commands")
local smtp_replies = require("smtpdiag.smtp_replies")

local LINES, MATCH, MASK, DATA = "lines", "matching", "masked", "during data"
testlib.init({ [LINES] = 10, [MATCH] = 12, [MASK] = 12, [DATA] = 6 })

-- A new session after the handshake (which queued the greeting as the first thing to be
-- answered), and a way to play a conversation at frames 4, 5, ...
local function new()
    local S = session.new_session(0, 1, 0)
    S.established = true
    session.push_pending(S, "<greeting>", nil, 1, 0)
    S.frame = 3
    return S
end
local function client(S, s) S.frame = S.frame + 1; smtp_commands.client_bytes(S, s, S.frame, S.frame / 10) return S end
local function server(S, s) S.frame = S.frame + 1; smtp_replies.server_bytes(S, s, S.frame, S.frame / 10) return S end
local function codes(S)
    local out = {}
    for _, f in ipairs(S.findings) do out[#out + 1] = f.code end
    return out
end
local function greeted(S) return server(S, "220 mx.example ESMTP\r\n") end

-- Lines: continuation lines wait for the last line; a reply may be split anywhere.
do
    local S = greeted(new())
    testlib.test(LINES, "greeting", S.greeted and S.phase == "cmd")
    testlib.eq(LINES, "greeting text", S.last_reply, "220 mx.example ESMTP")
    client(S, "EHLO me\r\n")
    server(S, "250-mx.example\r\n250-PIPE")
    testlib.test(LINES, "a continuation line does not answer", not S.helo_ok and S.pending[S.qh] ~= nil)
    server(S, "LINING\r\n250-SIZE 100\r")
    testlib.eq(LINES, "lines so far", S.reply_lines, { "250-mx.example", "250-PIPELINING" })
    server(S, "\n250 8BITMIME\r\n")
    testlib.test(LINES, "the last line answers EHLO", S.helo_ok == true and S.pending[S.qh] == nil)
    testlib.eq(LINES, "last reply is the last line", S.last_reply, "250 8BITMIME")
    testlib.eq(LINES, "lines cleared", #S.reply_lines, 0)
    S = greeted(new())
    server(S, "250 ok\n")
    testlib.test(LINES, "a bare LF ends a line too", S.anomaly_set.unsolicited_reply == true)
    server(S, "hello\r\n")
    testlib.test(LINES, "not a reply: malformed_reply", S.anomaly_set.malformed_reply == true)
    server(S, "199 low\r\n")
    testlib.eq(LINES, "codes outside 200-599 are malformed", S.last_reply, "250 ok")
end

-- Matching: each reply answers the oldest command still waiting (pipelining).
do
    local S = greeted(new())
    client(S, "EHLO me\r\nMAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nRCPT TO:<c@y>\r\nDATA\r\n")
    server(S, "250 mx\r\n250 ok\r\n250 ok\r\n550 5.1.1 no such user\r\n")
    testlib.eq(MATCH, "550 answers the second RCPT", codes(S), { "rejected" })
    testlib.eq(MATCH, "its detail", S.findings[1].detail, "RCPT <c@y> answered '550 5.1.1 no such user' (frame 6)")
    testlib.eq(MATCH, "the transaction's cause", S.txns[1].cause, "rejected")
    testlib.eq(MATCH, "DATA still waits", S.pending[S.qh] and S.pending[S.qh].verb, "DATA")
    server(S, "354 go ahead\r\n")
    testlib.eq(MATCH, "354 starts message data", S.cmode, "data")
    client(S, "hi\r\n.\r\nQUIT\r\n")
    server(S, "250 2.0.0 queued\r\n221 bye\r\n")
    testlib.eq(MATCH, "250 to the end of data: a message", S.messages, 1)
    testlib.test(MATCH, "221 to QUIT: ended normally", S.ended_normally == true)
    testlib.eq(MATCH, "transaction closed", S.txn, nil)
    S = new()
    client(S, "EHLO early\r\n")
    greeted(S)
    testlib.eq(MATCH, "client before the greeting: pregreet", codes(S), { "pregreet" })
    S = greeted(new())
    client(S, "AUTH PLAIN\r\n")
    server(S, "334 \r\n")
    client(S, "AGJvYgBzZWNyZXQ=\r\n")
    server(S, "535 5.7.8 bad credentials\r\n")
    testlib.eq(MATCH, "535 after a 334 exchange: auth_failed", codes(S), { "auth_failed" })
    S = greeted(new())
    server(S, "421 4.4.2 idle too long\r\n")
    testlib.eq(MATCH, "unsolicited 421: tempfail", codes(S), { "tempfail" })
    S = greeted(new())
    client(S, "STARTTLS\r\n")
    server(S, "220 ready\r\n")
    testlib.test(MATCH, "220 to STARTTLS: TLS from here", S.tls and S.cmode == "tls" and S.tlsw ~= nil)
end

-- Masked: a middlebox's SMTP inspection rewrites the greeting and EHLO capabilities.
do
    testlib.test(MASK, "asterisks are masked", smtp_replies.is_masked_banner({ "220 ***********" }))
    testlib.test(MASK, "asterisks and spaces", smtp_replies.is_masked_banner({ "220 ** ** *" }))
    testlib.test(MASK, "two asterisks are too few", not smtp_replies.is_masked_banner({ "220 **" }))
    testlib.test(MASK, "a name is not masked", not smtp_replies.is_masked_banner({ "220 mx ****" }))
    testlib.test(MASK, "only the first line counts", not smtp_replies.is_masked_banner({ "220-mx", "220 ****" }))
    local S = server(new(), "220 ******************************\r\n")
    testlib.eq(MASK, "masked greeting: banner_masked", codes(S), { "banner_masked" })
    S = greeted(new())
    client(S, "EHLO me\r\n")
    server(S, "250-mx\r\n250-XXXXXXXA\r\n250 SIZE\r\n")
    testlib.eq(MASK, "XXXXXXXA capability: starttls_stripped", codes(S), { "starttls_stripped" })
    S = greeted(new())
    client(S, "XXXX\r\n")
    testlib.eq(MASK, "masked command: command_masked", codes(S), { "command_masked" })
    S = greeted(new())
    client(S, "EHLO me\r\n")
    server(S, "250-mx\r\n250-XXXA\r\n250 SIZE\r\n")
    testlib.eq(MASK, "a short X-only XXXA (ETRN masked): starttls_stripped", codes(S), { "starttls_stripped" })
    S = greeted(new())
    client(S, "EHLO me\r\n")
    server(S, "250-mx\r\n250-XEXCH50\r\n250 XXB\r\n")
    testlib.eq(MASK, "XEXCH50 and a two-X XXB are no masking", codes(S), {})
    S = greeted(new())
    client(S, "EHLO client.example.test\r\n")
    server(S, "500 5.5.1 Command unrecognized: \"XXXX client.example.test\"\r\n")
    testlib.eq(MASK, "a reply quoting XXXX to EHLO: command_masked first", codes(S), { "command_masked", "rejected" })
    S = greeted(new())
    client(S, "VRFY bob\r\n")
    server(S, "502 5.5.1 VRFY command is disabled\r\n")
    testlib.eq(MASK, "a refusal quoting no masked verb", codes(S), {})
end

-- During data: a reply before the client's end of data.
do
    local function in_data(data)
        local S = greeted(new())
        client(S, "MAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nDATA\r\n")
        server(S, "250 ok\r\n250 ok\r\n354 go\r\n")
        client(S, data)
        return S
    end
    local S = in_data("line one\r\n")
    server(S, "421 4.4.2 timeout waiting for data\r\n")
    testlib.eq(DATA, "421 in data: data_timeout", codes(S), { "data_timeout" })
    testlib.eq(DATA, "... data not terminated", S.txns[1].terminated, false)
    S = in_data("line one\n.\nmore\r\n")
    server(S, "250 queued\r\n")
    testlib.eq(DATA, "250 after <LF>.<LF>: bare_lf_terminator", codes(S), { "bare_lf_terminator" })
    testlib.test(DATA, "... accepted", S.anomaly_set.nonstandard_terminator_accepted == true and S.messages == 1)
    testlib.eq(DATA, "... at the candidate's frame", S.findings[1].frame, 7)
    S = in_data("line one\r\n")
    server(S, "554 no\r\n")
    testlib.eq(DATA, "5xx in data: rejected", codes(S), { "rejected" })
end

testlib.results()
