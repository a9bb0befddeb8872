-- smtpdiag.connection: the per-frame TCP step. Which mail session a segment belongs to (a new
-- one for a new connection), which side sent it, and what its flags and payload do: handshake,
-- refusal, resets, closes, acknowledged bytes the capture lacks. Batch mode also decides here
-- connection attempts that never got an answer.
local M = {}

local causal = require("smtpdiag.causal")
local decrypted = require("smtpdiag.decrypted")
local prefs = require("smtpdiag.prefs")
local session = require("smtpdiag.session")
local session_end = require("smtpdiag.session_end")
local smtp_data = require("smtpdiag.smtp_data")
local tcp = require("smtpdiag.tcp")
local tls = require("smtpdiag.tls")
local util = require("smtpdiag.util")

local P = prefs.P
local sessions, new_session, buried, unbury = session.sessions, session.new_session, session.buried, session.unbury
local add_anomaly, finding, push_pending, enqueue_done =
    session.add_anomaly, session.finding, session.push_pending, session.enqueue_done
local finish_session, close_data_phase = session_end.finish_session, smtp_data.close_data_phase
local tcp_header, tcp_payload = tcp.header, tcp.payload
local acked_unseen, data_segment, settle = causal.acked_unseen, causal.data, causal.settle
local tls_on_rst, tls_on_fin, tls_reset_close = tls.on_rst, tls.on_fin, tls.reset_close
local tls_start_implicit, tls_first_bytes = tls.start_implicit, tls.first_bytes
local seqdiff, side, addr_pair, MOD32 = util.seqdiff, util.side, util.addr_pair, util.MOD32
local format = string.format

local f_stream = Field.new("tcp.stream")
local f_tcplen = Field.new("tcp.len")
local f_smtp = Field.new("smtp")
local f_pop = Field.new("pop")
local f_imap = Field.new("imap")

-- Server port sets, from the preferences.
local smtp_servers, pop_servers, imap_servers, tls_servers = {}, {}, {}, {}
prefs.on_load(function(p)
    smtp_servers, pop_servers, imap_servers, tls_servers = p.smtp_servers, p.pop_servers, p.imap_servers, p.tls_servers
end)

-- tcp.stream -> frames seen without any mail protocol (at most MAX_NONMAIL streams: then it
-- starts again, as a cache would)
local MAX_NONMAIL = 100000
local nonmail, n_nonmail = {}, 0
-- tcp.stream -> the mail port a SYN came *from* (no session unless the peer greets), as bounded
local syn_from_mail_port, n_syn_from = {}, 0
local older_for_next = nil  -- a finished session whose stream a new connection reuses

-- Batch mode: a connection attempt that got nothing back (SYNs only, retransmitted) for
-- SYN_IDLE seconds of capture time has ended (a client gives up in about two minutes): it
-- is decided and written then, not kept until the end of the capture.
local SYN_IDLE = 300
-- Attempts in the order they were queued (slots syn_queue.head .. syn_queue.tail), with the
-- capture time each was queued at; an attempt answered or written since leaves false in its
-- slot (no table per attempt).
local syn_wait, syn_wait_ts = {}, {}
local syn_queue = { head = 1, tail = 0 }
M.syn_queue = syn_queue

function M.reset()
    nonmail, n_nonmail, older_for_next = {}, 0, nil
    syn_from_mail_port, n_syn_from = {}, 0
    syn_wait, syn_wait_ts = {}, {}
    syn_queue.head, syn_queue.tail = 1, 0
end

-- The frame's tcp.stream, tcp.len and the tcp.len field itself (it sits at the TCP header's
-- first byte); TCP quoted inside an ICMP error (and a malformed header) has no tcp.len: it is
-- not a segment of the session.
function M.stream_of_frame()
    local st = f_stream()
    if not st then return nil end
    local tl = f_tcplen()
    if not tl then return nil end
    return st.value, tl.value, tl
end

local function syn_wait_push(S)
    local tail = syn_queue.tail + 1
    syn_queue.tail = tail
    syn_wait[tail], syn_wait_ts[tail] = S, S.last_ts
    S.syn_slot = tail
end

-- The attempt got an answer or was written out: the queue lets go of it.
local function syn_wait_release(S)
    if S.syn_slot then syn_wait[S.syn_slot], S.syn_slot = false, nil end
end
M.syn_wait_release = syn_wait_release

local function syn_only(S)
    return S.syns > 0 and not S.synack and not S.established and not S.done and S.s.pkts == 0
        and S.c.pkts == S.syns
end

-- Attempts idle for SYN_IDLE seconds at capture time ts are finished and queued for writing.
function M.expire_syn_only(ts)
    while syn_queue.head <= syn_queue.tail and ts - syn_wait_ts[syn_queue.head] > SYN_IDLE do
        local head = syn_queue.head
        local S = syn_wait[head]
        syn_wait[head], syn_wait_ts[head] = nil, nil
        syn_queue.head = head + 1
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

