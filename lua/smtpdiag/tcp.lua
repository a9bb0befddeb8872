-- smtpdiag.tcp: TCP as the plugin reads it from the frame's bytes: the header, per-direction
-- reassembly (retransmissions, out-of-order segments, holes declared capture gaps) handing
-- bytes in order to the mail protocol, and the path MTU black-hole check.
local M = {}

local prefs = require("smtpdiag.prefs")
local session = require("smtpdiag.session")
local smtp_commands = require("smtpdiag.smtp_commands")
local smtp_replies = require("smtpdiag.smtp_replies")
local smtp_data = require("smtpdiag.smtp_data")
local mailbox = require("smtpdiag.mailbox")
local util = require("smtpdiag.util")

local P = prefs.P
local ann, add_anomaly, finding = session.ann, session.add_anomaly, session.finding
local line_lost, resends_credentials = session.line_lost, session.resends_credentials
local client_bytes, server_bytes, mailbox_bytes = smtp_commands.client_bytes, smtp_replies.server_bytes, mailbox.bytes
local data_gap, bdat_gap = smtp_data.data_gap, smtp_data.bdat_gap
local tls_feed = require("smtpdiag.tls").feed
local seqdiff, side, MOD32 = util.seqdiff, util.side, util.MOD32
local byte, format, floor, sort, sub = string.byte, string.format, math.floor, table.sort, string.sub

local function source_of(fi) return fi.source end

-- Flags, raw sequence and acknowledgement numbers, the bytes holding the segment (a string) and
-- where its payload starts in them (0-based). The tcp.len field (fi) locates the header: in the
-- frame's own bytes, or else (IP reassembly) in its data source; its ports must be the frame's.
-- Reading bytes, not fields, spares Wireshark building those fields on every frame; one copy of
-- the frame's bytes serves the header and the payload (each tvb call costs more than the copy).
function M.header(tvb, fi, sport, dport)
    local off = fi.offset
    local src = tvb
    for _ = 1, 2 do
        if src and off >= 0 then
            local b = src:raw()
            if off + 20 <= #b then
                local p1, p2, p3, p4, s1, s2, s3, s4, a1, a2, a3, a4, hl, fl = byte(b, off + 1, off + 14)
                if p1 * 256 + p2 == sport and p3 * 256 + p4 == dport then
                    return (hl % 16) * 256 + fl, ((s1 * 256 + s2) * 256 + s3) * 256 + s4,
                        ((a1 * 256 + a2) * 256 + a3) * 256 + a4, off + floor(hl / 16) * 4, b
                end
            end
        end
        local ok, other = pcall(source_of, fi)
        if not ok or not other then break end
        src = other
    end
    return 0, 0, 0, nil, nil  -- no bytes hold the header: no flags, no payload
end

-- The segment's captured payload bytes (at most n) from the bytes M.header returned.
function M.payload(b, payload_off, n)
    if not payload_off or n <= 0 then return "" end
    return sub(b, payload_off + 1, payload_off + n)
end

-- Plaintext bytes of direction role, in order, to the session's protocol state machine (clear
-- text from here, decrypted records from decrypted.lua).
local function protocol_bytes(S, role, data, frame, ts)
    if S.kind ~= "smtp" then
        mailbox_bytes(S, role, data, frame, ts)
    elseif role == "c" then
        client_bytes(S, data, frame, ts)
    else
        server_bytes(S, data, frame, ts)
    end
end
M.protocol_bytes = protocol_bytes

