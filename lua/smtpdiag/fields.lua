-- smtpdiag.fields: the fields and expert infos, each listed once. register(p) turns the lists
-- into ProtoFields (M.F by key), their display-filter names (M.ABBR by ProtoField) and
-- ProtoExperts (M.EXPERT by diagnosis code); docs/fields.md is generated from the same lists.
local M = {}

-- key, display-filter name, type, name, description. `fallback`: the contract puts two fields
-- under smtp.*; if a Wireshark ever owns those names itself, the fallback name is used instead.
M.SPEC = {
    { "data_terminated", "smtp.data_terminated", "bool", "Data terminated", "Message data ended by <CRLF>.<CRLF>",
      fallback = "smtpdiag.data_terminated" },
    { "smtp_cause", "smtp.failure_cause", "string", "SMTP failure cause",
      "Diagnosis code of the SMTP session (ok when clean)", fallback = "smtpdiag.smtp_failure_cause" },
    { "cause", "smtpdiag.failure_cause", "string", "Failure cause", "Root cause of the conversation: its earliest finding" },
    { "anomalies", "smtpdiag.anomalies", "string", "Anomaly", "Every finding of the session" },
    { "detail", "smtpdiag.detail", "string", "Detail", "The diagnosis in one sentence with its evidence" },
    { "terminator", "smtpdiag.terminator", "string", "Terminator", "crlf, bare_lf, mixed or none" },
    { "smuggling", "smtpdiag.smuggling_suspect", "bool", "Smuggling suspect",
      "Non-standard end-of-data sequence inside message data" },
    { "proto", "smtpdiag.proto", "string", "Protocol" },
    { "stream", "smtpdiag.stream", "uint32", "Session (tcp.stream)" },
    { "role", "smtpdiag.role", "string", "Sender role", "client or server" },
    { "state", "smtpdiag.state", "string", "State", "Session state after this frame" },
    { "command", "smtpdiag.command", "string", "Command",
      "Client command verb (not truncated); (unknown) for any other verb, (AUTH data) for a credentials line" },
    { "reply_code", "smtpdiag.reply_code", "uint32", "Reply code" },
    { "reply_to", "smtpdiag.reply_to", "string", "Reply to", "The command this reply answers" },
    { "reply_to_frame", "smtpdiag.reply_to_frame", "framenum", "Reply to frame" },
    { "reply_latency", "smtpdiag.reply_latency", "reltime", "Reply latency" },
    { "greeting_latency", "smtpdiag.greeting_latency", "reltime", "Greeting latency",
      "From the client's SYN (or first frame) to the server's greeting" },
    { "data_bytes", "smtpdiag.data_bytes", "uint64", "Message data bytes" },
    { "data_duration", "smtpdiag.data_duration", "reltime", "Data duration", "From the 354 reply to the end of data" },
    { "final_latency", "smtpdiag.final_reply_latency", "reltime", "Final reply latency",
      "From the end of data to the server's final reply" },
    { "session_end", "smtpdiag.session_end", "bool", "Session summary",
      "On the session's last frame (two-pass and GUI): carries the session summary" },
    { "first_frame", "smtpdiag.first_frame", "framenum", "First frame" },
    { "last_frame", "smtpdiag.last_frame", "framenum", "Last frame" },
    { "start", "smtpdiag.start", "string", "Start", "Epoch seconds with microseconds (the label shows it in UTC)" },
    { "duration", "smtpdiag.duration", "reltime", "Duration" },
    { "client", "smtpdiag.client", "string", "Client address" },
    { "client_port", "smtpdiag.client_port", "uint16", "Client port" },
    { "server", "smtpdiag.server", "string", "Server address" },
    { "server_port", "smtpdiag.server_port", "uint16", "Server port" },
    { "helo", "smtpdiag.helo", "string", "HELO/EHLO name" },
    { "messages", "smtpdiag.messages", "uint32", "Messages accepted" },
    { "last_reply", "smtpdiag.last_reply", "string", "Last reply" },
    { "tls", "smtpdiag.tls", "bool", "TLS", "STARTTLS accepted or implicit TLS" },
    { "bytes_client", "smtpdiag.bytes_client", "uint64", "Client payload bytes" },
    { "bytes_server", "smtpdiag.bytes_server", "uint64", "Server payload bytes" },
    { "txn_depth", "smtpdiag.txn.depth", "uint32", "Transaction depth" },
    { "txn_mailfrom", "smtpdiag.txn.mailfrom", "string", "MAIL FROM" },
    { "txn_rcptto", "smtpdiag.txn.rcptto", "string", "RCPT TO (comma-joined)" },
    { "txn_last_reply", "smtpdiag.txn.last_reply", "string", "Transaction last reply" },
    { "txn_terminated", "smtpdiag.txn.data_terminated", "string", "Transaction data terminated",
      "true, false, or empty when unknown or no DATA phase" },
    { "txn_bytes", "smtpdiag.txn.message_bytes", "uint64", "Transaction message bytes" },
    { "txn_cause", "smtpdiag.txn.failure_cause", "string", "Transaction failure cause" },
    { "txn_first_frame", "smtpdiag.txn.first_frame", "framenum", "Transaction first frame" },
    { "txn_last_frame", "smtpdiag.txn.last_frame", "framenum", "Transaction last frame" },
    { "txn_start", "smtpdiag.txn.start", "string", "Transaction start", "Epoch seconds with microseconds (the label shows it in UTC)" },
    { "txn_tls", "smtpdiag.txn.tls", "bool", "Transaction after STARTTLS" },
    { "status", "smtpdiag.status", "string", "POP3/IMAP status", "+OK, -ERR, OK, NO, BAD" },
    { "mbox_user", "smtpdiag.mbox.user", "string", "Mailbox user", "Never the password" },
    { "mbox_commands", "smtpdiag.mbox.commands", "string", "Mailbox commands", "VERB=count,..." },
    { "dns_query", "smtpdiag.dns.query", "string", "DNS query name" },
    { "dns_qtype", "smtpdiag.dns.qtype", "string", "DNS query type" },
    { "dns_rcode", "smtpdiag.dns.rcode", "string", "DNS rcode" },
    { "dns_answers", "smtpdiag.dns.answers", "string", "DNS answer" },
    { "dns_latency", "smtpdiag.dns.latency", "reltime", "DNS latency",
      "From the first query to the answer, across retransmissions" },
    { "dns_queries", "smtpdiag.dns.queries", "uint32", "DNS query transmissions" },
    { "version", "smtpdiag.version", "string", "Plugin version" },
    { "credentials", "smtpdiag.credentials", "bool", "Carries credentials",
      "This frame carries bytes of a password or an AUTH exchange (each segment of a split line, a retransmission of one): tables redact its other fields" },
    { "warning", "smtpdiag.warning", "string", "Warning" },
    { "internal_error", "smtpdiag.internal_error", "string", "Internal error",
      "A bug in smtpdiag met this frame: no verdict was given for it" },
}

