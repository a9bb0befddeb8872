-- smtpdiag.dns: DNS lookups for mail: MX queries, and A/AAAA queries of the exchangers the MX
-- answers named. A lookup (retransmissions included) is a conversation of its own, judged by
-- its answer's rcode and records, or by no answer within dns_timeout.
local M = {}

local prefs = require("smtpdiag.prefs")
local session = require("smtpdiag.session")
local util = require("smtpdiag.util")

local P = prefs.P
local sessions, new_session = session.sessions, session.new_session
local ann, add_anomaly, finding, enqueue_done = session.ann, session.add_anomaly, session.finding, session.enqueue_done
local drop_finding = session.drop_finding
local clean, values, addr_pair, clear = util.clean, util.values, util.addr_pair, util.clear
local format, concat, min = string.format, table.concat, math.min

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
local f_tcp_stream = Field.new("tcp.stream")

M.QTYPES = { [1] = "A", [15] = "MX", [28] = "AAAA" }
local QTYPES = M.QTYPES
local no_ipv6
local RCODES = { [0] = "NOERROR", [1] = "FORMERR", [2] = "SERVFAIL", [3] = "NXDOMAIN", [4] = "NOTIMP", [5] = "REFUSED" }
local RCODE_CAUSE = { [2] = "dns_servfail", [3] = "dns_nxdomain", [5] = "dns_refused" }

