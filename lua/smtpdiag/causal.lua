-- smtpdiag.causal: capture order is not causal order. Mirror ports and multi-queue NICs record
-- an ACK (or a reply) before the segment it acknowledges: a side that acknowledged peer bytes
-- the capture has not shown yet waits a few packets for them, its own data held back meanwhile
-- (a reply is never read before the command it answers); bytes still missing then are a gap.
local M = {}

local tcp = require("smtpdiag.tcp")
local util = require("smtpdiag.util")

local segment, mtu_check, flush_ooo, gap = tcp.segment, tcp.mtu_check, tcp.flush_ooo, tcp.gap
local seqdiff = util.seqdiff
local rawget = rawget

-- Packets of the session within which acknowledged bytes may still arrive.
M.WINDOW = 32

-- One segment's payload to the session's protocol, in sequence order.
local function data_segment(S, role, seq, payload, tcplen, frame, ts)
    local kind = segment(S, role, seq, payload, tcplen, frame, ts)
    mtu_check(S, role, seq, tcplen, kind, frame, ts)
    local a = rawget(S.ann, frame)
    if a then a.state = S.phase end
    if kind ~= "retrans" then S.last_data_role = role end
end

-- The peer (prole) of the acknowledging side has bytes up to its maxack the capture has not shown.
function M.acked_unseen(S, prole)
    if not S.ack_wait then
        S.ack_wait = { role = prole, target = S[prole].maxack, pkts = S.c.pkts + S.s.pkts, held = {} }
    end
end

-- A segment with payload from role: delivered, or held while role waits for its peer's bytes.
function M.data(S, role, seq, payload, tcplen, frame, ts)
    local W = S.ack_wait
    if W and W.role ~= role then
        W.held[#W.held + 1] = { seq = seq, payload = payload, tcplen = tcplen, frame = frame, ts = ts }
    else
        data_segment(S, role, seq, payload, tcplen, frame, ts)
    end
end

-- Ends the wait once the acknowledged bytes came, or (force: a FIN, RST or the session's end;
-- or WINDOW packets later) declares them a capture gap; then delivers what was held.
function M.settle(S, frame, ts, force)
    local W = S.ack_wait
    if not W then return end
    local peer = S[W.role]
    local missing = peer.next and seqdiff(W.target, peer.next) or 0
    if missing > 0 and not force and S.c.pkts + S.s.pkts - W.pkts <= M.WINDOW then return end
    S.ack_wait = nil
    if missing > 0 then
        if peer.ooo_bytes > 0 then flush_ooo(S, W.role, frame, ts, true) end
        missing = seqdiff(W.target, peer.next)
        if missing > 0 and missing < 1073741824 and not (peer.fin and missing == 1) then
            gap(S, W.role, missing)
            peer.next = W.target
        end
    end
    local acker = W.role == "c" and "s" or "c"
    for _, h in ipairs(W.held) do data_segment(S, acker, h.seq, h.payload, h.tcplen, h.frame, h.ts) end
end

return M