-- Bytes of direction role, in order, to the session's protocol: seq is the sequence number of
-- their first byte, src the frame that carried them (an out-of-order segment's own frame).
local function deliver(S, role, data, frame, ts, seq, src)
    local d = S[role]
    d.dseq, d.dsrc = seq, src or frame
    if role == "c" then
        S.bytes_c = (S.bytes_c or 0) + #data
    else
        S.bytes_s = (S.bytes_s or 0) + #data
    end
    if S.tls_plain then
        tls_feed(S, role, data, frame, ts)  -- the records; their plaintext comes decrypted
    else
        protocol_bytes(S, role, data, frame, ts)
    end
end

-- Bytes of one direction are missing from the capture.
local function gap(S, role, nbytes)
    add_anomaly(S, "capture_gap")
    if role == "c" then
        if S.cmode == "data" and S.D then
            data_gap(S.D, nbytes)
        elseif S.cmode == "bdat" then
            bdat_gap(S, nbytes)
        elseif S.cmode == "tls" then
            if S.tlsw then S.tlsw.unknown = true end
        else
            line_lost(S.c)
        end
    else
        S.s_gap = true
        line_lost(S.s)
        S.reply_lines = {}
    end
end
M.gap = gap

-- At most this many segments wait out of order per direction (besides P.max_buffer bytes).
local MAX_OOO_SEGMENTS = 4096
M.MAX_OOO_SEGMENTS = MAX_OOO_SEGMENTS

-- Takes the buffered segment at sq off the buffer: its bytes and its frame.
local function take_ooo(d, sq)
    local seg, src = d.ooo[sq], d.ooo_frames[sq]
    d.ooo[sq], d.ooo_frames[sq] = nil, nil
    d.ooo_bytes = d.ooo_bytes - #seg
    d.ooo_count = d.ooo_count - 1
    return seg, src
end

-- Delivers buffered segments that are now in order; force: delivers every buffered segment,
-- the holes between them declared gaps (one sort of the buffer, not a scan of it per hole).
local function flush_ooo(S, role, frame, ts, force)
    local d = S[role]
    local ooo = d.ooo
    while ooo[d.next] do
        local sq = d.next
        local seg, src = take_ooo(d, sq)
        d.next = (sq + #seg) % MOD32
        deliver(S, role, seg, frame, ts, sq, src)
    end
    if not force or d.ooo_count == 0 then return end
    local base, keys, n = d.next, {}, 0
    for sq in pairs(ooo) do n = n + 1; keys[n] = sq end
    sort(keys, function(x, y) return seqdiff(x, base) < seqdiff(y, base) end)
    for i = 1, n do
        local sq = keys[i]
        if ooo[sq] then
            local dd = seqdiff(sq, d.next)
            if dd < 0 then
                take_ooo(d, sq)  -- starts inside bytes already delivered
            else
                if dd > 0 then
                    gap(S, role, dd)
                    d.next = sq
                end
                local seg, src = take_ooo(d, sq)
                d.next = (sq + #seg) % MOD32
                deliver(S, role, seg, frame, ts, sq, src)
            end
        end
    end
end
M.flush_ooo = flush_ooo

-- A segment ahead of the next expected byte: buffered ("ooo"), unless the buffer is full:
-- then what is buffered is delivered, the hole before seq is a gap, and nil says deliver it now.
local function ahead(S, role, d, seq, payload, frame, ts)
    local old = d.ooo[seq]
    if d.ooo_bytes + #payload > P.max_buffer or (not old and d.ooo_count >= MAX_OOO_SEGMENTS) then
        flush_ooo(S, role, frame, ts, true)
        local off = seqdiff(seq, d.next)
        if off > 0 then
            gap(S, role, off)
            d.next = seq
        end
        return nil
    end
    if #payload > 0 and not old then  -- (nothing captured of it, snap length: nothing to hold)
        d.ooo[seq], d.ooo_frames[seq] = payload, frame
        d.ooo_bytes = d.ooo_bytes + #payload
        d.ooo_count = d.ooo_count + 1
    elseif old and #old < #payload then
        d.ooo_bytes = d.ooo_bytes + #payload - #old
        d.ooo[seq] = payload
    end
    add_anomaly(S, "out_of_order")
    return "ooo"
end

-- One segment with payload of direction role; returns "retrans", "ooo" or "new".
function M.segment(S, role, seq, payload, tcplen, frame, ts)
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
        -- Bytes seen before: a retransmission of a credentials line carries them again.
        if d.cred and resends_credentials(d, seq, tcplen) then ann(S, frame).cred = true end
        if off + tcplen <= 0 then
            d.retrans_bytes = (d.retrans_bytes or 0) + tcplen
            return "retrans"
        end
        payload = payload:sub(1 - off)
        tcplen = tcplen + off
        seq = d.next
        off = 0
    end
    if off > 0 and ahead(S, role, d, seq, payload, frame, ts) then return "ooo" end
    if #payload < tcplen then
        deliver(S, role, payload, frame, ts, seq)
        d.next = (seq + #payload) % MOD32
        gap(S, role, tcplen - #payload)
        d.next = (seq + tcplen) % MOD32
    else
        d.next = (seq + tcplen) % MOD32
        deliver(S, role, payload, frame, ts, seq)
    end
    flush_ooo(S, role, frame, ts, false)
    return "new"
end

-- Full-size segments retransmitted with no ACK progress while small ones pass.
function M.mtu_check(S, role, seq, tcplen, kind, frame, ts)
    local d = S[role]
    if tcplen < P.mtu_min_size then return end
    if kind == "retrans" and d.big_seq == seq then
        d.big_count = d.big_count + 1
        if d.big_count >= P.mtu_retrans then
            local progressed = d.maxack and seqdiff(d.maxack, (seq + tcplen) % MOD32) >= 0
            if not progressed and S.greeted then
                finding(S, "mtu_blackhole", d.big_frame, d.big_ts,
                    format("%d-byte segment from the %s (first sent in frame %d) retransmitted %d times with no ACK progress while smaller segments got through (frame %d): path MTU black hole",
                        tcplen, side(role), d.big_frame, d.big_count, frame))
            end
        end
    elseif kind == "new" or (kind == "ooo") then
        if not d.big_seq or (d.maxack and seqdiff(d.maxack, d.big_seq) > 0) then
            d.big_seq, d.big_count, d.big_frame, d.big_ts = seq, 0, frame, ts
        end
    end
end

return M
