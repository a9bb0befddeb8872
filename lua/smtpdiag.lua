-- smtpdiag.lua: a Wireshark post-dissector that diagnoses SMTP sessions.
--
-- Load with `tshark -X lua_script:lua/smtpdiag.lua` or drop into the personal
-- plugins folder. Fields, codes and conventions follow the project's contract
-- (shared/docs/diagnostics.md). Works on Wireshark 4.0 (Lua 5.2) to 4.6 (Lua 5.4).
--
-- Design: the first pass (pinfo.visited == false) feeds every TCP segment of a
-- mail stream through a per-stream reassembler and an SMTP state machine driven
-- by client bytes and server replies, and records findings. Rendering happens on
-- every pass: on the first pass only what the current frame decided, on later
-- passes (tshark -2, the GUI) the session's whole verdict on every frame.

local SMTPDIAG_VERSION = "0.1.0"

local byte = string.byte

local p = Proto("smtpdiag", "SMTP diagnosis")

---------------------------------------------------------------------------
-- Preferences
---------------------------------------------------------------------------
p.prefs.ports = Pref.string("Mail ports (SMTP)", "25,465,587,2525",
    "Comma-separated TCP ports treated as SMTP servers (any port Wireshark decodes as SMTP is also diagnosed)")
p.prefs.pop_ports = Pref.string("POP3 ports", "110,995", "TCP ports of POP3 servers")
p.prefs.imap_ports = Pref.string("IMAP ports", "143,993", "TCP ports of IMAP servers")
p.prefs.tls_ports = Pref.string("Implicit-TLS ports", "465,993,995",
    "Mail ports whose sessions are TLS from the first byte: transport verdicts only")
p.prefs.dns_any_port = Pref.bool("DNS on any port", false,
    "Look for mail DNS lookups on every port, not only 53 (slower)")
p.prefs.first_pass_fields = Pref.bool("Fields on the first pass", true,
    "Add per-frame fields while the capture is first read (one-pass tshark needs them; tshark -2 does not)")
p.prefs.summary_file = Pref.string("Summary file", "",
    "Batch mode (one pass, for the smtpdiag toolkit): write one line per conversation to this file, no per-frame fields")
p.prefs.summary_only = Pref.bool("Summaries only", false,
    "On later passes, add fields only to each session's summary frame (for tables built with -Y smtpdiag.session_end)")
p.prefs.dns_timeout = Pref.uint("DNS timeout (s)", 10,
    "An MX/A/AAAA query unanswered this long after its last retransmission is dns_no_response")
p.prefs.mtu_retrans = Pref.uint("MTU black hole: retransmissions", 3,
    "How many retransmissions of one full-size segment, with no ACK progress, make an MTU black hole")
p.prefs.mtu_min_size = Pref.uint("MTU black hole: full-size segment bytes", 1000,
    "Segments at least this large count as full-size for the MTU black-hole check")
p.prefs.max_buffer = Pref.uint("Max buffered out-of-order bytes", 262144,
    "Per direction; beyond this a hole in the sequence space is declared a capture gap")
p.prefs.heuristic = Pref.bool("Detect mail protocols on any port", true,
    "Decode a TCP conversation as SMTP, POP3 or IMAP when its server's greeting says so")

local mail_ports, pop_ports, imap_ports, tls_ports = {}, {}, {}, {}
local batch = false  -- summary-file mode (the toolkit): one pass, nothing per frame is kept

local function parse_ports(s)
    local t = {}
    for a, b in tostring(s or ""):gmatch("(%d+)%s*%-?%s*(%d*)") do
        local lo, hi = tonumber(a), tonumber(b) or tonumber(a)
        if lo and hi and hi - lo < 70000 then
            for port = lo, hi do t[port] = true end
        end
    end
    return t
end

-- Batch mode reads the listed ports' conversations from their own bytes. A listed port
-- no dissector claims (2525) would send each of its segments through every TCP
-- heuristic, three of them Lua calls: there "data" takes it at C speed. Ports with a
-- dissector keep it (an HTTP CONNECT tunnel finds SMTP through tcp.port 25).
local claimed_ports = {}
local function claim_listed_ports(on)
    local ok, tcp_port = pcall(DissectorTable.get, "tcp.port")
    if not ok or not tcp_port then return end
    local data = Dissector.get("data")
    for port in pairs(claimed_ports) do pcall(tcp_port.remove, tcp_port, port, data) end
    claimed_ports = {}
    if not on then return end
    for _, list in ipairs({ mail_ports, pop_ports, imap_ports }) do
        for port in pairs(list) do
            if not claimed_ports[port] and not tcp_port:get_dissector(port) then
                tcp_port:add(port, data)
                claimed_ports[port] = true
            end
        end
    end
end

-- Preference values read once per change: a p.prefs lookup costs an allocation, too much per frame.
local P = {}
local CACHED_PREFS = { "max_buffer", "mtu_min_size", "mtu_retrans", "dns_timeout", "dns_any_port",
                       "first_pass_fields", "summary_only", "heuristic" }

local function load_prefs()
    for _, name in ipairs(CACHED_PREFS) do P[name] = p.prefs[name] end
    mail_ports = parse_ports(p.prefs.ports)
    pop_ports = parse_ports(p.prefs.pop_ports)
    imap_ports = parse_ports(p.prefs.imap_ports)
    tls_ports = parse_ports(p.prefs.tls_ports)
    batch = (p.prefs.summary_file or "") ~= ""
    claim_listed_ports(batch)
end
load_prefs()
function p.prefs_changed() load_prefs() end

---------------------------------------------------------------------------
-- Fields
---------------------------------------------------------------------------
-- The contract puts two fields under smtp.*; if a Wireshark ever owns those
-- names itself, fall back to smtpdiag.* rather than failing to load.
local function own_name(preferred, fallback)
    local exists = pcall(Field.new, preferred)
    if exists then return fallback end
    return preferred
end

local DT_NAME = own_name("smtp.data_terminated", "smtpdiag.data_terminated")
local CAUSE_NAME = own_name("smtp.failure_cause", "smtpdiag.smtp_failure_cause")