-- One expert info per diagnosis code: code, expert.group, expert.severity, message.
M.EXPERT_SPEC = {
    { "no_response", "SEQUENCE", "ERROR", "No response to SYN" },
    { "connection_refused", "SEQUENCE", "ERROR", "Connection refused (RST to SYN)" },
    { "no_banner", "SEQUENCE", "ERROR", "No SMTP greeting" },
    { "greeting_rejected", "RESPONSE_CODE", "ERROR", "Greeting rejected" },
    { "pregreet", "PROTOCOL", "WARN", "Client talked before the greeting" },
    { "banner_masked", "PROTOCOL", "WARN", "Greeting masked by a middlebox" },
    { "command_masked", "PROTOCOL", "WARN", "Command masked by a middlebox" },
    { "starttls_stripped", "PROTOCOL", "WARN", "STARTTLS stripped by a middlebox" },
    { "tls_failed", "SEQUENCE", "ERROR", "TLS handshake after STARTTLS failed" },
    { "auth_failed", "RESPONSE_CODE", "WARN", "Authentication failed" },
    { "tempfail", "RESPONSE_CODE", "WARN", "Temporary failure (4xx)" },
    { "rejected", "RESPONSE_CODE", "ERROR", "Rejected (5xx)" },
    { "bare_lf_terminator", "MALFORMED", "ERROR", "Message data ended by a non-<CRLF>.<CRLF> sequence" },
    { "smuggling_attempt", "MALFORMED", "ERROR", "SMTP smuggling pattern in message data" },
    { "data_not_terminated", "SEQUENCE", "ERROR", "DATA never terminated" },
    { "data_timeout", "SEQUENCE", "ERROR", "Server timed out waiting for end of data" },
    { "data_reset", "SEQUENCE", "ERROR", "Connection reset during DATA" },
    { "bdat_incomplete", "SEQUENCE", "ERROR", "BDAT data incomplete" },
    { "mtu_blackhole", "SEQUENCE", "ERROR", "Path MTU black hole" },
    { "reset", "SEQUENCE", "WARN", "Connection reset" },
    { "incomplete", "SEQUENCE", "WARN", "Capture too incomplete to judge" },
    { "dns_nxdomain", "RESPONSE_CODE", "ERROR", "Mail DNS lookup: NXDOMAIN" },
    { "dns_servfail", "RESPONSE_CODE", "ERROR", "Mail DNS lookup: SERVFAIL" },
    { "dns_refused", "RESPONSE_CODE", "ERROR", "Mail DNS lookup: REFUSED" },
    { "dns_no_response", "SEQUENCE", "ERROR", "Mail DNS lookup never answered" },
    { "dns_no_answer", "RESPONSE_CODE", "WARN", "Mail DNS lookup: no records of that type" },
    { "pop_auth_failed", "RESPONSE_CODE", "WARN", "POP3 authentication failed" },
    { "imap_auth_failed", "RESPONSE_CODE", "WARN", "IMAP authentication failed" },
}