-- Names learned from MX answers: their A/AAAA lookups are mail lookups too. Two generations
-- of at most MAX_EXCHANGERS names each: when the newer fills, the older is dropped (a resolver
-- asks for an exchanger's address right after the MX answer, not hours later).
local MAX_EXCHANGERS = 50000
local exchangers, exchangers_old, n_exchangers = {}, {}, 0
local frames = {}       -- frame -> lookup
-- Unanswered lookups in query order (waiting[waiting.head .. waiting.tail]), for one-pass expiry.
local waiting = { head = 1, tail = 0 }
M.waiting = waiting
local by_tx, open = {}, {}  -- query ports+ID -> lookup; client+server+name+type -> latest lookup
local WRITTEN = {}  -- by_tx's mark for a lookup batch mode has written out: its late packets are dropped
-- The marks, oldest first (written[written.head .. written.tail], with the capture time each
-- was set): a mark goes after WRITTEN_LINGER seconds, or when more than MAX_WRITTEN are kept.
local written, written_ts = { head = 1, tail = 0 }, {}
local WRITTEN_LINGER, MAX_WRITTEN = 60, 20000

-- An exchanger without IPv6 is normal: names whose A lookup was answered with records, and AAAA
-- lookups answered with none while their name's A answer was not seen yet (name -> lookups).
local a_answered, aaaa_empty, n_answered = {}, {}, 0   -- (both forgotten beyond MAX_EXCHANGERS names)

function M.reset()
    exchangers, exchangers_old, n_exchangers = {}, {}, 0
    frames, by_tx, open = {}, {}, {}
    a_answered, aaaa_empty, n_answered = {}, {}, 0
    clear(waiting)
    waiting.head, waiting.tail = 1, 0
    written, written_ts = { head = 1, tail = 0 }, {}
end

local function learn_exchanger(name)
    if exchangers[name] then return end
    if n_exchangers >= MAX_EXCHANGERS then
        exchangers_old, exchangers, n_exchangers = exchangers, {}, 0
    end
    exchangers[name] = true
    n_exchangers = n_exchangers + 1
end

-- Marks set more than WRITTEN_LINGER seconds before capture time ts (or beyond MAX_WRITTEN) go.
local function expire_written(ts)
    local h = written.head
    while h <= written.tail and (ts - written_ts[h] > WRITTEN_LINGER or written.tail - h >= MAX_WRITTEN) do
        local k = written[h]
        if by_tx[k] == WRITTEN then by_tx[k] = nil end
        written[h], written_ts[h] = nil, nil
        h = h + 1
    end
    written.head = h
end

-- The lookup a frame belongs to (later passes).
function M.at_frame(frame)
    return frames[frame]
end

-- The lookup this query or response belongs to, a new one for a new query; nil when the frame
-- is no mail lookup or belongs to one already written out.
local function lookup_for(pinfo, id, name, qtype, is_resp, frame, ts)
    local src, dst = addr_pair(pinfo)
    local sp, dp = pinfo.src_port, pinfo.dst_port
    local cli, cport, srv, sport
    if is_resp then cli, cport, srv, sport = dst, dp, src, sp else cli, cport, srv, sport = src, sp, dst, dp end
    -- A response belongs to the query with its ports and ID; a query repeated (new port or ID,
    -- as resolvers retry) within the timeout of an unanswered one is a retransmission.
    local txkey = concat({ "dnsq", cli, cport, srv, sport, id, name, qtype }, "|")
    local lkey = concat({ "dnsl", cli, srv, name, qtype }, "|")
    local L = by_tx[txkey]
    if L == WRITTEN then return nil end
    if not L and not is_resp then
        local prev = open[lkey]
        if prev and not prev.answered and ts - (prev.last_query_ts or ts) <= P.dns_timeout then L = prev end
    end
    if not L then
        local us = f_udp_stream()
        local st = us and us.value or (f_tcp_stream() and f_tcp_stream().value) or 0
        L = new_session(st, frame, ts)
        L.kind = "dns"
        L.cli, L.cport, L.srv, L.sport = cli, cport, srv, sport
        L.query, L.qtype, L.queries, L.answers = clean(name, 255), qtype, 0, {}
        L.key, L.lkey, L.txkeys = txkey, lkey, {}
        sessions[txkey] = L
    end
    if by_tx[txkey] ~= L then L.txkeys[#L.txkeys + 1] = txkey end
    by_tx[txkey] = L
    if not is_resp then open[lkey] = L end
    return L
end

local function on_query(L, a, frame, ts)
    L.queries = L.queries + 1
    a.role = "c"
    if L.queries == 1 then
        L.first_query_ts = ts
        waiting.tail = waiting.tail + 1
        waiting[waiting.tail] = L
    end
    L.last_query_ts, L.last_query_frame = ts, frame
end

-- An AAAA lookup answered without records for a name whose A lookup was answered: the exchanger
-- has no IPv6 address, which is normal.
no_ipv6 = function(L, frame)
    add_anomaly(L, "dns_no_aaaa")
    L.ok_detail = format("AAAA %s answered with no records (frame %d): no IPv6 address; its A lookup was answered",
        L.query, frame or 0)
end

-- The first response: rcode, records of the queried type, the verdict.
local function on_response(L, a, qtype, frame, ts, mx)
    a.role = "s"
    L.answered = true
    L.answer_frame = frame
    if P.batch then enqueue_done(L, ts) end
    local rf, nf = f_dns_rcode(), f_dns_count_answers()
    local rcode = rf and rf.value or 0
    L.rcode = RCODES[rcode] or tostring(rcode)
    local nans = nf and nf.value or 0
    local types = values(f_dns_resp_type)
    local typed = 0
    for i = 1, min(nans, #types) do
        if types[i] == qtype then typed = typed + 1 end
    end
    local shown = qtype == 15 and (mx or values(f_dns_mx)) or (qtype == 1 and values(f_dns_a) or values(f_dns_aaaa))
    for i = 1, min(#shown, 20) do L.answers[#L.answers + 1] = clean(tostring(shown[i]), 255) end
    if L.first_query_ts then
        L.latency = ts - L.first_query_ts
        a.latency = L.latency
    end
    local q = format("%s %s", QTYPES[qtype] or qtype, L.query)
    local cause = RCODE_CAUSE[rcode] or (rcode ~= 0 and "dns_servfail") or (typed == 0 and "dns_no_answer") or nil
    if cause == "dns_no_answer" and qtype == 28 and a_answered[L.query] then
        no_ipv6(L, frame)
    elseif cause then
        finding(L, cause, frame, ts, format("%s answered %s with %d %s record%s by %s (frame %d)",
            q, L.rcode, typed, QTYPES[qtype] or "", typed == 1 and "" or "s", L.srv or "?", frame))
        if cause == "dns_no_answer" and qtype == 28 then
            local w = aaaa_empty[L.query] or {}
            aaaa_empty[L.query] = w
            if #w < 100 then w[#w + 1] = L end
        end
    else
        L.ok_detail = format("%s answered with %d record%s in %.3f s (frame %d)", q, typed,
            typed == 1 and "" or "s", L.latency or 0, frame)
        if qtype == 1 then
            if not a_answered[L.query] then
                n_answered = n_answered + 1
                if n_answered > MAX_EXCHANGERS then a_answered, aaaa_empty, n_answered = {}, {}, 1 end
            end
            a_answered[L.query] = true
            for _, X in ipairs(aaaa_empty[L.query] or {}) do
                drop_finding(X, "dns_no_answer")
                no_ipv6(X, X.answer_frame)
            end
            aaaa_empty[L.query] = nil
        end
    end
end

-- A DNS frame (first pass): the mail lookup it belongs to, updated; nil when it is none.
function M.process(pinfo, frame, ts)
    local idf = f_dns_id()
    if not idf then return nil end
    local qn, qt = f_dns_qname(), f_dns_qtype()
    if not qn or not qt then return nil end
    local name = tostring(qn.value):lower():sub(1, 255)
    local qtype = qt.value
    local rf = f_dns_response()
    local is_resp = rf and rf.value
    local mx
    if is_resp and qtype == 15 then
        mx = values(f_dns_mx)
        for _, x in ipairs(mx) do learn_exchanger(tostring(x):lower()) end
    end
    if qtype ~= 15 and not ((qtype == 1 or qtype == 28) and (exchangers[name] or exchangers_old[name])) then
        return nil
    end
    local L = lookup_for(pinfo, idf.value, name, qtype, is_resp, frame, ts)
    if not L then return nil end
    L.view = nil
    L.cur_frame, L.cur_ts = frame, ts
    L.last_frame, L.last_ts = frame, ts
    if not P.batch then frames[frame] = L end
    local a = ann(L, frame)
    if not is_resp then
        on_query(L, a, frame, ts)
    elseif not L.answered then
        on_response(L, a, qtype, frame, ts, mx)
    else
        add_anomaly(L, "duplicate_response")
    end
    return L
end

-- Batch mode wrote the lookup at capture time ts: its index entries go (its late packets are
-- dropped for WRITTEN_LINGER seconds).
function M.forget(L, ts)
    ts = ts or L.last_ts
    for _, k in ipairs(L.txkeys) do
        if by_tx[k] == L then
            by_tx[k] = WRITTEN
            local t = written.tail + 1
            written.tail, written[t], written_ts[t] = t, k, ts
        end
    end
    if open[L.lkey] == L then open[L.lkey] = nil end
    expire_written(ts)
end

-- The lookup got no answer: dns_no_response, decided at frame.
local function unanswered(L, frame, why)
    finding(L, "dns_no_response", L.first_frame, L.first_query_ts or L.first_ts,
        format("%s %s to %s sent %d time%s (frames %d-%d), no answer; %s (frame %d)",
            QTYPES[L.qtype] or L.qtype, L.query, L.srv or "?", L.queries, L.queries == 1 and "" or "s",
            L.first_frame, L.last_query_frame or L.first_frame, why, frame))
    if not P.batch then L.decided[frame] = true end
end

-- The capture ended (at its last frame) with the lookup open.
function M.finish_at_capture_end(L, last_frame)
    L.done = true
    if not L.answered and not L.anomaly_set.dns_no_response then
        unanswered(L, last_frame, "the capture ended")
    end
end

-- One pass: lookups still unanswered dns_timeout seconds after their last query are decided
-- on the current frame; returns them (nil when none).
function M.expire(frame, ts)
    local limit = P.dns_timeout
    local out
    while waiting[waiting.head] do
        local L = waiting[waiting.head]
        if L.answered then
            waiting[waiting.head] = nil
            waiting.head = waiting.head + 1
        elseif ts - (L.last_query_ts or ts) > limit then
            waiting[waiting.head] = nil
            waiting.head = waiting.head + 1
            L.expired_at = frame
            unanswered(L, frame, format("%d s passed", limit))
            if P.batch then enqueue_done(L, ts) end
            out = out or {}
            out[#out + 1] = L
        else
            return out
        end
    end
    return out
end

return M