local F = {
    data_terminated = ProtoField.bool(DT_NAME,
        "Data terminated", base.NONE, nil, 0, "Message data ended by <CRLF>.<CRLF>"),
    smtp_cause = ProtoField.new("SMTP failure cause", CAUSE_NAME, ftypes.STRING, nil, nil, nil,
        "Diagnosis code of the SMTP session (ok when clean)"),
    cause = ProtoField.new("Failure cause", "smtpdiag.failure_cause", ftypes.STRING, nil, nil, nil, "Root cause of the conversation: its earliest finding"),
    anomalies = ProtoField.new("Anomaly", "smtpdiag.anomalies", ftypes.STRING, nil, nil, nil, "Every finding of the session"),
    detail = ProtoField.new("Detail", "smtpdiag.detail", ftypes.STRING, nil, nil, nil, "The diagnosis in one sentence with its evidence"),
    terminator = ProtoField.new("Terminator", "smtpdiag.terminator", ftypes.STRING, nil, nil, nil, "crlf, bare_lf, mixed or none"),
    smuggling = ProtoField.bool("smtpdiag.smuggling_suspect", "Smuggling suspect", base.NONE, nil, 0,
        "Non-standard end-of-data sequence inside message data"),
    proto = ProtoField.new("Protocol", "smtpdiag.proto", ftypes.STRING),
    stream = ProtoField.uint32("smtpdiag.stream", "Session (tcp.stream)", base.DEC),
    role = ProtoField.new("Sender role", "smtpdiag.role", ftypes.STRING, nil, nil, nil, "client or server"),
    state = ProtoField.new("State", "smtpdiag.state", ftypes.STRING, nil, nil, nil, "Session state after this frame"),
    command = ProtoField.new("Command", "smtpdiag.command", ftypes.STRING, nil, nil, nil, "Client command verb (not truncated)"),
    reply_code = ProtoField.uint32("smtpdiag.reply_code", "Reply code", base.DEC),
    reply_to = ProtoField.new("Reply to", "smtpdiag.reply_to", ftypes.STRING, nil, nil, nil, "The command this reply answers"),
    reply_to_frame = ProtoField.framenum("smtpdiag.reply_to_frame", "Reply to frame", base.NONE),
    reply_latency = ProtoField.double("smtpdiag.reply_latency", "Reply latency (s)"),
    greeting_latency = ProtoField.double("smtpdiag.greeting_latency", "Greeting latency (s)",
        "From the client's SYN (or first frame) to the server's greeting"),
    data_bytes = ProtoField.uint64("smtpdiag.data_bytes", "Message data bytes", base.DEC),
    data_duration = ProtoField.double("smtpdiag.data_duration", "Data duration (s)",
        "From the 354 reply to the end of data"),
    final_latency = ProtoField.double("smtpdiag.final_reply_latency", "Final reply latency (s)",
        "From the end of data to the server's final reply"),
    session_end = ProtoField.bool("smtpdiag.session_end", "Session summary", base.NONE, nil, 0,
        "On the session's last frame (two-pass and GUI): carries the session summary"),
    first_frame = ProtoField.framenum("smtpdiag.first_frame", "First frame", base.NONE),
    last_frame = ProtoField.framenum("smtpdiag.last_frame", "Last frame", base.NONE),
    start = ProtoField.new("Start (epoch seconds, microsecond precision)", "smtpdiag.start", ftypes.STRING),
    duration = ProtoField.double("smtpdiag.duration", "Duration (s)"),
    client = ProtoField.new("Client address", "smtpdiag.client", ftypes.STRING),
    client_port = ProtoField.uint16("smtpdiag.client_port", "Client port", base.DEC),
    server = ProtoField.new("Server address", "smtpdiag.server", ftypes.STRING),
    server_port = ProtoField.uint16("smtpdiag.server_port", "Server port", base.DEC),
    helo = ProtoField.new("HELO/EHLO name", "smtpdiag.helo", ftypes.STRING),
    messages = ProtoField.uint32("smtpdiag.messages", "Messages accepted", base.DEC),
    last_reply = ProtoField.new("Last reply", "smtpdiag.last_reply", ftypes.STRING),
    tls = ProtoField.bool("smtpdiag.tls", "TLS", base.NONE, nil, 0, "STARTTLS accepted or implicit TLS"),
    bytes_client = ProtoField.uint64("smtpdiag.bytes_client", "Client payload bytes", base.DEC),
    bytes_server = ProtoField.uint64("smtpdiag.bytes_server", "Server payload bytes", base.DEC),
    txn_depth = ProtoField.uint32("smtpdiag.txn.depth", "Transaction depth", base.DEC),
    txn_mailfrom = ProtoField.new("MAIL FROM", "smtpdiag.txn.mailfrom", ftypes.STRING),
    txn_rcptto = ProtoField.new("RCPT TO (comma-joined)", "smtpdiag.txn.rcptto", ftypes.STRING),
    txn_last_reply = ProtoField.new("Transaction last reply", "smtpdiag.txn.last_reply", ftypes.STRING),
    txn_terminated = ProtoField.new("Transaction data terminated", "smtpdiag.txn.data_terminated", ftypes.STRING, nil, nil, nil, "true, false, or empty when unknown or no DATA phase"),
    txn_bytes = ProtoField.uint64("smtpdiag.txn.message_bytes", "Transaction message bytes", base.DEC),
    txn_cause = ProtoField.new("Transaction failure cause", "smtpdiag.txn.failure_cause", ftypes.STRING),
    txn_first_frame = ProtoField.framenum("smtpdiag.txn.first_frame", "Transaction first frame", base.NONE),
    txn_last_frame = ProtoField.framenum("smtpdiag.txn.last_frame", "Transaction last frame", base.NONE),
    txn_start = ProtoField.new("Transaction start (epoch s)", "smtpdiag.txn.start", ftypes.STRING),
    txn_tls = ProtoField.bool("smtpdiag.txn.tls", "Transaction after STARTTLS", base.NONE, nil, 0),
    status = ProtoField.new("POP3/IMAP status", "smtpdiag.status", ftypes.STRING, nil, nil, nil, "+OK, -ERR, OK, NO, BAD"),
    mbox_user = ProtoField.new("Mailbox user", "smtpdiag.mbox.user", ftypes.STRING, nil, nil, nil, "Never the password"),
    mbox_commands = ProtoField.new("Mailbox commands", "smtpdiag.mbox.commands", ftypes.STRING, nil, nil, nil, "VERB=count,..."),
    dns_query = ProtoField.new("DNS query name", "smtpdiag.dns.query", ftypes.STRING),
    dns_qtype = ProtoField.new("DNS query type", "smtpdiag.dns.qtype", ftypes.STRING),
    dns_rcode = ProtoField.new("DNS rcode", "smtpdiag.dns.rcode", ftypes.STRING),
    dns_answers = ProtoField.new("DNS answer", "smtpdiag.dns.answers", ftypes.STRING),
    dns_latency = ProtoField.double("smtpdiag.dns.latency", "DNS latency (s)",
        "From the first query to the answer, across retransmissions"),
    dns_queries = ProtoField.uint32("smtpdiag.dns.queries", "DNS query transmissions", base.DEC),
    version = ProtoField.new("Plugin version", "smtpdiag.version", ftypes.STRING),
    credentials = ProtoField.bool("smtpdiag.credentials", "Carries credentials", base.NONE, nil, 0,
        "This frame carries a password or an AUTH exchange: tables redact its other fields"),
    warning = ProtoField.new("Warning", "smtpdiag.warning", ftypes.STRING),
    internal_error = ProtoField.new("Internal error", "smtpdiag.internal_error", ftypes.STRING, nil, nil, nil, "A bug in smtpdiag met this frame: no verdict was given for it"),
}
-- Display-filter names of the fields, for the summary file.
local ABBR = {
    [F.data_terminated] = DT_NAME,
    [F.smtp_cause] = CAUSE_NAME,
    [F.cause] = "smtpdiag.failure_cause",
    [F.anomalies] = "smtpdiag.anomalies",
    [F.detail] = "smtpdiag.detail",
    [F.terminator] = "smtpdiag.terminator",
    [F.smuggling] = "smtpdiag.smuggling_suspect",
    [F.proto] = "smtpdiag.proto",
    [F.stream] = "smtpdiag.stream",
    [F.role] = "smtpdiag.role",
    [F.state] = "smtpdiag.state",
    [F.command] = "smtpdiag.command",
    [F.reply_code] = "smtpdiag.reply_code",
    [F.reply_to] = "smtpdiag.reply_to",
    [F.reply_to_frame] = "smtpdiag.reply_to_frame",
    [F.reply_latency] = "smtpdiag.reply_latency",
    [F.greeting_latency] = "smtpdiag.greeting_latency",
    [F.data_bytes] = "smtpdiag.data_bytes",
    [F.data_duration] = "smtpdiag.data_duration",
    [F.final_latency] = "smtpdiag.final_reply_latency",
    [F.session_end] = "smtpdiag.session_end",
    [F.first_frame] = "smtpdiag.first_frame",
    [F.last_frame] = "smtpdiag.last_frame",
    [F.start] = "smtpdiag.start",
    [F.duration] = "smtpdiag.duration",
    [F.client] = "smtpdiag.client",
    [F.client_port] = "smtpdiag.client_port",
    [F.server] = "smtpdiag.server",
    [F.server_port] = "smtpdiag.server_port",
    [F.helo] = "smtpdiag.helo",
    [F.messages] = "smtpdiag.messages",
    [F.last_reply] = "smtpdiag.last_reply",
    [F.tls] = "smtpdiag.tls",
    [F.bytes_client] = "smtpdiag.bytes_client",
    [F.bytes_server] = "smtpdiag.bytes_server",
    [F.txn_depth] = "smtpdiag.txn.depth",
    [F.txn_mailfrom] = "smtpdiag.txn.mailfrom",
    [F.txn_rcptto] = "smtpdiag.txn.rcptto",
    [F.txn_last_reply] = "smtpdiag.txn.last_reply",
    [F.txn_terminated] = "smtpdiag.txn.data_terminated",
    [F.txn_bytes] = "smtpdiag.txn.message_bytes",
    [F.txn_cause] = "smtpdiag.txn.failure_cause",
    [F.txn_first_frame] = "smtpdiag.txn.first_frame",
    [F.txn_last_frame] = "smtpdiag.txn.last_frame",
    [F.txn_start] = "smtpdiag.txn.start",
    [F.txn_tls] = "smtpdiag.txn.tls",
    [F.status] = "smtpdiag.status",
    [F.mbox_user] = "smtpdiag.mbox.user",
    [F.mbox_commands] = "smtpdiag.mbox.commands",
    [F.dns_query] = "smtpdiag.dns.query",
    [F.dns_qtype] = "smtpdiag.dns.qtype",
    [F.dns_rcode] = "smtpdiag.dns.rcode",
    [F.dns_answers] = "smtpdiag.dns.answers",
    [F.dns_latency] = "smtpdiag.dns.latency",
    [F.dns_queries] = "smtpdiag.dns.queries",
    [F.version] = "smtpdiag.version",
    [F.warning] = "smtpdiag.warning",
    [F.credentials] = "smtpdiag.credentials",
    [F.internal_error] = "smtpdiag.internal_error",
}
local field_list = {}
local field_keys = {}
for k in pairs(F) do field_keys[#field_keys + 1] = k end
table.sort(field_keys)  -- a stable order, run after run
for _, k in ipairs(field_keys) do field_list[#field_list + 1] = F[k] end
p.fields = field_list

-- One expert info per diagnosis code.
local CODES = {
    no_response = { expert.group.SEQUENCE, expert.severity.ERROR, "No response to SYN" },
    connection_refused = { expert.group.SEQUENCE, expert.severity.ERROR, "Connection refused (RST to SYN)" },
    no_banner = { expert.group.SEQUENCE, expert.severity.ERROR, "No SMTP greeting" },
    greeting_rejected = { expert.group.RESPONSE_CODE, expert.severity.ERROR, "Greeting rejected" },
    pregreet = { expert.group.PROTOCOL, expert.severity.WARN, "Client talked before the greeting" },
    banner_masked = { expert.group.PROTOCOL, expert.severity.WARN, "Greeting masked by a middlebox" },
    command_masked = { expert.group.PROTOCOL, expert.severity.WARN, "Command masked by a middlebox" },
    starttls_stripped = { expert.group.PROTOCOL, expert.severity.WARN, "STARTTLS stripped by a middlebox" },
    tls_failed = { expert.group.SEQUENCE, expert.severity.ERROR, "TLS handshake after STARTTLS failed" },
    auth_failed = { expert.group.RESPONSE_CODE, expert.severity.WARN, "Authentication failed" },
    tempfail = { expert.group.RESPONSE_CODE, expert.severity.WARN, "Temporary failure (4xx)" },
    rejected = { expert.group.RESPONSE_CODE, expert.severity.ERROR, "Rejected (5xx)" },
    bare_lf_terminator = { expert.group.MALFORMED, expert.severity.ERROR, "Message data ended by a non-<CRLF>.<CRLF> sequence" },
    smuggling_attempt = { expert.group.MALFORMED, expert.severity.ERROR, "SMTP smuggling pattern in message data" },
    data_not_terminated = { expert.group.SEQUENCE, expert.severity.ERROR, "DATA never terminated" },
    data_timeout = { expert.group.SEQUENCE, expert.severity.ERROR, "Server timed out waiting for end of data" },
    data_reset = { expert.group.SEQUENCE, expert.severity.ERROR, "Connection reset during DATA" },
    bdat_incomplete = { expert.group.SEQUENCE, expert.severity.ERROR, "BDAT data incomplete" },
    mtu_blackhole = { expert.group.SEQUENCE, expert.severity.ERROR, "Path MTU black hole" },
    reset = { expert.group.SEQUENCE, expert.severity.WARN, "Connection reset" },
    incomplete = { expert.group.SEQUENCE, expert.severity.WARN, "Capture too incomplete to judge" },
    dns_nxdomain = { expert.group.RESPONSE_CODE, expert.severity.ERROR, "Mail DNS lookup: NXDOMAIN" },
    dns_servfail = { expert.group.RESPONSE_CODE, expert.severity.ERROR, "Mail DNS lookup: SERVFAIL" },
    dns_refused = { expert.group.RESPONSE_CODE, expert.severity.ERROR, "Mail DNS lookup: REFUSED" },
    dns_no_response = { expert.group.SEQUENCE, expert.severity.ERROR, "Mail DNS lookup never answered" },
    dns_no_answer = { expert.group.RESPONSE_CODE, expert.severity.WARN, "Mail DNS lookup: no records of that type" },
    pop_auth_failed = { expert.group.RESPONSE_CODE, expert.severity.WARN, "POP3 authentication failed" },
    imap_auth_failed = { expert.group.RESPONSE_CODE, expert.severity.WARN, "IMAP authentication failed" },
}
local EXPERTS = {}
local expert_list = {}
for code, d in pairs(CODES) do
    local e = ProtoExpert.new("smtpdiag.expert." .. code, d[3], d[1], d[2])
    EXPERTS[code] = e
    expert_list[#expert_list + 1] = e
end
p.experts = expert_list

---------------------------------------------------------------------------
-- Field extractors (created once)
---------------------------------------------------------------------------
local f_stream = Field.new("tcp.stream")
local f_tcplen = Field.new("tcp.len")
local f_smtp = Field.new("smtp")
local f_pop = Field.new("pop")
local f_imap = Field.new("imap")
local f_frame = Field.new("frame")
local f_frame_time = Field.new("frame.time")

-- The current frame's time as exact epoch seconds with microseconds (pinfo.abs_ts is a double).
local function frame_time_text()
    local t = f_frame_time().value
    return string.format("%d.%06d", t.secs, math.floor(t.nsecs / 1000))
end

local function exact_time(fallback)
    local ok, s = pcall(frame_time_text)
    return ok and s or string.format("%.6f", fallback or 0)
end

---------------------------------------------------------------------------
-- Helpers
---------------------------------------------------------------------------
local MOD32 = 4294967296
local function seqdiff(a, b) -- a - b in sequence space, signed
    local d = (a - b) % MOD32
    if d >= 2147483648 then d = d - MOD32 end
    return d
end

-- Printable, bounded text from capture bytes: no control characters reach a
-- column, a CSV cell or a terminal.
local function clean(s, max)
    max = max or 200
    s = tostring(s or "")
    if #s > max then s = s:sub(1, max) .. "..." end
    if not s:find("[%z\1-\31\127-\255]") then return s end
    return (s:gsub("[%z\1-\31\127-\255]", function(c) return string.format("\\x%02x", c:byte()) end))
end

local function secs(x)
    return string.format("%.1f s", x)
end

local function u64(n)
    return UInt64.new(math.floor(n))
end

---------------------------------------------------------------------------
-- Session state
---------------------------------------------------------------------------
local sessions = {}
local finalized = false
-- Batch mode (summary file) state
local SUMMARY_HEADER = nil
local summary_out = nil
local summary_failed = false
local done_fifo, done_head, done_tail = {}, 1, 0
local tombstones = {}
local degraded, degraded_last = false, 0

local function new_dir()
    return { next = nil, ooo = {}, ooo_bytes = 0, fin = false, rst = false, pkts = 0, bytes = 0,
             maxack = nil, big_seq = nil, big_count = 0, line = "" }
end

local function new_session(stream, frame, ts)
    return {
        stream = stream, first_frame = frame, last_frame = frame, first_ts = ts, last_ts = ts,
        start_str = exact_time(ts),
        c = new_dir(), s = new_dir(),
        syns = 0, syn_frame = nil, syn_ts = nil, synack = false, established = false,
        midstream = false,
        cmode = "cmd", phase = "greeting",
        pending = {}, qh = 1, qt = 0,
        reply_lines = {},
        greeted = false, greet_ts = nil,
        helo = nil, helo_ok = false, tls = false, quit = false, ended_normally = false,
        txns = {}, txn = nil, msgs_done = 0, messages = 0,
        findings = {}, anomalies = {}, anomaly_set = {},
        ann = {}, decided = {},
        held = {}, held_bytes = 0,
        D = nil,
        bdat_remaining = 0, bdat_last = false, bdat_total = 0, bdat_frame = nil,
        tlsw = nil,
        last_reply = nil,
    }
end

-- Batch mode: an ended conversation waits here for its trailing packets, then is written out.
local function enqueue_done(S, ts)
    if S.queued then return end
    S.queued = true
    done_tail = done_tail + 1
    done_fifo[done_tail] = { S = S, ts = ts }
end

-- Batch mode renders no frame: annotations (a fixed set of scalar keys) go to one scratch table.
local batch_sink = {}

local function ann(S, frame)
    if batch then return batch_sink end
    local a = rawget(S.ann, frame)
    if not a then
        a = {}
        local parent = S.ann_parent and S.ann_parent[frame]
        if parent then for k, v in pairs(parent) do a[k] = v end end
        S.ann[frame] = a
    end
    return a
end

-- Appends to a list of the frame's annotations, up to max entries if given (rendered on later
-- passes; batch mode keeps none).
local function ann_append(S, frame, key, x, max)
    if batch then return end
    local a = ann(S, frame)
    local l = a[key]
    if not l then l = {}; a[key] = l end
    if not max or #l < max then l[#l + 1] = x end
end

-- A copy of a session that can be finished as if the capture ended here, while
-- the original goes on (the GUI draws rows while a file is still loading).
local function deep_copy(v, memo)
    if type(v) ~= "table" then return v end
    if memo[v] then return memo[v] end
    local c = {}
    memo[v] = c
    for k, x in pairs(v) do c[k] = deep_copy(x, memo) end
    return c
end

local function session_view(S)
    local memo = { [S.ann] = setmetatable({}, { __index = S.ann }),
                   [S.decided] = setmetatable({}, { __index = S.decided }) }
    local V = deep_copy(S, memo)
    V.ann_parent = S.ann
    return V
end

local function add_anomaly(S, code)
    if not S.anomaly_set[code] then
        S.anomaly_set[code] = true
        S.anomalies[#S.anomalies + 1] = code
    end
end

-- A finding: a candidate failure cause with its evidence.
local function finding(S, code, frame, ts, detail)
    for _, f in ipairs(S.findings) do
        if f.code == code then return f end
    end
    local f = { code = code, frame = frame, ts = ts, detail = detail, seq = #S.findings + 1 }
    S.findings[#S.findings + 1] = f
    add_anomaly(S, code)
    S.decided[S.cur_frame or frame] = true
    return f
end

local function drop_finding(S, code)
    for i, f in ipairs(S.findings) do
        if f.code == code then
            table.remove(S.findings, i)
            for j, c in ipairs(S.anomalies) do
                if c == code then table.remove(S.anomalies, j); break end
            end
            S.anomaly_set[code] = nil
            return
        end
    end
end

---------------------------------------------------------------------------
-- Transactions
---------------------------------------------------------------------------
-- Transactions follow Zeek's smtp.log: a record per MAIL (or first RCPT/STARTTLS),
-- depth = messages transferred so far + 1, closed by the reply to end of data.
local function txn_begin(S, frame)
    S.txn = { depth = S.msgs_done + 1, mailfrom = nil, rcpt = {}, last_reply = nil, terminated = nil,
              bytes = nil, cause = nil, first_frame = frame, last_frame = frame, bdat = false,
              start = S.cur_ts, start_str = exact_time(S.cur_ts), activity = false }
    S.txns[#S.txns + 1] = S.txn
    return S.txn
end

local function txn_current(S, frame)
    return S.txn or txn_begin(S, frame)
end

local function txn_cause(S, code)
    local t = S.txn
    if t and not t.cause then t.cause = code end
end

---------------------------------------------------------------------------
-- Client side: commands, message data, BDAT chunks
---------------------------------------------------------------------------
local command_line, server_line -- forward declarations
local data_feed, bdat_feed, tls_feed

local function push_pending(S, verb, arg, frame, ts)
    if S.qt - S.qh > 1000 then return end -- a client that never reads replies
    S.qt = S.qt + 1
    S.pending[S.qt] = { verb = verb, arg = arg, frame = frame, ts = ts }
end

local function pop_pending(S)
    local e = S.pending[S.qh]
    if e then
        S.pending[S.qh] = nil
        S.qh = S.qh + 1
    end
    return e
end

local function data_start(S, frame, ts, inferred)
    S.phase = "data"
    S.cmode = "data"
    S.D = { prev_crlf = true, head = "", len = 0, last_cr = false, bytes = 0,
            start_frame = frame, start_ts = ts, last_ts = ts, cand = nil, smuggle = nil,
            bare_lines = 0, gap = false, inferred = inferred, after_cand = false }
    local t = txn_current(S, frame)
    t.had_data = true
end

-- Ends the DATA phase. how: "crlf" | "bare_lf" | "mixed" | "none"
local function data_end(S, frame, ts, how, terminated)
    local D = S.D
    if not D then return end
    local t = txn_current(S, frame)
    t.terminated = terminated
    t.terminator = how
    t.bytes = D.bytes
    t.last_frame = frame
    local a = ann(S, frame)
    a.terminator = how
    if terminated ~= nil then a.data_terminated = terminated end
    a.data_bytes = D.bytes
    a.data_duration = ts - D.start_ts
    S.decided[frame] = true
    S.last_D = D
    S.D = nil
    S.phase = "cmd"
    S.cmode = "cmd"
end

local CMD_PATTERNS = { "^MAIL FROM", "^RCPT TO", "^DATA", "^EHLO", "^HELO", "^BDAT", "^RSET", "^QUIT", "^AUTH", "^STARTTLS" }
local function looks_like_command(head)
    local u = head:upper()
    for _, pat in ipairs(CMD_PATTERNS) do
        if u:find(pat) then return true end
    end
    return false
end

-- One complete line of message data. Returns true when it is the standard terminator.
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
        -- A dot line that a lenient server may take as the end: <LF>.<LF>, <CRLF>.<LF>, <LF>.<CRLF>.
        local kind = (not crlf and not D.prev_crlf) and "bare_lf" or "mixed"
        local seqname = (D.prev_crlf and "<CR><LF>" or "<LF>") .. "." .. (crlf and "<CR><LF>" or "<LF>")
        if not D.cand then
            D.cand = { frame = frame, ts = ts, kind = kind, seqname = seqname, bytes = D.bytes }
        end
        D.last_cand = { frame = frame, ts = ts, kind = kind, seqname = seqname, bytes = D.bytes }
        D.after_cand = true
        ann(S, frame).smuggling = true
        S.decided[frame] = true
        add_anomaly(S, "smuggling_suspect")
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
function data_feed(S, s, frame, ts)
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
            head = head .. s:sub(pos, math.min(nl - 1, pos + 63 - #head))
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

local function smuggling_check(S, D, frame)
    if D and D.smuggle then
        local c = D.smuggle.cand or D.cand
        finding(S, "smuggling_attempt", c and c.frame or D.smuggle.frame, c and c.ts or D.smuggle.ts,
            string.format("non-standard end-of-data %s in frame %d is followed by the SMTP command '%s' inside the message data (frame %d)",
                c and c.seqname or "sequence", c and c.frame or 0, D.smuggle.cmd, D.smuggle.frame))
        txn_cause(S, "smuggling_attempt")
    end
end

-- Standard terminator seen at the client.
local function data_terminated_ok(S, frame, ts)
    local D = S.D
    smuggling_check(S, D, frame)
    if D.bare_lines > 0 then add_anomaly(S, "bare_lf_in_data") end
    data_end(S, frame, ts, "crlf", true)
    push_pending(S, "<end-of-data>", nil, frame, ts)
end

function bdat_feed(S, s, frame, ts)
    local take = math.min(S.bdat_remaining, #s)
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

-- TLS record walker: learns whether a handshake completed after STARTTLS.
function tls_feed(S, role, s, frame, ts)
    local W = S.tlsw
    if not W or W.done or W.failed then return end
    local w = W[role]
    local pos, n = 1, #s
    while pos <= n do
        if w.skip > 0 then
            local k = math.min(w.skip, n - pos + 1)
            w.skip = w.skip - k
            pos = pos + k
        else
            local need = 5 - #w.hdr
            w.hdr = w.hdr .. s:sub(pos, pos + need - 1)
            pos = pos + need
            if #w.hdr == 5 then
                local ctype, vmaj = w.hdr:byte(1), w.hdr:byte(2)
                local rlen = w.hdr:byte(4) * 256 + w.hdr:byte(5)
                w.hdr = ""
                if ctype < 20 or ctype > 24 or vmaj ~= 3 then
                    W.failed = { frame = frame, ts = ts,
                        why = string.format("non-TLS bytes from the %s (frame %d)", role == "c" and "client" or "server", frame) }
                    return
                end
                if ctype == 21 and not W.done then
                    W.failed = { frame = frame, ts = ts,
                        why = string.format("a TLS alert from the %s (frame %d)", role == "c" and "client" or "server", frame) }
                    return
                end
                w.records = w.records + 1
                if ctype == 20 or ctype == 23 then w.finished = true end
                w.skip = rlen
            end
        end
    end
    -- TLS 1.2: both sides sent ChangeCipherSpec; TLS 1.3: the client sent its
    -- ChangeCipherSpec/encrypted Finished after the server's flight.
    if W.c.finished and W.s.records > 0 and (W.s.finished or W.c.records >= 2) then
        W.done = true
    end
end

-- A complete line from the client, in command mode.
function command_line(S, line, frame, ts)
    local text = line:gsub("\r?\n$", "")
    if S.cmode == "auth" and text:find("[ :]") then
        S.cmode = "cmd"  -- not base64: the exchange is over (its final reply may be missing)
    end
    if S.cmode == "auth" then
        -- The line answers a 334 challenge: credentials, never shown. "*" cancels.
        ann_append(S, frame, "cmds", "(AUTH data)")
        ann(S, frame).cred = true
        push_pending(S, "AUTH", "(continuation)", frame, ts)
        return
    end
    local verb, arg = text:match("^%s*(%S+)%s*(.-)%s*$")
    if not verb then return end
    verb = verb:upper():sub(1, 32)
    if not batch then ann_append(S, frame, "cmds", clean(verb, 32)) end
    S.last_cmd_frame = frame
    if verb == "AUTH" and arg:match("^%S+%s+%S") then ann(S, frame).cred = true end  -- an initial response

    if not S.greeted and not S.midstream and not S.pregreet_cand then
        S.pregreet_cand = { frame = frame, ts = ts, verb = clean(verb, 32) }
    end
    if #verb >= 3 and verb:match("^X+$") then
        finding(S, "command_masked", frame, ts,
            string.format("client command rewritten to '%s' (frame %d): a middlebox's SMTP inspection masks commands", clean(verb, 32), frame))
    end

    if verb == "MAIL" then
        if S.txn and S.txn.activity then S.txn = nil end
        local t = txn_begin(S, frame)
        t.mailfrom = arg:match("^[Ff][Rr][Oo][Mm]:%s*<([^>]*)>") or arg:match("^[Ff][Rr][Oo][Mm]:%s*(%S*)")
        t.activity = true
    elseif verb == "RCPT" then
        local t = txn_current(S, frame)
        local addr = arg:match("^[Tt][Oo]:%s*<([^>]*)>") or arg:match("^[Tt][Oo]:%s*(%S+)")
        if addr and #t.rcpt < 1000 then
            addr = addr:gsub("ORCPT=rfc822;?", "")
            t.rcpt[#t.rcpt + 1] = clean(addr, 200)
        end
        t.activity = true
        push_pending(S, verb, addr, frame, ts)
        return
    elseif verb == "DATA" then
        -- Bytes after DATA wait for the reply: 354 makes them message data, 5xx commands.
        S.cmode = "hold"
        txn_current(S, frame)
    elseif verb == "BDAT" then
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
            return
        end
    elseif verb == "EHLO" or verb == "HELO" or verb == "LHLO" then
        S.helo = clean(arg, 100)
    elseif verb == "QUIT" then
        S.quit = true
    end
    push_pending(S, verb, arg, frame, ts)
    if verb == "AUTH" then
        -- Until AUTH's final reply every client line is credentials, even one sent before the 334.
        S.cmode = "auth"
    end
end

-- The next complete line of s from pos, joined to what direction d buffered before, and
-- the position after it; nil when s ends inside a line (the rest is buffered, lines
-- are kept to 4096 bytes).
local function take_line(d, s, pos)
    local nl = s:find("\n", pos, true)
    if not nl then
        if #d.line < 4096 then d.line = d.line .. s:sub(pos, pos + 4095 - #d.line) end
        return nil
    end
    local line = d.line .. s:sub(pos, math.min(nl, pos + 4096))
    d.line = ""
    return line, nl + 1
end

-- s from pos on (a copy only when pos > 1: string.sub always copies).
local function rest_of(s, pos)
    if pos == 1 then return s end
    return s:sub(pos)
end

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
            data_terminated_ok(S, frame, ts)
            pos = pos + used
        elseif m == "bdat" then
            pos = pos + bdat_feed(S, rest_of(s, pos), frame, ts)
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

-- Replays bytes held after a DATA command, now that its reply is known.
local function release_held(S)
    local held = S.held
    S.held, S.held_bytes = {}, 0
    for _, h in ipairs(held) do
        S.cur_frame = h.frame
        client_bytes(S, h.data, h.frame, h.ts)
    end
end

---------------------------------------------------------------------------
-- Server side: replies
---------------------------------------------------------------------------
local function reply_text(S)
    local l = S.reply_lines[#S.reply_lines] or ""
    return clean(l, 200)
end

local function is_masked_banner(lines)
    local txt = (lines[1] or ""):sub(5)
    return #txt >= 3 and txt:match("^[%*%s]+$") ~= nil
end

-- Client data before the greeting counts once the server is seen to speak.
local function pregreet_confirm(S, frame)
    local c = S.pregreet_cand
    if c and not S.pregreet_done then
        S.pregreet_done = true
        finding(S, "pregreet", c.frame, c.ts,
            string.format("client sent '%s' (frame %d) before the server's greeting (frame %d)", c.verb, c.frame, frame))
    end
end

local function on_reply(S, code, frame, ts)
    local lines = S.reply_lines
    local text = reply_text(S)
    local cls = math.floor(code / 100)
    S.last_reply = text
    local cmd = pop_pending(S)
    local verb = cmd and cmd.verb or nil
    if S.midstream and not S.greeted and not verb and not S.last_cmd_frame and code == 220 then
        -- The capture starts after the handshake but before the greeting: judgeable.
        S.midstream = false
    end
    if not S.greeted and (not verb or verb == "<greeting>") and not S.midstream then
        verb = "<greeting>"
    elseif verb == "<greeting>" and S.greeted then
        verb = nil
    end

    if not batch then
        ann_append(S, frame, "replies", { code = code, to = verb, to_frame = cmd and cmd.frame or nil,
                                          latency = cmd and cmd.ts and (ts - cmd.ts) or nil })
    end
    local a = ann(S, frame)
    if S.txn then S.txn.last_reply = text; S.txn.last_frame = frame end

    if verb == "<greeting>" then
        S.greeted = true
        pregreet_confirm(S, frame)
        S.greet_ts = ts
        local since = S.syn_ts or S.first_ts
        a.greeting_latency = ts - since
        S.phase = "cmd"
        if cls == 4 or cls == 5 then
            finding(S, "greeting_rejected", frame, ts, string.format("greeting rejected: '%s' (frame %d)", text, frame))
        elseif code == 220 and is_masked_banner(lines) then
            finding(S, "banner_masked", frame, ts,
                string.format("greeting '%s' is masked (frame %d): a middlebox's SMTP inspection is in the path", text, frame))
        end
        return
    end
    if not verb then
        add_anomaly(S, "unsolicited_reply")
        if code == 421 then
            finding(S, "tempfail", frame, ts, string.format("server closed the session: '%s' (frame %d)", text, frame))
        end
        return
    end
    local vtxt = clean(verb, 32)
    if verb == "EHLO" or verb == "HELO" or verb == "LHLO" then
        if cls == 2 then
            S.helo_ok = true
            drop_finding(S, S.helo_refusal or "")
            for _, l in ipairs(lines) do
                local cap = l:sub(5)
                if cap:match("^X+A?$") and #cap >= 6 and cap:match("^XX") then
                    finding(S, "starttls_stripped", frame, ts,
                        string.format("EHLO capability '%s' in frame %d: STARTTLS hidden by a middlebox", clean(l, 40), frame))
                end
                if cap:upper():match("^PIPE_CONNECT") then
                    -- Early pipelining: this server invites commands before its greeting.
                    S.pipe_connect = true
                    if S.pregreet_done then drop_finding(S, "pregreet"); add_anomaly(S, "pipe_connect") end
                end
            end
        elseif cls == 4 or cls == 5 then
            add_anomaly(S, "helo_refused")
            if not S.helo_ok then
                local code_name = cls == 4 and "tempfail" or "rejected"
                if not S.anomaly_set[code_name] then
                    S.helo_refusal = code_name
                    finding(S, code_name, frame, ts, string.format("%s answered '%s' (frame %d)", vtxt, text, frame))
                end
            end
        end
    elseif verb == "MAIL" or verb == "RCPT" or verb == "DATA" or verb == "BDAT" or verb == "<end-of-data>" then
        if verb == "DATA" then
            if code == 354 then
                data_start(S, frame, ts, false)
                release_held(S)
                S.cur_frame = frame
            else
                S.cmode = "cmd"
                release_held(S)
                S.cur_frame = frame
            end
        end
        local message_end = verb == "<end-of-data>" or (verb == "BDAT" and cmd.bdat_last)
        if verb == "<end-of-data>" then
            a.final_latency = ts - cmd.ts
            local t = S.txn
            if t and t.terminator and t.terminator ~= "crlf" and cls == 2 then
                add_anomaly(S, "nonstandard_terminator_accepted")
            end
        end
        if cls == 4 or cls == 5 then
            local code_name = cls == 4 and "tempfail" or "rejected"
            local what = verb == "<end-of-data>" and "end of data" or verb
            if verb == "RCPT" or verb == "MAIL" then
                what = string.format("%s %s", verb, clean(cmd.arg and ("<" .. cmd.arg .. ">") or "", 80))
            end
            finding(S, code_name, frame, ts, string.format("%s answered '%s' (frame %d)", what, text, frame))
            txn_cause(S, code_name)
            if verb == "BDAT" and S.cmode == "bdat" then
                add_anomaly(S, "bdat_rejected")
            end
        end
        if message_end then
            if cls == 2 then S.messages = S.messages + 1 end
            S.msgs_done = S.msgs_done + 1
            S.bdat_done = false
            S.txn = nil
        end
    elseif verb == "AUTH" then
        if code ~= 334 and S.cmode == "auth" then S.cmode = "cmd" end
        if code == 334 then
            S.cmode = "auth"
        elseif cls == 2 then
            S.auth_ok = true
            drop_finding(S, S.auth_refusal or "")
        elseif cls == 4 or cls == 5 then
            add_anomaly(S, "auth_refused")
            local code_name = cls == 5 and "auth_failed" or "tempfail"
            S.auth_refusal = code_name
            finding(S, code_name, frame, ts, string.format("AUTH answered '%s' (frame %d)", text, frame))
        end
    elseif verb == "STARTTLS" then
        if code == 220 then
            local t = txn_current(S, frame)
            t.tls, t.activity, t.last_reply = true, true, text
            S.tls = true
            S.phase = "tls"
            S.cmode = "tls"
            S.tls_frame, S.tls_ts = frame, ts
            S.tlsw = { c = { hdr = "", skip = 0, records = 0 }, s = { hdr = "", skip = 0, records = 0 } }
        elseif cls == 4 or cls == 5 then
            add_anomaly(S, "starttls_refused")
        end
    elseif verb == "QUIT" then
        if cls == 2 then S.ended_normally = true end
    else
        if cls == 4 or cls == 5 then
            add_anomaly(S, "command_refused")
        end
    end
    if code == 421 and verb ~= "<greeting>" then
        finding(S, "tempfail", frame, ts, string.format("server closed the session: '%s' after %s (frame %d)", text, vtxt, frame))
    end
end

-- A server reply arriving while the client is still in the DATA phase.
local function reply_during_data(S, code, frame, ts)
    local D = S.D
    local text = reply_text(S)
    local cls = math.floor(code / 100)
    local cmd_frame = D.start_frame
    if D.cand then
        -- The server took a non-standard sequence as the end of data.
        local c = D.last_cand or D.cand
        finding(S, "bare_lf_terminator", c.frame, c.ts,
            string.format("message data ended by %s in frame %d, not <CRLF>.<CRLF>; server replied '%s' (frame %d)",
                c.seqname, c.frame, text, frame))
        txn_cause(S, "bare_lf_terminator")
        if D.smuggle and D.smuggle.frame > c.frame then
            smuggling_check(S, D, frame)
        end
        if code == 421 then
            finding(S, "data_timeout", frame, ts,
                string.format("server gave up waiting for <CRLF>.<CRLF>: '%s' %s after the last data (frame %d)",
                    text, secs(ts - D.last_ts), frame))
            data_end(S, frame, ts, c.kind, false)
        else
            if cls == 2 then add_anomaly(S, "nonstandard_terminator_accepted") end
            data_end(S, c.frame, c.ts, c.kind, false)
            ann(S, c.frame).data_terminated = false
        end
    elseif D.gap then
        add_anomaly(S, "capture_gap")
        data_end(S, frame, ts, nil, nil)
    else
        if code == 421 or cls == 4 then
            finding(S, "data_timeout", frame, ts,
                string.format("354 at frame %d, %d bytes of data, no <CRLF>.<CRLF>; server replied '%s' %s after the last data (frame %d)",
                    cmd_frame, D.bytes, text, secs(ts - D.last_ts), frame))
            txn_cause(S, "data_timeout")
        else
            finding(S, cls == 5 and "rejected" or "data_not_terminated", frame, ts,
                string.format("server answered '%s' in the middle of message data, %d bytes after 354 (frame %d)", text, D.bytes, frame))
        end
        data_end(S, frame, ts, "none", false)
    end
    ann_append(S, frame, "replies", { code = code, to = "<data>", to_frame = cmd_frame, latency = ts - D.start_ts })
    S.last_reply = text
    if S.txn then S.txn.last_reply = text end
    if cls == 2 then S.messages = S.messages + 1 end
    S.msgs_done = S.msgs_done + 1
    S.txn = nil
end

function server_line(S, line, frame, ts)
    local text = line:gsub("\r?\n$", "")
    local codes, sep = text:match("^(%d%d%d)([ %-]?)")
    local code = tonumber(codes or "")
    if not code or code < 200 or code > 599 then
        add_anomaly(S, "malformed_reply")
        return
    end
    if #S.reply_lines < 64 then S.reply_lines[#S.reply_lines + 1] = text:sub(1, 512) end
    if sep == "-" then return end
    if S.D then
        reply_during_data(S, code, frame, ts)
    else
        on_reply(S, code, frame, ts)
    end
    local rl = S.reply_lines
    for i = #rl, 1, -1 do rl[i] = nil end
end

local function server_bytes(S, s, frame, ts)
    if S.phase == "tls" then
        tls_feed(S, "s", s, frame, ts)
        return
    end
    local pos, n = 1, #s
    local d = S.s
    while pos <= n do
        local line, after = take_line(d, s, pos)
        if not line then return end
        pos = after
        server_line(S, line, frame, ts)
        if S.phase == "tls" and pos <= n then
            tls_feed(S, "s", s:sub(pos), frame, ts)
            return
        end
    end
end

---------------------------------------------------------------------------
-- POP3 and IMAP: mailbox sessions (same TCP layer, their own line protocols)
---------------------------------------------------------------------------
local B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
local function b64decode(s)
    s = s:gsub("[^%w%+/=]", "")
    if #s > 4096 then return "" end
    return (s:gsub(".", function(x)
        if x == "=" then return "" end
        local f = B64:find(x, 1, true)
        if not f then return "" end
        local r, n = "", f - 1
        for i = 6, 1, -1 do r = r .. (math.floor(n / 2 ^ (i - 1)) % 2 == 1 and "1" or "0") end
        return r
    end):gsub("%d%d%d?%d?%d?%d?%d?%d?", function(x)
        if #x ~= 8 then return "" end
        return string.char(tonumber(x, 2))
    end))
end

-- The user of AUTH PLAIN's initial response ("authzid\0authcid\0password"): the password is dropped here.
local function plain_user(b64)
    local raw = b64decode(b64 or "")
    local _, authcid = raw:match("^([^%z]*)%z([^%z]*)%z")
    return authcid and clean(authcid, 100) or nil
end

local function count_cmd(S, verb)
    S.cmd_counts = S.cmd_counts or {}
    if not S.cmd_counts[verb] then
        S.cmd_order = S.cmd_order or {}
        if #S.cmd_order >= 40 then verb = "OTHER" end
        if not S.cmd_counts[verb] then S.cmd_order[#S.cmd_order + 1] = verb; S.cmd_counts[verb] = 0 end
    end
    S.cmd_counts[verb] = S.cmd_counts[verb] + 1
end

local function mbox_note_cmd(S, frame, text, cred)
    if batch then return end
    if cred then ann(S, frame).cred = true end
    ann_append(S, frame, "cmds", text, 32)
end

local function mbox_note_reply(S, frame, ts, status, cmd)
    if batch then return end
    ann_append(S, frame, "status", status, 32)
    if cmd then
        ann_append(S, frame, "replies",
                   { to = cmd.verb, to_frame = cmd.frame, latency = cmd.ts and (ts - cmd.ts) or nil })
    end
end

local function auth_refused(S, code, frame, ts, what, text)
    add_anomaly(S, "auth_refused")
    if not S.auth_ok then
        S.auth_refusal = code
        finding(S, code, frame, ts, string.format("%s answered '%s' (frame %d)", what, text, frame))
    end
end

local function auth_accepted(S)
    S.auth_ok = true
    if S.auth_refusal then drop_finding(S, S.auth_refusal); add_anomaly(S, "auth_refused") end
end

local function start_tls(S, frame, ts)
    S.tls = true
    S.phase = "tls"
    S.cmode = "tls"
    S.tls_frame, S.tls_ts = frame, ts
    S.tlsw = { c = { hdr = "", skip = 0, records = 0 }, s = { hdr = "", skip = 0, records = 0 } }
end

-- A client line inside a POP3 AUTH / IMAP AUTHENTICATE exchange: credentials, never shown;
-- only the user name is taken from LOGIN's first answer or PLAIN's response.
local function mbox_auth_line(S, text, frame)
    mbox_note_cmd(S, frame, "(AUTH data)", true)
    if S.auth_login_user_next then
        S.user = S.user or clean(b64decode(text), 100)
        S.auth_login_user_next = false
    elseif S.auth_plain_next then
        S.user = S.user or plain_user(text)
        S.auth_plain_next = false
    end
end

-- What a POP3/IMAP status reply means for the session, by the command it answers.
local POP_RULES = { login_ok = { PASS = true, APOP = true, AUTH = true },
                    login_refused = { USER = true, PASS = true, APOP = true, AUTH = true },
                    tls = "STLS", quit = "QUIT", auth_failed = "pop_auth_failed" }
local IMAP_RULES = { login_ok = { LOGIN = true, AUTHENTICATE = true },
                     login_refused = { LOGIN = true, AUTHENTICATE = true },
                     tls = "STARTTLS", quit = "LOGOUT", auth_failed = "imap_auth_failed" }

local function mbox_outcome(S, rules, ok, verb, frame, ts, shown)
    if ok then
        if rules.login_ok[verb] then auth_accepted(S) end
        if verb == rules.tls then start_tls(S, frame, ts) end
        if verb == rules.quit then S.ended_normally = true end
    elseif rules.login_refused[verb] then
        auth_refused(S, rules.auth_failed, frame, ts, verb, shown)
    elseif verb == rules.tls then
        add_anomaly(S, "starttls_refused")
    else
        add_anomaly(S, "command_refused")
    end
end

local POP_MULTI = { CAPA = true, RETR = true, TOP = true }

local function pop_command(S, line, frame, ts)
    local text = line:gsub("\r?\n$", "")
    if S.cmode == "auth" and text:find("[ :]") then S.cmode = "cmd" end
    if S.cmode == "auth" then
        mbox_auth_line(S, text, frame)
        return
    end
    local verb, arg = text:match("^%s*(%S+)%s*(.-)%s*$")
    if not verb then return end
    verb = verb:upper():sub(1, 16)
    mbox_note_cmd(S, frame, clean(verb, 16), verb == "PASS" or verb == "APOP" or (verb == "AUTH" and arg:match("^%S+%s+%S") ~= nil))
    count_cmd(S, clean(verb, 16))
    S.last_cmd_frame = frame
    if verb == "USER" then
        S.user = clean(arg, 100)
    elseif verb == "APOP" then
        S.user = clean(arg:match("^(%S+)") or "", 100)
    elseif verb == "AUTH" then
        local mech, initial = arg:match("^(%S+)%s*(%S*)")
        mech = (mech or ""):upper()
        if mech == "PLAIN" and initial ~= "" then S.user = S.user or plain_user(initial) end
        S.auth_login_user_next = mech == "LOGIN" and initial == ""
        S.auth_plain_next = mech == "PLAIN" and initial == ""
        if mech == "" then verb = "AUTH-LIST" else S.cmode = "auth" end
    elseif verb == "QUIT" then
        S.quit = true
    end
    local multi = POP_MULTI[verb] or ((verb == "LIST" or verb == "UIDL") and arg == "") or verb == "AUTH-LIST"
    push_pending(S, verb, nil, frame, ts)
    S.pending[S.qt].multi = multi
end

local function pop_response(S, line, frame, ts)
    local text = line:gsub("\r?\n$", "")
    if S.pop_multiline then
        if text == "." then S.pop_multiline = false end
        return
    end
    if text:match("^%+ ") or text == "+" then
        -- AUTH challenge: the client's next line is credentials.
        S.cmode = "auth"
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
        S.greeted, S.greet_ts = true, ts
        S.phase = "cmd"
        mbox_note_reply(S, frame, ts, status, nil)
        ann(S, frame).greeting_latency = ts - (S.syn_ts or S.first_ts)
        if status == "-ERR" then
            finding(S, "greeting_rejected", frame, ts, string.format("greeting rejected: '%s' (frame %d)", shown, frame))
        end
        return
    end
    if verb == "<greeting>" then verb, cmd = nil, nil end
    mbox_note_reply(S, frame, ts, status, cmd)
    if S.cmode == "auth" then S.cmode = "cmd" end
    if not verb then add_anomaly(S, "unsolicited_reply"); return end
    if status == "+OK" and cmd.multi then S.pop_multiline = true end
    mbox_outcome(S, POP_RULES, status == "+OK", verb, frame, ts, shown)
end

-- IMAP: "tag COMMAND ..." from the client; "* ..." untagged, "+ ..." continuation, "tag OK|NO|BAD ..." from the server.
local function imap_first_arg(rest)
    local q = rest:match('^"((\\.|[^"])*)"')
    if q then return q end
    if rest:match("^{%d+%+?}") then return "(literal)" end
    return rest:match("^(%S+)")
end

local function imap_command(S, line, frame, ts)
    local text = line:gsub("\r?\n$", "")
    local literal = text:match("{(%d+)%+?}$")
    if S.cmode == "auth" then
        mbox_auth_line(S, text, frame)
        return
    end
    local tag, verb, rest = text:match("^(%S+)%s+(%S+)%s*(.-)%s*$")
    if not tag then return end
    verb = verb:upper():sub(1, 24)
    if verb == "UID" then
        local sub = rest:match("^(%S+)")
        if sub then verb = "UID " .. sub:upper():sub(1, 12) end
    end
    local shown = clean(verb, 24)
    mbox_note_cmd(S, frame, shown, verb == "LOGIN" or (verb == "AUTHENTICATE" and rest:match("^%S+%s+%S") ~= nil))
    if verb == "LOGIN" and literal then S.cred_literal = true end
    count_cmd(S, shown)
    S.last_cmd_frame = frame
    if verb == "LOGIN" then
        S.user = clean(imap_first_arg(rest) or "", 100)
    elseif verb == "AUTHENTICATE" then
        local mech, initial = rest:match("^(%S+)%s*(%S*)")
        mech = (mech or ""):upper()
        if mech == "PLAIN" and initial ~= "" then S.user = S.user or plain_user(initial) end
        S.auth_login_user_next = mech == "LOGIN"
        S.auth_plain_next = mech == "PLAIN" and initial == ""
        S.cmode = "auth"
    elseif verb == "LOGOUT" then
        S.quit = true
    end
    S.imap_tags = S.imap_tags or {}
    S.imap_ntags = (S.imap_ntags or 0) + 1
    if S.imap_ntags < 10000 then
        S.imap_tags[tag] = { verb = verb, frame = frame, ts = ts }
    end
end

local function imap_response(S, line, frame, ts)
    local text = line:gsub("\r?\n$", "")
    local shown = clean(text, 200)
    if text:match("^%* ") then
        local word = (text:match("^%* (%u+)") or "")
        if not S.greeted and (word == "OK" or word == "PREAUTH" or word == "BYE") then
            S.greeted, S.greet_ts = true, ts
            S.phase = "cmd"
            S.midstream = false
            mbox_note_reply(S, frame, ts, word, nil)
            ann(S, frame).greeting_latency = ts - (S.syn_ts or S.first_ts)
            if word == "BYE" then
                finding(S, "greeting_rejected", frame, ts, string.format("greeting rejected: '%s' (frame %d)", shown, frame))
            end
            if word == "PREAUTH" then S.auth_ok = true end
            S.last_reply = shown
        end
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
    if S.imap_tags then S.imap_tags[tag] = nil end
    mbox_note_reply(S, frame, ts, status, cmd)
    if S.cmode == "auth" then S.cmode = "cmd" end
    if not cmd then add_anomaly(S, "unsolicited_reply"); return end
    mbox_outcome(S, IMAP_RULES, status == "OK", cmd.verb, frame, ts, shown)
end

local function mbox_bytes(S, role, s, frame, ts)
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
            if role == "c" and S.cred_literal then ann(S, frame).cred = true end
            local k = math.min(d.literal, n - pos + 1)
            d.literal = d.literal - k
            pos = pos + k
            if d.literal == 0 then d.after_literal = true end
        else
            local line, after = take_line(d, s, pos)
            if not line then return end
            pos = after
            if S.kind == "pop" then
                if role == "c" then pop_command(S, line, frame, ts) else pop_response(S, line, frame, ts) end
            else
                -- The rest of a line after a literal continues the same command or response.
                if d.after_literal then
                    d.after_literal = false
                    if role == "c" and S.cred_literal then
                        ann(S, frame).cred = true
                        S.cred_literal = line:match("{%d+%+?}\r?\n$") ~= nil
                    end
                elseif role == "c" then
                    imap_command(S, line, frame, ts)
                else
                    imap_response(S, line, frame, ts)
                end
                local lit = line:match("{(%d+)%+?}\r?\n$")
                if lit and #lit <= 12 then d.literal = tonumber(lit) end
            end
        end
    end
end

---------------------------------------------------------------------------
-- TCP: reassembly per direction, gaps, TCP-level evidence
---------------------------------------------------------------------------
local function deliver(S, role, data, frame, ts)
    if role == "c" then
        S.bytes_c = (S.bytes_c or 0) + #data
    else
        S.bytes_s = (S.bytes_s or 0) + #data
    end
    if S.implicit_tls then return end
    if S.kind ~= "smtp" then
        mbox_bytes(S, role, data, frame, ts)
    elseif role == "c" then
        client_bytes(S, data, frame, ts)
    else
        server_bytes(S, data, frame, ts)
    end
end

-- Bytes of one direction are missing from the capture.
local function gap(S, role, nbytes, frame, ts)
    add_anomaly(S, "capture_gap")
    if role == "c" then
        if S.cmode == "data" and S.D then
            S.D.gap = true
            S.D.head, S.D.len, S.D.last_cr = "", 0, false
            S.D.prev_crlf = false
            S.D.skip_line = true
            S.D.bytes = S.D.bytes + nbytes
        elseif S.cmode == "bdat" then
            local take = math.min(nbytes, S.bdat_remaining)
            S.bdat_remaining = S.bdat_remaining - take
            S.bdat_total = S.bdat_total + take
            if S.bdat_remaining <= 0 then S.cmode = "cmd"; S.phase = "cmd" end
        elseif S.cmode == "tls" then
            if S.tlsw then S.tlsw.unknown = true end
        else
            S.c.line = ""
        end
    else
        S.s_gap = true
        S.s.line = ""
        S.reply_lines = {}
    end
end

local function flush_ooo(S, role, frame, ts, force)
    local d = S[role]
    while true do
        local seg = d.ooo[d.next]
        if seg then
            d.ooo[d.next] = nil
            d.ooo_bytes = d.ooo_bytes - #seg
            d.next = (d.next + #seg) % MOD32
            deliver(S, role, seg, frame, ts)
        elseif force and d.ooo_bytes > 0 then
            -- Skip to the lowest buffered sequence number: the bytes in between are lost.
            local best, bestd = nil, nil
            for sq, _ in pairs(d.ooo) do
                local dd = seqdiff(sq, d.next)
                if dd > 0 and (not bestd or dd < bestd) then best, bestd = sq, dd end
                if dd <= 0 then d.ooo[sq] = nil end
            end
            if not best then d.ooo_bytes = 0; return end
            gap(S, role, bestd, frame, ts)
            d.next = best
        else
            return
        end
    end
end

local function tcp_segment(S, role, seq, payload, tcplen, frame, ts)
    local d = S[role]
    if d.next == nil then
        d.next = seq
    end
    local off = seqdiff(seq, d.next)
    if tcplen > #payload then
        -- Snaplen cut: the missing bytes are a gap.
        add_anomaly(S, "truncated_packets")
        S.truncated = true
    end
    if off < 0 then
        if off + tcplen <= 0 then
            d.retrans_bytes = (d.retrans_bytes or 0) + tcplen
            return "retrans"
        end
        payload = payload:sub(1 - off)
        tcplen = tcplen + off
        seq = d.next
        off = 0
    end
    if off > 0 then
        if d.ooo_bytes + #payload > P.max_buffer then
            flush_ooo(S, role, frame, ts, true)
            off = seqdiff(seq, d.next)
            if off > 0 then
                gap(S, role, off, frame, ts)
                d.next = seq
            end
        else
            if not d.ooo[seq] or #d.ooo[seq] < #payload then
                d.ooo_bytes = d.ooo_bytes + #payload - (d.ooo[seq] and #d.ooo[seq] or 0)
                d.ooo[seq] = payload
            end
            add_anomaly(S, "out_of_order")
            return "ooo"
        end
    end
    if #payload < tcplen then
        deliver(S, role, payload, frame, ts)
        d.next = (seq + #payload) % MOD32
        gap(S, role, tcplen - #payload, frame, ts)
        d.next = (seq + tcplen) % MOD32
    else
        d.next = (seq + tcplen) % MOD32
        deliver(S, role, payload, frame, ts)
    end
    flush_ooo(S, role, frame, ts, false)
    return "new"
end

-- Full-size segments retransmitted with no ACK progress while small ones pass.
local function mtu_check(S, role, seq, tcplen, kind, frame, ts)
    local d = S[role]
    if tcplen < P.mtu_min_size then return end
    if kind == "retrans" and d.big_seq == seq then
        d.big_count = d.big_count + 1
        if d.big_count >= P.mtu_retrans then
            local progressed = d.maxack and seqdiff(d.maxack, (seq + tcplen) % MOD32) >= 0
            if not progressed and S.greeted then
                finding(S, "mtu_blackhole", d.big_frame, d.big_ts,
                    string.format("%d-byte segment from the %s (first sent in frame %d) retransmitted %d times with no ACK progress while smaller segments got through (frame %d): path MTU black hole",
                        tcplen, role == "c" and "client" or "server", d.big_frame, d.big_count, frame))
            end
        end
    elseif kind == "new" or (kind == "ooo") then
        if not d.big_seq or (d.maxack and seqdiff(d.maxack, d.big_seq) > 0) then
            d.big_seq, d.big_count, d.big_frame, d.big_ts = seq, 0, frame, ts
        end
    end
end

local function close_data_phase(S, why, frame, ts, by_role)
    local D = S.D
    if not D then return end
    if D.cand then
        local c = D.last_cand or D.cand
        finding(S, "bare_lf_terminator", c.frame, c.ts,
            string.format("message data ended by %s in frame %d, not <CRLF>.<CRLF>; no reply to it before the %s (frame %d)",
                c.seqname, c.frame, why, frame))
        txn_cause(S, "bare_lf_terminator")
        smuggling_check(S, D, frame)
    end
    local since = secs(ts - D.start_ts)
    if D.gap and not D.cand then
        add_anomaly(S, "capture_gap")
        data_end(S, frame, ts, nil, nil)
        return
    end
    if why == "RST" then
        finding(S, "data_reset", frame, ts,
            string.format("RST from the %s in DATA after %d bytes, %s after 354 (frame %d)",
                by_role == "c" and "client" or "server", D.bytes, since, frame))
        txn_cause(S, "data_reset")
    elseif why == "server FIN" then
        finding(S, "data_timeout", frame, ts,
            string.format("354 at frame %d, %d bytes of data, no <CRLF>.<CRLF>; the server closed the connection %s after the last data (frame %d)",
                D.start_frame, D.bytes, secs(ts - D.last_ts), frame))
        txn_cause(S, "data_timeout")
    else
        finding(S, "data_not_terminated", frame, ts,
            string.format("354 at frame %d, %d bytes of data, no <CRLF>.<CRLF>; %s %s after 354 (frame %d)",
                D.start_frame, D.bytes, why, since, frame))
        txn_cause(S, "data_not_terminated")
    end
    data_end(S, frame, ts, D.cand and (D.last_cand or D.cand).kind or "none", false)
end

---------------------------------------------------------------------------
-- Session end and verdict
---------------------------------------------------------------------------
local function finish_session(S, frame, ts, at_capture_end)
    if S.done then return end
    S.done = true
    S.cur_frame = frame
    local cli_only = S.c.pkts > 0 and S.s.pkts == 0
    local srv_only = S.s.pkts > 0 and S.c.pkts == 0
    -- One-sided captures: the replies are not there, so infer the DATA phase from the client's DATA.
    if cli_only and S.cmode == "hold" and #S.held > 0 then
        local held = S.held
        S.held, S.held_bytes = {}, 0
        local first = held[1]
        data_start(S, first.frame, first.ts, true)
        for _, h in ipairs(held) do
            S.cur_frame = h.frame
            client_bytes(S, h.data, h.frame, h.ts)
        end
    end
    S.cur_frame = frame
    if S.syns > 0 and not S.synack and not S.established then
        if S.refused then return end
        finding(S, "no_response", S.syn_frame, S.syn_ts,
            string.format("%d SYN%s from %s to %s:%d over %s, no SYN-ACK (frames %d-%d)",
                S.syns, S.syns > 1 and "s" or "", S.cli or "?", S.srv or "?", S.sport or 0,
                secs((S.last_syn_ts or S.syn_ts) - S.syn_ts), S.syn_frame, S.last_syn_frame or S.syn_frame))
        return
    end
    if S.D then
        if cli_only then add_anomaly(S, "one_sided") end
        if at_capture_end then
            close_data_phase(S, "capture ended with the server still waiting", frame, ts, nil)
        else
            close_data_phase(S, "the connection closed", frame, ts, nil)
        end
    end
    if S.cmode == "bdat" and S.bdat_remaining > 0 and not cli_only then
        finding(S, "bdat_incomplete", frame, ts,
            string.format("BDAT %d announced (frame %d), %d bytes missing when the session ended (frame %d)",
                S.bdat_announced or 0, S.bdat_frame or 0, S.bdat_remaining, frame))
        txn_cause(S, "bdat_incomplete")
    elseif S.txn and S.txn.bdat and not S.txn.bdat_last and not S.txn.cause and not cli_only then
        finding(S, "bdat_incomplete", frame, ts,
            string.format("BDAT chunks sent but no BDAT LAST before the session ended (frame %d)", frame))
        txn_cause(S, "bdat_incomplete")
    end
    if S.tlsw and not S.tlsw.done then
        local W = S.tlsw
        if W.failed then
            finding(S, "tls_failed", W.failed.frame, W.failed.ts,
                string.format("STARTTLS accepted (frame %d), then %s before the TLS handshake completed", S.tls_frame, W.failed.why))
        elseif not W.unknown and not srv_only and not cli_only then
            local why = at_capture_end and "the capture ended" or "the connection closed"
            if (W.c.records == 0 and W.s.records == 0) or not at_capture_end then
                finding(S, "tls_failed", frame, ts,
                    string.format("STARTTLS accepted (frame %d), then %s before the TLS handshake completed (frame %d)", S.tls_frame, why, frame))
            end
        end
    end
    if S.pregreet_cand and (S.bytes_s or 0) > 0 then pregreet_confirm(S, frame) end
    if S.established and not S.greeted and not S.midstream and not S.implicit_tls and S.s.pkts > 0
        and not S.truncated and not S.s_gap then
        local since = S.syn_ts or S.first_ts
        finding(S, "no_banner", frame, ts,
            string.format("TCP established, no greeting from the server in %s; %s (frame %d)",
                secs(ts - since), at_capture_end and "the capture ended" or "the connection closed", frame))
    end
    if cli_only or srv_only then
        add_anomaly(S, "one_sided")
    end
    if S.midstream then add_anomaly(S, "midstream") end
    if at_capture_end and not S.c.fin and not S.s.fin then add_anomaly(S, "open_at_capture_end") end
end

local function verdict(S)
    local key = #S.findings .. ":" .. #S.anomalies .. ":" .. S.messages .. ":" .. #S.txns .. ":" .. tostring(S.D ~= nil) .. tostring(S.done)
    if S.verdict_cache and S.verdict_cache.key == key then
        return S.verdict_cache
    end
    local best
    for _, f in ipairs(S.findings) do
        if not best or f.frame < best.frame or (f.frame == best.frame and f.seq < best.seq) then best = f end
    end
    local v = {}
    if best then
        v.cause, v.detail = best.code, best.detail
    elseif S.anomaly_set.one_sided or S.anomaly_set.midstream or S.anomaly_set.truncated_packets
        or (S.anomaly_set.capture_gap and S.gap_unjudged) then
        v.cause = "incomplete"
        local why = {}
        if S.anomaly_set.one_sided then why[#why + 1] = "only one direction of the connection is in the capture" end
        if S.anomaly_set.midstream then why[#why + 1] = "the capture starts in the middle of the session (no SYN, no greeting)" end
        if S.anomaly_set.truncated_packets then why[#why + 1] = "packets are cut short by the capture's snap length" end
        v.detail = table.concat(why, "; ")
    else
        v.cause = "ok"
        if S.kind == "dns" then
            v.detail = S.ok_detail or "no failure found"
        elseif S.kind == "pop" or S.kind == "imap" then
            v.detail = (S.auth_ok and ("logged in" .. (S.user and (" as " .. S.user) or "")) or "no failure found")
                .. (S.implicit_tls and "; implicit TLS, transport checked only" or (S.tls and "; STARTTLS" or ""))
        elseif S.messages > 0 then
            v.detail = string.format("%d message%s accepted", S.messages, S.messages > 1 and "s" or "")
        else
            v.detail = "no failure found"
        end
    end
    if v.cause == "incomplete" then add_anomaly(S, "incomplete") end
    -- data_terminated over the session: false if any DATA phase ended otherwise, true if all ended properly.
    local dt
    for _, t in ipairs(S.txns) do
        if t.had_data then
            if t.terminated == false then dt = false
            elseif t.terminated == true and dt == nil then dt = true end
        end
    end
    if S.D then dt = false end
    v.data_terminated = dt
    local term
    for _, t in ipairs(S.txns) do
        if t.terminator then
            if term == nil or (term == "crlf" and t.terminator ~= "crlf") then term = t.terminator end
        end
    end
    v.terminator = term
    v.key = key
    S.verdict_cache = v
    return v
end

---------------------------------------------------------------------------
-- Per-frame entry
---------------------------------------------------------------------------
-- The frame's network source and destination (the innermost IP header's).
local function addr_pair(pinfo)
    local src, dst = pinfo.net_src, pinfo.net_dst
    return src and tostring(src) or "?", dst and tostring(dst) or "?"
end

-- The frame's tcp.stream, tcp.len and the tcp.len field itself (it sits at the TCP header's
-- first byte); TCP quoted inside an ICMP error (and a malformed header) has no tcp.len: it is
-- not a segment of the session.
local function session_for_frame()
    local st = f_stream()
    if not st then return nil end
    local tl = f_tcplen()
    if not tl then return nil end
    return st.value, tl.value, tl
end

-- Batch mode: a connection attempt that got nothing back (SYNs only, retransmitted) for
-- SYN_IDLE seconds of capture time has ended (a client gives up in about two minutes): it
-- is decided and written then, not kept until the end of the capture.
local SYN_IDLE = 300
-- Attempts in the order they were queued, with the capture time each was queued at; an
-- attempt answered or written since leaves false in its slot (no table per attempt).
local syn_wait, syn_wait_ts, syn_head, syn_tail = {}, {}, 1, 0

local function syn_wait_push(S)
    syn_tail = syn_tail + 1
    syn_wait[syn_tail], syn_wait_ts[syn_tail] = S, S.last_ts
    S.syn_slot = syn_tail
end

-- The attempt got an answer or was written out: the queue lets go of it.
local function syn_wait_release(S)
    if S.syn_slot then syn_wait[S.syn_slot], S.syn_slot = false, nil end
end

local function syn_only(S)
    return S.syns > 0 and not S.synack and not S.established and not S.done and S.s.pkts == 0
        and S.c.pkts == S.syns
end

local function expire_syn_only(ts)
    while syn_head <= syn_tail and ts - syn_wait_ts[syn_head] > SYN_IDLE do
        local S = syn_wait[syn_head]
        syn_wait[syn_head], syn_wait_ts[syn_head] = nil, nil
        syn_head = syn_head + 1
        if S then
            S.syn_slot = nil
            if sessions[S.key] == S and syn_only(S) then
                if ts - S.last_ts > SYN_IDLE then
                    finish_session(S, S.last_frame, S.last_ts, false)
                    enqueue_done(S, ts)
                else
                    syn_wait_push(S)  -- a SYN came since: wait again from it
                end
            end
        end
    end
end

local older_for_next = nil
local nonmail = {}  -- tcp.stream -> frames seen without any mail protocol

local function source_of(fi) return fi.source end

-- Flags, raw sequence and acknowledgement numbers, the bytes holding the segment and
-- where its payload starts in them. The tcp.len field (fi) locates the header: in the frame's
-- own bytes, or else (IP reassembly) in its data source; its ports must be the frame's.
-- Reading bytes, not fields, spares Wireshark building those fields on every frame.
local function tcp_header(tvb, fi, sport, dport)
    local off = fi.offset
    local src = tvb
    for _ = 1, 2 do
        if src and off >= 0 and off + 20 <= src:len() then
            local p1, p2, p3, p4, s1, s2, s3, s4, a1, a2, a3, a4, hl, fl = byte(src:raw(off, 20), 1, 14)
            if p1 * 256 + p2 == sport and p3 * 256 + p4 == dport then
                return (hl % 16) * 256 + fl, ((s1 * 256 + s2) * 256 + s3) * 256 + s4,
                    ((a1 * 256 + a2) * 256 + a3) * 256 + a4, off + math.floor(hl / 16) * 4, src
            end
        end
        local ok, other = pcall(source_of, fi)
        if not ok or not other then break end
        src = other
    end
    return 0, 0, 0, nil, nil  -- no bytes hold the header: no flags, no payload
end

-- The segment's captured payload bytes (at most n).
local function tcp_payload(src, payload_off, n)
    if not payload_off then return "" end
    n = math.min(n, src:len() - payload_off)
    return n > 0 and src:raw(payload_off, n) or ""
end

local function process(tvb, pinfo, stream, tcplen, len_fi, frame, ts, sport, dport)
    local S = sessions[stream]
    if not S and not (mail_ports[dport] or mail_ports[sport] or pop_ports[dport] or pop_ports[sport]
                      or imap_ports[dport] or imap_ports[sport]) then
        -- Not a mail port: only a conversation Wireshark decodes as SMTP/POP3/IMAP counts.
        local n = nonmail[stream] or 0
        if n > 64 then return nil end
        if not (f_smtp() or f_pop() or f_imap()) then
            nonmail[stream] = n + 1
            return nil
        end
    end
    local flags, seq_raw, ack_raw, payload_off, segment_bytes = tcp_header(tvb, len_fi, sport, dport)
    local syn, ack, fin, rst = flags % 4 >= 2, flags % 32 >= 16, flags % 2 == 1, flags % 8 >= 4
    if S and syn and not ack and (S.done or S.refused) then
        -- A new connection on the same addresses and ports (Wireshark 4.0 keeps its
        -- tcp.stream, 4.4+ starts a new one): a new session either way.
        S.generation = S.generation or 0
        S.key = stream .. "#" .. S.generation
        sessions[S.key] = S
        local older = S
        S = nil
        sessions[stream] = nil
        older_for_next = older
    end
    if not S and tombstones[stream] and not (syn and not ack) then
        return nil  -- trailing packets of a session already written out
    end
    if not S then
        local kind = (mail_ports[dport] or mail_ports[sport]) and "smtp"
            or (pop_ports[dport] or pop_ports[sport]) and "pop"
            or (imap_ports[dport] or imap_ports[sport]) and "imap"
        if not kind then
            kind = (f_smtp() and "smtp") or (f_pop() and "pop") or (f_imap() and "imap")
            if not kind then return nil end
        end
        local server_ports = kind == "smtp" and mail_ports or (kind == "pop" and pop_ports or imap_ports)
        S = new_session(stream, frame, ts)
        S.kind = kind
        S.key = stream
        tombstones[stream] = nil
        if older_for_next then
            S.older, S.generation = older_for_next, older_for_next.generation + 1
            older_for_next = nil
        end
        local src, dst = addr_pair(pinfo)
        local client_is_src
        if syn and not ack then client_is_src = true
        elseif syn and ack then client_is_src = false
        elseif server_ports[dport] and not server_ports[sport] then client_is_src = true
        elseif server_ports[sport] and not server_ports[dport] then client_is_src = false
        else
            local head = tcp_payload(segment_bytes, payload_off, math.min(4, tcplen))
            client_is_src = not (head:match("^%d%d%d") or head:match("^[%+%-][OE]") or head:match("^%* "))
        end
        if client_is_src then
            S.cli, S.cport, S.srv, S.sport = src, sport, dst, dport
        else
            S.cli, S.cport, S.srv, S.sport = dst, dport, src, sport
        end
        S.midstream = not syn
        S.implicit_tls = tls_ports[S.sport] and true or false
        if S.implicit_tls then S.phase = "tls"; S.tls = true end
        sessions[stream] = S
    end
    S.view = nil
    S.cur_frame, S.cur_ts = frame, ts
    S.last_frame, S.last_ts = frame, ts
    local role = (sport == S.cport and sport ~= S.sport) and "c" or "s"
    if sport == S.cport and sport == S.sport then
        local src = addr_pair(pinfo)
        role = (src == S.cli) and "c" or "s"
    end
    local d = S[role]
    local peer = S[role == "c" and "s" or "c"]
    d.pkts = d.pkts + 1
    local seq = seq_raw

    if ack then
        local av = ack_raw
        if not peer.maxack or seqdiff(av, peer.maxack) > 0 then
            peer.maxack = av
        end
        -- This side acknowledged peer bytes the capture never showed: a capture gap.
        if peer.next and seqdiff(peer.maxack, peer.next) > 0 and not S.done then
            local prole = role == "c" and "s" or "c"
            if peer.ooo_bytes > 0 then flush_ooo(S, prole, frame, ts, true) end
            local missing = seqdiff(peer.maxack, peer.next)
            if missing > 0 and missing < 1073741824 and not (peer.fin and missing == 1) then
                gap(S, prole, missing, frame, ts)
                peer.next = peer.maxack
            end
        end
    end
    if syn then
        if not ack then
            S.syns = S.syns + 1
            -- A retransmitted SYN: the attempt may go unanswered (a first SYN is answered in
            -- milliseconds or retransmitted within a few seconds).
            if batch and S.syns == 2 and not S.syn_slot and syn_only(S) then syn_wait_push(S) end
            S.syn_frame = S.syn_frame or frame
            S.syn_ts = S.syn_ts or ts
            S.last_syn_frame, S.last_syn_ts = frame, ts
            if S.done then return S end
        else
            S.synack = true
            S.established = true
            syn_wait_release(S)
        end
        d.next = (seq + 1) % MOD32
        if not S.greeted and S.phase == "greeting" and not S.pending[S.qh] and not S.implicit_tls then
            push_pending(S, "<greeting>", nil, frame, ts)
        end
        return S
    end
    if rst then
        d.rst = true
        if S.syns > 0 and not S.synack and role == "s" and not S.established then
            S.refused = true
            finding(S, "connection_refused", frame, ts,
                string.format("SYN from %s to %s:%d answered by RST (frame %d): nothing listens on that port, or a firewall rejects",
                    S.cli or "?", S.srv or "?", S.sport or 0, frame))
            S.done = true
            return S
        end
        if S.D then
            close_data_phase(S, "RST", frame, ts, role)
        elseif not S.ended_normally and not S.quit and not S.c.fin and not S.s.fin and not S.done then
            finding(S, "reset", frame, ts,
                string.format("RST from the %s in state %s, before the session ended normally (frame %d)",
                    role == "c" and "client" or "server", S.phase, frame))
        else
            add_anomaly(S, "rst_after_close")
        end
        if S.tlsw and not S.tlsw.done and not S.tlsw.failed and not S.c.fin and not S.s.fin then
            S.tlsw.failed = { frame = frame, ts = ts, why = string.format("an RST from the %s (frame %d)", role == "c" and "client" or "server", frame) }
        end
        if not S.done then finish_session(S, frame, ts, false) end
        return S
    end
    if not S.established and ack then
        S.established = true
        syn_wait_release(S)
    end

    if tcplen > 0 then
        local payload = tcp_payload(segment_bytes, payload_off, tcplen)
        d.bytes = d.bytes + tcplen
        local kind = tcp_segment(S, role, seq, payload, tcplen, frame, ts)
        mtu_check(S, role, seq, tcplen, kind, frame, ts)
        local a = rawget(S.ann, frame)
        if a then a.state = S.phase end
    end
    if fin then
        if not d.fin then
            d.fin = true
            d.fin_seq = seq
            if d.next and seqdiff((seq + tcplen) % MOD32, d.next) == 0 then d.next = (d.next + 1) % MOD32 end
            if S.D then
                if role == "c" then
                    close_data_phase(S, "the client closed the connection (FIN)", frame, ts, role)
                else
                    close_data_phase(S, "server FIN", frame, ts, role)
                end
            end
            if S.tlsw and not S.tlsw.done and not S.tlsw.failed and S.tlsw.c.records == 0 then
                S.tlsw.failed = { frame = frame, ts = ts,
                    why = string.format("the %s closed the connection (frame %d)", role == "c" and "client" or "server", frame) }
            end
        end
        if S.c.fin and S.s.fin then
            finish_session(S, frame, ts, false)
        end
    end
    return S
end

---------------------------------------------------------------------------
-- DNS lookups for mail: MX queries, and A/AAAA queries of the exchangers
---------------------------------------------------------------------------
local f_dns_id = Field.new("dns.id")
local f_dns_response = Field.new("dns.flags.response")
local f_dns_rcode = Field.new("dns.flags.rcode")
local f_dns_qname = Field.new("dns.qry.name")
local f_dns_qtype = Field.new("dns.qry.type")
local f_dns_count_answers = Field.new("dns.count.answers")
local f_dns_resp_type = Field.new("dns.resp.type")
local f_dns_mx = Field.new("dns.mx.mail_exchange")
local f_dns_a = Field.new("dns.a")
local f_dns_aaaa = Field.new("dns.aaaa")
local f_udp_stream = Field.new("udp.stream")

local QTYPES = { [1] = "A", [15] = "MX", [28] = "AAAA" }
local RCODES = { [0] = "NOERROR", [1] = "FORMERR", [2] = "SERVFAIL", [3] = "NXDOMAIN", [4] = "NOTIMP", [5] = "REFUSED" }
local RCODE_CAUSE = { [2] = "dns_servfail", [3] = "dns_nxdomain", [5] = "dns_refused" }

local exchangers = {}   -- names learned from MX answers: their A/AAAA lookups are mail lookups too
local dns_frames = {}   -- frame -> lookup
local dns_waiting = {}  -- unanswered lookups in query order, for one-pass expiry
local dns_wait_head, dns_wait_tail = 1, 0
local dns_by_tx, dns_open = {}, {}  -- query ports+ID -> lookup; client+server+name+type -> latest lookup
local DNS_WRITTEN = {}  -- dns_by_tx's mark for a lookup batch mode has written out: its late packets are dropped
local capture_last_frame, capture_last_ts = 0, 0

local function values(f)
    local out = {}
    for _, fi in ipairs({ f() }) do out[#out + 1] = fi.value end
    return out
end

local function dns_process(pinfo, frame, ts)
    local idf = f_dns_id()
    if not idf then return nil end
    local qn, qt = f_dns_qname(), f_dns_qtype()
    if not qn or not qt then return nil end
    local name = tostring(qn.value):lower():sub(1, 255)
    local qtype = qt.value
    local is_resp = f_dns_response() and f_dns_response().value
    if is_resp and qtype == 15 then
        for _, mx in ipairs(values(f_dns_mx)) do exchangers[tostring(mx):lower()] = true end
    end
    if qtype ~= 15 and not ((qtype == 1 or qtype == 28) and exchangers[name]) then return nil end
    local src, dst = addr_pair(pinfo)
    local sp, dp = pinfo.src_port, pinfo.dst_port
    local cli, cport, srv, sport
    if is_resp then cli, cport, srv, sport = dst, dp, src, sp else cli, cport, srv, sport = src, sp, dst, dp end
    -- A response belongs to the query with its ports and ID; a query repeated (new port or ID,
    -- as resolvers retry) within the timeout of an unanswered one is a retransmission.
    local txkey = table.concat({ "dnsq", cli, cport, srv, sport, idf.value, name, qtype }, "|")
    local lkey = table.concat({ "dnsl", cli, srv, name, qtype }, "|")
    local L = dns_by_tx[txkey]
    if L == DNS_WRITTEN then return nil end
    if not L and not is_resp then
        local prev = dns_open[lkey]
        if prev and not prev.answered and ts - (prev.last_query_ts or ts) <= P.dns_timeout then L = prev end
    end
    local key = txkey
    if not L then
        local us = f_udp_stream()
        local st = us and us.value or (f_stream() and f_stream().value) or 0
        L = new_session(st, frame, ts)
        L.kind = "dns"
        L.cli, L.cport, L.srv, L.sport = cli, cport, srv, sport
        L.query, L.qtype, L.queries, L.answers = clean(name, 255), qtype, 0, {}
        L.key, L.lkey, L.txkeys = key, lkey, {}
        sessions[key] = L
    end
    if dns_by_tx[txkey] ~= L then L.txkeys[#L.txkeys + 1] = txkey end
    dns_by_tx[txkey] = L
    if not is_resp then dns_open[lkey] = L end
    L.view = nil
    L.cur_frame, L.cur_ts = frame, ts
    L.last_frame, L.last_ts = frame, ts
    if not batch then dns_frames[frame] = L end
    local a = ann(L, frame)
    if not is_resp then
        L.queries = L.queries + 1
        a.role = "c"
        if L.queries == 1 then
            L.first_query_ts = ts
            dns_wait_tail = dns_wait_tail + 1
            dns_waiting[dns_wait_tail] = L
        end
        L.last_query_ts, L.last_query_frame = ts, frame
    elseif not L.answered then
        a.role = "s"
        L.answered = true
        if batch then enqueue_done(L, ts) end
        local rcode = f_dns_rcode() and f_dns_rcode().value or 0
        L.rcode = RCODES[rcode] or tostring(rcode)
        local nans = f_dns_count_answers() and f_dns_count_answers().value or 0
        local types = values(f_dns_resp_type)
        local typed = 0
        for i = 1, math.min(nans, #types) do
            if types[i] == qtype then typed = typed + 1 end
        end
        local shown = qtype == 15 and values(f_dns_mx) or (qtype == 1 and values(f_dns_a) or values(f_dns_aaaa))
        for i = 1, math.min(#shown, 20) do L.answers[#L.answers + 1] = clean(tostring(shown[i]), 255) end
        if L.first_query_ts then
            L.latency = ts - L.first_query_ts
            a.latency = L.latency
        end
        local q = string.format("%s %s", QTYPES[qtype] or qtype, L.query)
        local cause = RCODE_CAUSE[rcode] or (rcode ~= 0 and "dns_servfail") or (typed == 0 and "dns_no_answer") or nil
        if cause then
            finding(L, cause, frame, ts, string.format("%s answered %s with %d %s record%s by %s (frame %d)",
                q, L.rcode, typed, QTYPES[qtype] or "", typed == 1 and "" or "s", L.srv or "?", frame))
        else
            L.ok_detail = string.format("%s answered with %d record%s in %.3f s (frame %d)", q, typed,
                typed == 1 and "" or "s", L.latency or 0, frame)
        end
    else
        add_anomaly(L, "duplicate_response")
    end
    return L
end

-- Batch mode wrote the lookup: its index entries go (late packets of it are dropped).
local function dns_forget(L)
    for _, k in ipairs(L.txkeys) do
        if dns_by_tx[k] == L then dns_by_tx[k] = DNS_WRITTEN end
    end
    if dns_open[L.lkey] == L then dns_open[L.lkey] = nil end
end

local function dns_unanswered(L, frame, ts, why)
    finding(L, "dns_no_response", L.first_frame, L.first_query_ts or L.first_ts,
        string.format("%s %s to %s sent %d time%s (frames %d-%d), no answer; %s (frame %d)",
            QTYPES[L.qtype] or L.qtype, L.query, L.srv or "?", L.queries, L.queries == 1 and "" or "s",
            L.first_frame, L.last_query_frame or L.first_frame, why, frame))
    L.decided[frame] = true
end

-- One pass: a lookup still unanswered dns_timeout seconds after its last query is decided on the current frame.
local function dns_expire(frame, ts)
    local limit = P.dns_timeout
    local out
    while dns_waiting[dns_wait_head] do
        local L = dns_waiting[dns_wait_head]
        if L.answered then
            dns_waiting[dns_wait_head] = nil
            dns_wait_head = dns_wait_head + 1
        elseif ts - (L.last_query_ts or ts) > limit then
            dns_waiting[dns_wait_head] = nil
            dns_wait_head = dns_wait_head + 1
            L.expired_at = frame
            dns_unanswered(L, frame, ts, string.format("%d s passed", limit))
            if batch then enqueue_done(L, ts) end
            out = out or {}
            out[#out + 1] = L
        else
            return out
        end
    end
    return out
end

---------------------------------------------------------------------------
-- Rendering
---------------------------------------------------------------------------
-- The verdict as (field, value) pairs handed to emit: on every frame in two-pass mode, and in the summary file.
local function each_verdict_item(S, v, emit)
    if S.kind == "smtp" then
        if v.data_terminated ~= nil then emit(F.data_terminated, v.data_terminated) end
        emit(F.smtp_cause, v.cause)
    end
    emit(F.cause, v.cause)
    for _, code in ipairs(S.anomalies) do emit(F.anomalies, code) end
    emit(F.detail, v.detail or "")
end

-- Summary fields of type uint64: plain Lua numbers until they reach the tree.
local U64_FIELDS = { [F.bytes_client] = true, [F.bytes_server] = true, [F.txn_bytes] = true }

local function generated_adder(t)
    return function(f, x)
        if U64_FIELDS[f] then x = u64(x) end
        t:add(f, x):set_generated()
    end
end

local function add_verdict(S, t, v, frame)
    each_verdict_item(S, v, generated_adder(t))
end

local function render_frame_annotations(S, t, a)
    if a.state then t:add(F.state, a.state) end
    if a.cmds then for _, c in ipairs(a.cmds) do t:add(F.command, c) end end
    if a.replies then
        for _, r in ipairs(a.replies) do
            if r.code then t:add(F.reply_code, r.code) end
            if r.to then t:add(F.reply_to, clean(r.to, 32)) end
            if r.to_frame then t:add(F.reply_to_frame, r.to_frame) end
            if r.latency then t:add(F.reply_latency, r.latency) end
        end
    end
    if a.greeting_latency then t:add(F.greeting_latency, a.greeting_latency) end
    if a.status then for _, x in ipairs(a.status) do t:add(F.status, x) end end
    if a.latency then t:add(F.dns_latency, a.latency) end
    if a.terminator then t:add(F.terminator, a.terminator) end
    if a.smuggling then t:add(F.smuggling, true) end
    if a.cred then t:add(F.credentials, true) end
    if a.data_bytes then t:add(F.data_bytes, u64(a.data_bytes)) end
    if a.data_duration then t:add(F.data_duration, a.data_duration) end
    if a.final_latency then t:add(F.final_latency, a.final_latency) end
end

-- A session's summary as (field, value) pairs handed to add; transaction values repeat once per transaction.
local function each_summary_item(S, v, terminator, add)
    add(F.session_end, true)
    if terminator then add(F.terminator, terminator) end
    if S.anomaly_set.smuggling_suspect then add(F.smuggling, true) end
    add(F.first_frame, S.first_frame)
    add(F.last_frame, S.last_frame)
    add(F.start, S.start_str or string.format("%.6f", S.first_ts))
    add(F.duration, S.last_ts - S.first_ts)
    add(F.client, S.cli or "")
    add(F.client_port, S.cport or 0)
    add(F.server, S.srv or "")
    add(F.server_port, S.sport or 0)
    if S.helo then add(F.helo, S.helo) end
    add(F.messages, S.messages)
    if S.last_reply then add(F.last_reply, S.last_reply) end
    add(F.tls, S.tls and true or false)
    add(F.bytes_client, S.bytes_c or 0)
    add(F.bytes_server, S.bytes_s or 0)
    if S.kind == "pop" or S.kind == "imap" then
        if S.user then add(F.mbox_user, S.user) end
        local parts = {}
        for _, verb in ipairs(S.cmd_order or {}) do parts[#parts + 1] = verb .. "=" .. S.cmd_counts[verb] end
        add(F.mbox_commands, table.concat(parts, ","))
    elseif S.kind == "dns" then
        add(F.dns_query, S.query or "")
        add(F.dns_qtype, QTYPES[S.qtype] or tostring(S.qtype))
        add(F.dns_rcode, S.rcode or "")
        for _, x in ipairs(S.answers or {}) do add(F.dns_answers, x) end
        if S.latency then add(F.dns_latency, S.latency) end
        add(F.dns_queries, S.queries or 0)
    end
    for _, x in ipairs(S.txns) do
        if x.activity then
            add(F.txn_depth, x.depth)
            add(F.txn_mailfrom, clean(x.mailfrom or "", 200))
            add(F.txn_rcptto, table.concat(x.rcpt, ","))
            add(F.txn_last_reply, x.last_reply or "")
            add(F.txn_terminated, x.had_data and (x.terminated == true and "true" or (x.terminated == false and "false" or "")) or "")
            add(F.txn_bytes, x.bytes or 0)
            add(F.txn_cause, x.cause or "ok")
            add(F.txn_first_frame, x.first_frame)
            add(F.txn_last_frame, x.last_frame)
            add(F.txn_start, x.start_str or S.start_str or string.format("%.6f", x.start or S.first_ts))
            add(F.txn_tls, x.tls and true or false)
        end
    end
end

local function render_summary(S, t, v)
    local a = S.ann[S.last_frame]
    local term = v.terminator
    if a and a.terminator then term = nil end  -- the frame already carries its own
    each_summary_item(S, v, term, generated_adder(t))
end

---------------------------------------------------------------------------
-- Summary file (batch mode): one line per conversation, written as sessions
-- end (after a linger time for their trailing packets) and at the end of the capture.
---------------------------------------------------------------------------

local function cell(x)
    if x == true then return "1" elseif x == false then return "0" end
    x = tostring(x)
    if not x:find("[%z\1-\31]") then return x end
    return (x:gsub("[%z\1-\31]", " "))
end

-- Opens the summary file and writes its header (every summary field's name).
local function open_summary()
    summary_out = io.open(p.prefs.summary_file, "w")
    if not summary_out then summary_failed = true; return false end
    local names, seen = {}, {}
    for _, f in ipairs(field_list) do
        local n = ABBR[f]
        if n and not seen[n] then seen[n] = true; names[#names + 1] = n end
    end
    SUMMARY_HEADER = names
    summary_out:write(table.concat(names, "\t"), "\n")
    return true
end

-- One summary line's cells by column name (reused: a line is written per conversation).
local summary_cols, summary_line = {}, {}
local function put_summary(f, x)
    local n = ABBR[f]
    if not n then return end
    local c = U64_FIELDS[f] and string.format("%.0f", math.floor(x)) or cell(x)
    local prev = summary_cols[n]
    if prev then summary_cols[n] = prev .. "\31" .. c else summary_cols[n] = c end
end

local function write_summary(S)
    if summary_failed then return end
    if not summary_out and not open_summary() then return end
    local v = verdict(S)
    local cols, line = summary_cols, summary_line
    put_summary(F.proto, S.kind or "smtp")
    put_summary(F.stream, S.stream)
    each_verdict_item(S, v, put_summary)
    each_summary_item(S, v, v.terminator, put_summary)
    for i, n in ipairs(SUMMARY_HEADER) do
        line[i] = cols[n] or ""
        cols[n] = nil
    end
    for k in pairs(cols) do cols[k] = nil end
    summary_out:write(table.concat(line, "\t"), "\n")
end

-- Keep an ended session for its trailing packets for 60 s of capture time, but never more
-- than 1000 ended sessions at once (dense captures cover few seconds).
local function flush_due(e, ts)
    return ts - e.ts >= 60 or done_tail - done_head >= 1000
end

-- Sessions due (or all) are written and forgotten, oldest first.
local function flush_done(ts, all)
    while done_fifo[done_head] do
        local e = done_fifo[done_head]
        if not all and not flush_due(e, ts) then return end
        done_fifo[done_head] = nil
        done_head = done_head + 1
        local S = e.S
        if sessions[S.key] == S then
            write_summary(S)
            sessions[S.key] = nil
            if type(S.key) == "number" then tombstones[S.key] = true end
            if S.kind == "dns" then dns_forget(S) end
            syn_wait_release(S)
        end
    end
end

local function add_experts(S, t, frame, only_decided_now)
    for _, f in ipairs(S.findings) do
        local show
        if only_decided_now then show = f.decided_at == frame else show = f.frame == frame end
        if show and EXPERTS[f.code] then
            t:add_proto_expert_info(EXPERTS[f.code], f.code .. ": " .. f.detail)
        end
    end
end

-- The capture is (so far) complete: open sessions get their end-of-capture verdict
-- on a view, so that more first-pass frames can still be added to the originals.
local finalized_at = -1
local function finalize_all(first_calls)
    if finalized and finalized_at == first_calls then return end
    finalized, finalized_at = true, first_calls
    for _, S in pairs(sessions) do
        if not S.done and not S.view then
            local V = session_view(S)
            if S.kind == "dns" then
                V.done = true
                if not V.answered and not V.anomaly_set.dns_no_response then
                    dns_unanswered(V, capture_last_frame, capture_last_ts, "the capture ended")
                end
            else
                finish_session(V, S.last_frame, S.last_ts, true)
            end
            S.view = V
        end
    end
end

local function render(S, pinfo, tree, frame, first_pass)
    if P.summary_only and not first_pass and frame ~= S.last_frame then return end
    local t = tree:add(p, "SMTP diagnosis")
    t:add(F.proto, S.kind or "smtp"):set_generated()
    t:add(F.stream, S.stream):set_generated()
    local a = S.ann[frame]
    local role = a and a.role
    if not role and S.kind ~= "dns" then
        local sp = pinfo.src_port
        if sp == S.cport and sp ~= S.sport then role = "c"
        elseif sp == S.sport and sp ~= S.cport then role = "s"
        else role = (addr_pair(pinfo) == S.cli) and "c" or "s" end
    end
    if role then t:add(F.role, role == "c" and "client" or "server"):set_generated() end
    if a then render_frame_annotations(S, t, a) end
    if degraded then
        t:add(F.warning, "two-pass run without a display filter: the first pass had no fields, verdicts are one-pass (add -Y smtpdiag)"):set_generated()
    end
    if not first_pass and not degraded then
        local v = verdict(S)
        add_verdict(S, t, v, frame)
        add_experts(S, t, frame, false)
        if frame == S.last_frame then render_summary(S, t, v) end
        if v.cause ~= "ok" then
            pcall(function() pinfo.cols.info:append(" [" .. v.cause .. "]") end)
        end
    elseif S.decided[frame] then
        local v = verdict(S)
        add_verdict(S, t, v, frame)
        add_experts(S, t, frame, true)
    end
end

-- tshark -2 re-runs the init routines before its second pass: state is only
-- dropped when a first pass really starts again (a new or reloaded file).
local reset_pending = true
function p.init()
    reset_pending = true
    load_prefs()
end

local first_calls, first_tree = 0, 0

local function dissect(tvb, pinfo, tree)
    if reset_pending then
        reset_pending = false
        if not pinfo.visited then
            sessions, dns_frames, exchangers = {}, {}, {}
            nonmail = {}
            dns_by_tx, dns_open = {}, {}
            capture_last_frame, capture_last_ts = 0, 0
            done_fifo, done_head, done_tail, tombstones = {}, 1, 0, {}
            syn_wait, syn_wait_ts, syn_head, syn_tail = {}, {}, 1, 0
            if summary_out then pcall(function() summary_out:close() end) end
            summary_out, summary_failed = nil, false
            dns_waiting, dns_wait_head, dns_wait_tail = {}, 1, 0
            finalized, finalized_at = false, -1
            first_calls, first_tree, degraded, degraded_last = 0, 0, false, 0
        end
    end
    local visited = pinfo.visited
    if not visited then
        first_calls = first_calls + 1
        if first_tree == 0 and f_frame() then first_tree = 1 end
    elseif not finalized and not degraded and first_calls > 0 and first_tree == 0 then
        -- tshark -2 builds no tree on its first pass unless a filter is given (-Y/-R).
        degraded = true
    end
    local frame, ts = pinfo.number, pinfo.abs_ts
    local first_pass = not visited or (degraded and frame > degraded_last)
    if first_pass and frame > capture_last_frame then capture_last_frame, capture_last_ts = frame, ts end
    if degraded and frame > degraded_last then degraded_last = frame end
    -- Mail DNS lookups
    local sport, dport
    if first_pass then
        sport, dport = pinfo.src_port, pinfo.dst_port
        local expired = dns_waiting[dns_wait_head] and dns_expire(frame, ts) or nil
        local L = (sport == 53 or dport == 53 or P.dns_any_port)
            and dns_process(pinfo, frame, ts) or nil
        if batch then L, expired = nil, nil end
        if L then
            for _, f in ipairs(L.findings) do f.decided_at = f.decided_at or frame end
            render(L, pinfo, tree, frame, true)
        end
        if expired then
            for _, X in ipairs(expired) do
                for _, f in ipairs(X.findings) do f.decided_at = f.decided_at or frame end
                render(X, pinfo, tree, frame, true)
            end
        end
    elseif dns_frames[frame] then
        finalize_all(first_calls)
        local L = dns_frames[frame]
        render(L.view or L, pinfo, tree, frame, false)
    end
    -- TCP mail sessions
    if batch then
        local e = done_fifo[done_head]
        if e and flush_due(e, ts) then flush_done(ts, false) end
        if syn_head <= syn_tail and ts - syn_wait_ts[syn_head] > SYN_IDLE then expire_syn_only(ts) end
    end
    local stream, tcplen, len_fi = session_for_frame()
    if stream == nil then return end
    local S
    if first_pass then
        S = process(tvb, pinfo, stream, tcplen, len_fi, frame, ts, sport, dport)
        if S then
            for _, f in ipairs(S.findings) do
                if not f.decided_at then f.decided_at = frame end
            end
            if batch then
                if S.done then enqueue_done(S, ts) end
                return
            end
        end
    elseif degraded then
        S = sessions[stream]
    else
        finalize_all(first_calls)
        S = sessions[stream]
        while S and S.older and frame < S.first_frame do S = S.older end
        if S and S.view then S = S.view end
    end
    if S and (not first_pass or P.first_pass_fields or degraded) then render(S, pinfo, tree, frame, first_pass) end
end

function p.dissector(tvb, pinfo, tree)
    -- A Lua error must never reach Wireshark: it aborts tshark 4.6. Malformed
    -- input gives no verdict rather than a wrong one.
    local ok, err = pcall(dissect, tvb, pinfo, tree)
    if not ok then
        pcall(function()
            local t = tree:add(p, "SMTP diagnosis: internal error")
            t:add(F.version, SMTPDIAG_VERSION)
            t:add(F.internal_error, clean(err, 300))
        end)
    end
end

register_postdissector(p)

-- Batch mode: at the end of the capture every conversation still open gets its
-- end-of-capture verdict and its line in the summary file.
local end_tap = Listener.new(nil, nil)
function end_tap.draw()
    if not batch then return end
    pcall(function()
        flush_done(0, true)
        local rest = {}
        for _, S in pairs(sessions) do
            if not S.done then
                if S.kind == "dns" then
                    S.done = true
                    if not S.answered and not S.anomaly_set.dns_no_response then
                        dns_unanswered(S, capture_last_frame, capture_last_ts, "the capture ended")
                    end
                else
                    finish_session(S, S.last_frame, S.last_ts, true)
                end
            end
            rest[#rest + 1] = S
        end
        table.sort(rest, function(a, b)
            if a.first_frame ~= b.first_frame then return a.first_frame < b.first_frame end
            return (a.kind or "") < (b.kind or "")
        end)
        -- Even an empty capture says the plugin ran: a header line.
        if not summary_out and not summary_failed then open_summary() end
        for _, S in ipairs(rest) do write_summary(S) end
        sessions = {}
        if summary_out then summary_out:close() end
        summary_out = nil
    end)
end

-- Mail on ports Wireshark does not know: a heuristic on the server's greeting
-- ("220 ... SMTP", "+OK ... POP", "* OK ... IMAP") hands the conversation to
-- Wireshark's own dissector for that protocol, and so to this post-dissector.

local function greeting_heuristic(name, dissector_name, pattern, word)
    local heur = Proto("smtpdiag_" .. name, name:upper() .. " greeting heuristic (smtpdiag)")
    local target = Dissector.get(dissector_name)
    function heur.dissector(tvb, pinfo, tree)
        return target:call(tvb, pinfo, tree)
    end
    local function try(tvb, pinfo, tree)
        if not P.heuristic or tvb:len() < 5 then return false end
        local head = tvb:raw(0, math.min(tvb:len(), 256))
        if not head:match(pattern) then return false end
        local line = head:match("^[^\r\n]*")
        if not line:upper():find(word, 1, true) then return false end
        pinfo.conversation = heur
        target:call(tvb, pinfo, tree)
        return true
    end
    local function detect(tvb, pinfo, tree)
        local ok, res = pcall(try, tvb, pinfo, tree)
        return ok and res or false
    end
    heur:register_heuristic("tcp", detect)
end

greeting_heuristic("smtp", "smtp", "^220[ -]", "SMTP")
greeting_heuristic("pop", "pop", "^%+OK", "POP")
greeting_heuristic("imap", "imap", "^%* OK", "IMAP")