-- Wireshark's name of each spec type (for the docs).
M.FTYPE = { string = "FT_STRING", bool = "FT_BOOLEAN", uint16 = "FT_UINT16", uint32 = "FT_UINT32",
            uint64 = "FT_UINT64", framenum = "FT_FRAMENUM", double = "FT_DOUBLE", reltime = "FT_RELATIVE_TIME" }

-- The ProtoField constructor of each spec type (descriptions only where the constructor takes one).
local function uint(make)
    return function(abbr, name, desc)
        if desc then return make(abbr, name, base.DEC, nil, nil, desc) end
        return make(abbr, name, base.DEC)
    end
end
local MAKE = {
    string = function(abbr, name, desc) return ProtoField.new(name, abbr, ftypes.STRING, nil, nil, nil, desc) end,
    bool = function(abbr, name, desc) return ProtoField.bool(abbr, name, base.NONE, nil, 0, desc) end,
    uint16 = uint(ProtoField.uint16),
    uint32 = uint(ProtoField.uint32),
    uint64 = uint(ProtoField.uint64),
    framenum = function(abbr, name) return ProtoField.framenum(abbr, name, base.NONE) end,
    double = function(abbr, name, desc) return ProtoField.double(abbr, name, desc) end,
    reltime = function(abbr, name, desc) return ProtoField.relative_time(abbr, name, desc) end,
}

M.F = {}        -- key -> ProtoField
M.ABBR = {}     -- ProtoField -> display-filter name
M.LIST = {}     -- the ProtoFields in key order (a stable order, run after run: the summary file's columns)
M.U64 = {}      -- ProtoField -> true for uint64 fields (plain Lua numbers until they reach the tree)
M.REL = {}      -- ProtoField -> true for relative-time fields (seconds as Lua numbers until the tree)
M.NAME = {}     -- ProtoField -> its label name
M.EXPERT = {}   -- diagnosis code -> ProtoExpert
M.proto = nil   -- the Proto, once registered

-- The preferred name unless a Wireshark already has a field of that name.
local function own_name(preferred, fallback)
    local exists = pcall(Field.new, preferred)
    if exists then return fallback end
    return preferred
end

-- Creates the ProtoFields and ProtoExperts and gives them to the Proto p.
function M.register(p)
    local F, ABBR, keys = M.F, M.ABBR, {}
    for _, s in ipairs(M.SPEC) do
        local abbr = s.fallback and own_name(s[2], s.fallback) or s[2]
        local f = MAKE[s[3]](abbr, s[4], s[5])
        F[s[1]], ABBR[f] = f, abbr
        if s[3] == "uint64" then M.U64[f] = true end
        if s[3] == "reltime" then M.REL[f] = true end
        M.NAME[f] = s[4]
        keys[#keys + 1] = s[1]
    end
    table.sort(keys)
    for _, k in ipairs(keys) do M.LIST[#M.LIST + 1] = F[k] end
    p.fields = M.LIST
    local experts = {}
    for _, e in ipairs(M.EXPERT_SPEC) do
        local x = ProtoExpert.new("smtpdiag.expert." .. e[1], e[4], expert.group[e[2]], expert.severity[e[3]])
        M.EXPERT[e[1]] = x
        experts[#experts + 1] = x
    end
    p.experts = experts
    M.proto = p
end

return M