-- "smtp", "pop" or "imap" by the listed ports, else by the dissector Wireshark chose; nil for neither.
local function mail_kind(sport, dport)
    local kind = (smtp_servers[dport] or smtp_servers[sport]) and "smtp"
        or (pop_servers[dport] or pop_servers[sport]) and "pop"
        or (imap_servers[dport] or imap_servers[sport]) and "imap"
    return kind or (f_smtp() and "smtp") or (f_pop() and "pop") or (f_imap() and "imap") or nil
end

-- Whether the frame's source is the client: by the handshake, the server ports, or the payload
-- (a server speaks first with a reply code, +OK/-ERR or "* ").
local function client_is_source(server_ports, syn, ack, sport, dport, segment_bytes, payload_off, tcplen)
    if syn and not ack then return true
    elseif syn and ack then return false
    elseif server_ports[dport] and not server_ports[sport] then return true
    elseif server_ports[sport] and not server_ports[dport] then return false
    end
    local head = tcp_payload(segment_bytes, payload_off, math.min(4, tcplen))
    return not (head:match("^%d%d%d") or head:match("^[%+%-][OE]") or head:match("^%* "))
end

-- Whether a server's first bytes greet as a mail server does.
local function greets(head)
    return head:match("^%d%d%d[ %-\r]") ~= nil or head:match("^[%+%-][OE][KR]") ~= nil or head:match("^%* ") ~= nil
end

