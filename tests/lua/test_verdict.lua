-- The verdict rules (smtpdiag.verdict): the root cause is the earliest finding; without one,
-- incomplete or ok with its detail; data_terminated and the terminator over the transactions.
local testlib = require("testlib")
local session = require("smtpdiag.session")
local smtp_data = require("smtpdiag.smtp_data")
local verdict = require("smtpdiag.verdict").verdict

local ROOT, NONE, DATA = "root cause", "no finding", "data"
testlib.init({ [ROOT] = 9, [NONE] = 9, [DATA] = 7 })

local function new(kind)
    local S = session.new_session(0, 1, 0)
    S.kind = kind or "smtp"
    return S
end
local finding, add_anomaly = session.finding, session.add_anomaly

do
    local S = new()
    finding(S, "tempfail", 30, 3.0, "MAIL answered 451")
    finding(S, "no_banner", 20, 2.0, "no greeting")
    local v = verdict(S)
    testlib.eq(ROOT, "earliest by frame, not by when found", v.cause, "no_banner")
    testlib.eq(ROOT, "its detail", v.detail, "no greeting")
    testlib.eq(ROOT, "every finding is an anomaly, in the order found", S.anomalies, { "tempfail", "no_banner" })
    finding(S, "pregreet", 20, 2.0, "client first")
    testlib.eq(ROOT, "same frame: the one found first", verdict(S).cause, "no_banner")
    finding(S, "reset", 5, 0.5, "RST")
    testlib.eq(ROOT, "a new earlier finding changes the cached verdict", verdict(S).cause, "reset")
    session.drop_finding(S, "reset")
    testlib.eq(ROOT, "a dropped finding is no cause", verdict(S).cause, "no_banner")
    testlib.test(ROOT, "... nor an anomaly", not S.anomaly_set.reset)
    finding(S, "no_banner", 1, 0.1, "again")
    testlib.eq(ROOT, "a code is found once", #S.findings, 3)
    testlib.eq(ROOT, "root_cause", require("smtpdiag.verdict").root_cause(S).code, "no_banner")
end

do
    local S = new()
    testlib.eq(NONE, "nothing: ok", { verdict(S).cause, verdict(S).detail }, { "ok", "no failure found" })
    S.messages = 2
    testlib.eq(NONE, "messages accepted", verdict(S).detail, "2 messages accepted")
    S = new()
    add_anomaly(S, "one_sided")
    add_anomaly(S, "truncated_packets")
    local v = verdict(S)
    testlib.eq(NONE, "one side only: incomplete", v.cause, "incomplete")
    testlib.eq(NONE, "... why", v.detail,
        "only one direction of the connection is in the capture; packets are cut short by the capture's snap length")
    testlib.test(NONE, "... incomplete is an anomaly too", S.anomaly_set.incomplete == true)
    S = new()
    add_anomaly(S, "capture_gap")
    testlib.eq(NONE, "a judged capture gap alone is ok", verdict(S).cause, "ok")
    S = new()
    add_anomaly(S, "midstream")
    finding(S, "rejected", 9, 0.9, "RCPT answered 550")
    testlib.eq(NONE, "a finding beats incomplete", verdict(S).cause, "rejected")
    S = new("imap")
    S.auth_ok, S.user, S.tls = true, "bob", true
    testlib.eq(NONE, "mailbox: who logged in", verdict(S).detail, "logged in as bob; STARTTLS")
    S = new("dns")
    S.ok_detail = "MX example.com answered with 1 record in 0.010 s (frame 2)"
    testlib.eq(NONE, "DNS: the answer", verdict(S).detail, S.ok_detail)
end

-- A transaction whose DATA phase (from frame) ends as how says (terminated: true, false or
-- nil), through smtp_data as the protocol drives it.
local function data_phase(S, frame, how, terminated)
    S.txn = nil
    smtp_data.data_start(S, frame, 0, false)
    smtp_data.data_end(S, frame + 1, 0, how, terminated)
end

do
    local S = new()
    testlib.eq(DATA, "no DATA phase: data_terminated unknown", verdict(S).data_terminated, nil)
    data_phase(S, 10, "crlf", true)
    testlib.eq(DATA, "ended properly", { verdict(S).data_terminated, verdict(S).terminator }, { true, "crlf" })
    S.messages = 1  -- the verdict is cached until the session changes
    data_phase(S, 20, "bare_lf", false)
    data_phase(S, 30, "crlf", true)
    local v = verdict(S)
    testlib.eq(DATA, "one DATA phase not ended properly: false", v.data_terminated, false)
    testlib.eq(DATA, "the first non-crlf terminator", v.terminator, "bare_lf")
    S = new()
    data_phase(S, 10, nil, nil)
    testlib.eq(DATA, "unknown (capture gap): nil", verdict(S).data_terminated, nil)
    smtp_data.data_start(S, 20, 0, false)
    testlib.eq(DATA, "still in DATA: false", verdict(S).data_terminated, false)
    S = new()
    session.txn_begin(S, 10).terminated = false
    testlib.eq(DATA, "a transaction without DATA does not count", verdict(S).data_terminated, nil)
end

testlib.results()
