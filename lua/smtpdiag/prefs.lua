-- smtpdiag.prefs: the preferences (one spec list: Wireshark's Pref objects and docs/fields.md
-- come from it) and their values, read once per change into M.P.
local M = {}

-- name, type (Pref.<type>), label, default, description. Order is the preferences dialog's.
M.SPEC = {
    { "ports", "string", "Mail ports (SMTP)", "25,465,587,2525",
      "Comma-separated TCP ports treated as SMTP servers (any port Wireshark decodes as SMTP is also diagnosed)" },
    { "pop_ports", "string", "POP3 ports", "110,995", "TCP ports of POP3 servers" },
    { "imap_ports", "string", "IMAP ports", "143,993", "TCP ports of IMAP servers" },
    { "tls_ports", "string", "Implicit-TLS ports", "465,993,995",
      "Mail ports whose sessions are TLS from the first byte: transport verdicts only" },
    { "dns_any_port", "bool", "DNS on any port", false,
      "Look for mail DNS lookups on every port, not only 53 (slower)" },
    { "first_pass_fields", "bool", "Fields on the first pass", true,
      "Add per-frame fields while the capture is first read (one-pass tshark needs them; tshark -2 does not)" },
    { "summary_file", "string", "Summary file", "",
      "Batch mode (one pass, for the smtpdiag toolkit): write one line per conversation to this file, no per-frame fields" },
    { "summary_only", "bool", "Summaries only", false,
      "On later passes, add fields only to each session's summary frame (for tables built with -Y smtpdiag.session_end)" },
    { "anonymise", "bool", "Anonymise", false,
      "Write pseudonyms (anon-<hash>) for MAIL FROM, RCPT TO, HELO names and mailbox users, and no mail address in any text (for exports that leave the site)" },
    { "dns_timeout", "uint", "DNS timeout (s)", 10,
      "An MX/A/AAAA query unanswered this long after its last retransmission is dns_no_response" },
    { "mtu_retrans", "uint", "MTU black hole: retransmissions", 3,
      "How many retransmissions of one full-size segment, with no ACK progress, make an MTU black hole" },
    { "mtu_min_size", "uint", "MTU black hole: full-size segment bytes", 1000,
      "Segments at least this large count as full-size for the MTU black-hole check" },
    { "max_buffer", "uint", "Max buffered out-of-order bytes", 262144,
      "Per direction; beyond this (or 4096 segments) a hole in the sequence space is declared a capture gap" },
    { "heuristic", "bool", "Detect mail protocols on any port", true,
      "Decode a TCP conversation as SMTP, POP3 or IMAP when its server's greeting says so" },
    { "info_cause", "enum", "Cause in the Info column", "evidence",
      "Append \" [cause]\" to the Info column of a failing session's frames: off, evidence (the frames "
      .. "that hold a finding's evidence), all (every frame of the session)", choices = { "off", "evidence", "all" } },
}

-- Every preference's value by name (a p.prefs lookup costs an allocation, too much per frame),
-- plus the server port sets (smtp_servers, pop_servers, imap_servers, tls_servers: port -> true)
-- and batch (summary-file mode: one pass, nothing per frame is kept). The table itself never changes.
local P = { batch = false, smtp_servers = {}, pop_servers = {}, imap_servers = {}, tls_servers = {} }
M.P = P

-- "25,465,587,2525" or "100-110" -> { [port] = true }.
function M.parse_ports(s)
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
-- heuristic, three of them Lua calls: there the protocol's own dissector takes it at C
-- speed (and follows STARTTLS into TLS, which decrypts when it has keys). Ports with a
-- dissector keep it (an HTTP CONNECT tunnel finds SMTP through tcp.port 25).
local claimed_ports = {}  -- port -> the dissector added for it
local function claim_listed_ports(on)
    local ok, tcp_port = pcall(DissectorTable.get, "tcp.port")
    if not ok or not tcp_port then return end
    for port, d in pairs(claimed_ports) do pcall(tcp_port.remove, tcp_port, port, d) end
    claimed_ports = {}
    if not on then return end
    for _, pl in ipairs({ { P.smtp_servers, "smtp" }, { P.pop_servers, "pop" }, { P.imap_servers, "imap" } }) do
        local d = Dissector.get(pl[2])
        for port in pairs(pl[1]) do
            if not claimed_ports[port] and not tcp_port:get_dissector(port) then
                tcp_port:add(port, d)
                claimed_ports[port] = d
            end
        end
    end
end

-- Functions called after every load with P (modules that keep a value in an upvalue).
local listeners = {}
function M.on_load(fn)
    listeners[#listeners + 1] = fn
end

-- Registers the preferences on the Proto.
function M.declare(p)
    for _, s in ipairs(M.SPEC) do
        if s.choices then
            local enum, default = {}, 1
            for i, name in ipairs(s.choices) do
                enum[i] = { i, name, i }
                if name == s[4] then default = i end
            end
            p.prefs[s[1]] = Pref.enum(s[3], default, s[5], enum, false)
        else
            p.prefs[s[1]] = Pref[s[2]](s[3], s[4], s[5])
        end
    end
end

-- Reads the preferences' current values into P.
function M.load(p)
    local prefs = p.prefs
    for _, s in ipairs(M.SPEC) do
        local v = prefs[s[1]]
        if s.choices then v = s.choices[v] or s[4] end
        P[s[1]] = v
    end
    P.smtp_servers = M.parse_ports(P.ports)
    P.pop_servers = M.parse_ports(P.pop_ports)
    P.imap_servers = M.parse_ports(P.imap_ports)
    P.tls_servers = M.parse_ports(P.tls_ports)
    P.batch = (P.summary_file or "") ~= ""
    claim_listed_ports(P.batch)
    for _, fn in ipairs(listeners) do fn(P) end
end

return M