-- A new mail session on stream from this frame; nil when the frame is no mail.
local function open_session(pinfo, stream, frame, ts, sport, dport, syn, ack, segment_bytes, payload_off, tcplen)
    local kind = mail_kind(sport, dport)
    if not kind then return nil end
    local server_ports = kind == "smtp" and smtp_servers or (kind == "pop" and pop_servers or imap_servers)
    local from_client = client_is_source(server_ports, syn, ack, sport, dport, segment_bytes, payload_off, tcplen)
    local greeting = not syn and greets(tcp_payload(segment_bytes, payload_off, math.min(8, tcplen)))
    local syn_from = syn_from_mail_port[stream]
    if syn_from and not (syn and not ack) then
        -- The side that sent the SYN is the client: the session starts only if its peer greets.
        if sport == syn_from or not greeting then return nil end
        from_client = false
    end
    local cport, sport_ = sport, dport
    if not from_client then cport, sport_ = dport, sport end
    if server_ports[cport] and not server_ports[sport_] and (from_client or not greeting) then
        -- A connection *from* a mail port (a scanner's SYN from port 25): mail only if it greets.
        if syn and not ack and not syn_from_mail_port[stream] then
            if n_syn_from >= MAX_NONMAIL then syn_from_mail_port, n_syn_from = {}, 0 end
            syn_from_mail_port[stream], n_syn_from = sport, n_syn_from + 1
        end
        return nil
    end
    syn_from_mail_port[stream] = nil
    local S = new_session(stream, frame, ts)
    S.kind = kind
    S.key = stream
    unbury(stream)
    if older_for_next then
        S.older, S.generation = older_for_next, older_for_next.generation + 1
        older_for_next = nil
    end
    local src, dst = addr_pair(pinfo)
    if from_client then
        S.cli, S.cport, S.srv, S.sport = src, sport, dst, dport
    else
        S.cli, S.cport, S.srv, S.sport = dst, dport, src, sport
    end
    S.midstream = not syn
    S.implicit_tls = false
    if tls_servers[S.sport] then tls_start_implicit(S, frame, ts) end
    sessions[stream] = S
    return S
end

-- A SYN on a finished session's stream: a new connection on the same addresses and ports
-- (Wireshark 4.0 keeps its tcp.stream, 4.4+ starts a new one): a new session either way.
local function retire(S, stream)
    S.generation = S.generation or 0
    S.key = stream .. "#" .. S.generation
    sessions[S.key] = S
    sessions[stream] = nil
    older_for_next = S
end

local function on_syn(S, d, ack, seq, frame, ts)
    if not ack then
        S.syns = S.syns + 1
        -- A retransmitted SYN: the attempt may go unanswered (a first SYN is answered in
        -- milliseconds or retransmitted within a few seconds).
        if P.batch and S.syns == 2 and not S.syn_slot and syn_only(S) then syn_wait_push(S) end
        S.syn_frame = S.syn_frame or frame
        S.syn_ts = S.syn_ts or ts
        S.last_syn_frame, S.last_syn_ts = frame, ts
        if S.done then return end
    else
        S.synack = true
        S.established = true
        syn_wait_release(S)
    end
    d.next = (seq + 1) % MOD32
    if not S.greeted and S.phase == "greeting" and not S.pending[S.qh] and not S.implicit_tls then
        push_pending(S, "<greeting>", nil, frame, ts)
    end
end

local function on_rst(S, d, role, frame, ts)
    d.rst = true
    if S.syns > 0 and not S.synack and role == "s" and not S.established then
        S.refused = true
        finding(S, "connection_refused", frame, ts,
            format("SYN from %s to %s:%d answered by RST (frame %d): nothing listens on that port, or a firewall rejects",
                S.cli or "?", S.srv or "?", S.sport or 0, frame))
        S.done = true
        return
    end
    if S.D then
        close_data_phase(S, "RST", frame, ts, role)
    elseif tls_reset_close(S) then
        add_anomaly(S, "tls_reset_close")
    elseif not S.ended_normally and not S.quit and not S.c.fin and not S.s.fin and not S.done then
        finding(S, "reset", frame, ts,
            format("RST from the %s in state %s, before the session ended normally (frame %d)", side(role), S.phase, frame))
    else
        add_anomaly(S, "rst_after_close")
    end
    tls_on_rst(S, role, frame, ts)
    if not S.done then finish_session(S, frame, ts, false) end
end

local function on_fin(S, d, role, seq, tcplen, frame, ts)
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
        tls_on_fin(S, role, frame, ts)
    end
    if S.c.fin and S.s.fin then
        finish_session(S, frame, ts, false)
    end
end

-- A frame of a stream with no session, on no mail port: true when it is not mail either (only a
-- conversation Wireshark decodes as SMTP/POP3/IMAP counts); such streams are remembered, bounded.
local function not_mail(stream)
    local n = nonmail[stream] or 0
    if n > 64 then return true end
    if f_smtp() or f_pop() or f_imap() then return false end
    if n == 0 then
        if n_nonmail >= MAX_NONMAIL then nonmail, n_nonmail = {}, 0 end
        n_nonmail = n_nonmail + 1
    end
    nonmail[stream] = n + 1
    return true
end

local FIRST = { c = "first_c", s = "first_s" }

-- One TCP frame (first pass): returns its mail session, updated, or nil when it is none.
function M.process(tvb, pinfo, stream, tcplen, len_fi, frame, ts, sport, dport)
    local S = sessions[stream]
    if not S and not (smtp_servers[dport] or smtp_servers[sport] or pop_servers[dport] or pop_servers[sport]
                      or imap_servers[dport] or imap_servers[sport]) and not_mail(stream) then
        return nil
    end
    local flags, seq, ack_no, payload_off, segment_bytes = tcp_header(tvb, len_fi, sport, dport)
    local syn, ack, fin, rst = flags % 4 >= 2, flags % 32 >= 16, flags % 2 == 1, flags % 8 >= 4
    if S and syn and not ack and (S.done or S.refused) then
        retire(S, stream)
        S = nil
    end
    if not S then
        if buried(stream) and not (syn and not ack) then
            return nil  -- trailing packets of a session already written out
        end
        S = open_session(pinfo, stream, frame, ts, sport, dport, syn, ack, segment_bytes, payload_off, tcplen)
        if not S then return nil end
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
    d.pkts = d.pkts + 1
    if ack then
        local peer = S[role == "c" and "s" or "c"]
        if not peer.maxack or seqdiff(ack_no, peer.maxack) > 0 then
            peer.maxack = ack_no
        end
        -- This side acknowledged peer bytes the capture has not shown (yet: see causal).
        if peer.next and not S.done then
            local missing = seqdiff(peer.maxack, peer.next)
            if missing > 0 and missing < 1073741824 and not (peer.fin and missing == 1) then
                acked_unseen(S, role == "c" and "s" or "c")
            end
        end
    end
    local W = S.ack_wait
    if W and W.role == role and d.next and seqdiff(seq, W.target) >= 0 and seqdiff(d.next, W.target) < 0 then
        settle(S, frame, ts, true)  -- the side went on past its acknowledged bytes: the capture lacks them
    end
    if syn then
        on_syn(S, d, ack, seq, frame, ts)
        return S
    end
    if rst then
        settle(S, frame, ts, true)
        on_rst(S, d, role, frame, ts)
        return S
    end
    if not S.established and ack then
        S.established = true
        syn_wait_release(S)
    end
    if tcplen > 0 then
        d.bytes = d.bytes + tcplen
        local payload = tcp_payload(segment_bytes, payload_off, tcplen)
        if not S[FIRST[role]] then
            S["first_" .. role], S["first_" .. role .. "_frame"] = payload:sub(1, 80), frame
            -- where its bytes start, and what it had received of the other side's when it sent them
            S["first_" .. role .. "_seq"], S["first_" .. role .. "_ack"] = seq, ack and ack_no or nil
            tls_first_bytes(S, role, frame, ts)
        end
        data_segment(S, role, seq, payload, tcplen, frame, ts)
    end
    if S.ack_wait then settle(S, frame, ts, fin) end
    if S.tls and tcplen > 0 then decrypted.frame(S, tvb, role, frame, ts) end
    if fin then on_fin(S, d, role, seq, tcplen, frame, ts) end
    return S
end

return M
