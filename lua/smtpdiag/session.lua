-- smtpdiag.session: one conversation's state (a TCP mail session or a DNS lookup), the
-- registry of open ones, and what every stage records on it: findings, anomalies, per-frame
-- annotations, transactions, the queue of commands awaiting a reply.
local M = {}

local prefs = require("smtpdiag.prefs")
local util = require("smtpdiag.util")

local clear, seqdiff, MOD32 = util.clear, util.seqdiff, util.MOD32

local P = prefs.P
local format, floor = string.format, math.floor
local rawget = rawget

-- Open conversations by key (tcp.stream, "stream#generation" for an older one on the same
-- stream, or a DNS transaction key). It lives as long as the plugin: reset() empties it.
M.sessions = {}

-- tcp.streams already written out in batch mode (their trailing packets are dropped): two
-- generations of at most MAX_TOMBSTONES each, the older dropped when the newer fills.
local MAX_TOMBSTONES = 100000
local tombstones, old_tombstones, n_tombstones = {}, {}, 0

function M.bury(stream)
    if tombstones[stream] then return end
    if n_tombstones >= MAX_TOMBSTONES then
        old_tombstones, tombstones, n_tombstones = tombstones, {}, 0
    end
    tombstones[stream] = true
    n_tombstones = n_tombstones + 1
end

function M.buried(stream)
    return tombstones[stream] or old_tombstones[stream] or false
end

function M.unbury(stream)
    tombstones[stream], old_tombstones[stream] = nil, nil
end

-- Batch mode: ended conversations wait here, oldest first (done[done.head .. done.tail], each
-- { S = session, ts = capture time it ended }) for their trailing packets, then are written out.
local done = { head = 1, tail = 0 }
M.done = done

function M.reset()
    clear(M.sessions)
    tombstones, old_tombstones, n_tombstones = {}, {}, 0
    clear(done)
    done.head, done.tail = 1, 0
end

function M.enqueue_done(S, ts)
    if S.queued then return end
    S.queued = true
    done.tail = done.tail + 1
    done[done.tail] = { S = S, ts = ts }
end

-- Keep an ended session for its trailing packets for 60 s of capture time, but never more
-- than 1000 ended sessions at once (dense captures cover few seconds).
local function due(e, ts)
    return ts - e.ts >= 60 or done.tail - done.head >= 1000
end

-- Whether the oldest ended session is due at capture time ts.
function M.done_due(ts)
    local e = done[done.head]
    return e and due(e, ts) or false
end

-- The oldest ended session if it is due at ts (or if all), taken off the queue; nil when none.
function M.next_done(ts, all)
    local e = done[done.head]
    if not e or not (all or due(e, ts)) then return nil end
    done[done.head] = nil
    done.head = done.head + 1
    return e.S
end

local f_frame_time = Field.new("frame.time")

-- The current frame's time as exact epoch seconds with microseconds (pinfo.abs_ts is a double).
local function frame_time_text()
    local t = f_frame_time().value
    return format("%d.%06d", t.secs, floor(t.nsecs / 1000))
end

function M.exact_time(fallback)
    local ok, s = pcall(frame_time_text)
    return ok and s or format("%.6f", fallback or 0)
end
local exact_time = M.exact_time

local function new_dir()
    return { next = nil, ooo = {}, ooo_frames = {}, ooo_bytes = 0, ooo_count = 0, fin = false, rst = false, pkts = 0, bytes = 0,
             maxack = nil, big_seq = nil, big_count = 0, line = "" }
end

function M.new_session(stream, frame, ts)
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

-- Batch mode renders no frame: annotations (a fixed set of scalar keys) go to one scratch table.
local batch_sink = {}

-- The annotations of one frame of the session (rendered on that frame on later passes).
function M.ann(S, frame)
    if P.batch then return batch_sink end
    local a = rawget(S.ann, frame)
    if not a then
        a = {}
        local parent = S.ann_parent and S.ann_parent[frame]
        if parent then for k, v in pairs(parent) do a[k] = v end end
        S.ann[frame] = a
    end
    return a
end
local ann = M.ann

-- Appends to a list of the frame's annotations, up to max entries if given (rendered on later
-- passes; batch mode keeps none).
function M.ann_append(S, frame, key, x, max)
    if P.batch then return end
    local a = ann(S, frame)
    local l = a[key]
    if not l then l = {}; a[key] = l end
    if not max or #l < max then l[#l + 1] = x end
end

-- Credentials. A line may come in several segments: d.lfr lists the frames that carried bytes
-- of the line being assembled in direction d, d.lseq is the sequence number of its first byte
-- (d.dseq and d.dsrc: those of the bytes being read, set by the TCP layer). A credentials line
-- flags every such frame, and its sequence range is kept (d.cred) so that a retransmission of
-- it is flagged too. Batch mode flags no frame: none of this is kept there.
local MAX_LINE_FRAMES, MAX_CRED_RANGES = 4096, 32
local NONE = {}

-- A line is about to be read from position pos of the bytes being read.
function M.line_begin(d, pos)
    if d.line == "" then
        d.lfr = nil
        d.lseq = d.dseq and (d.dseq + pos - 1) % MOD32 or nil
    end
end

-- The rest of the bytes being read was buffered: the line goes on in a later segment.
-- sure: the line is credentials whatever follows (flagged now, for one-pass runs too).
function M.line_part(S, d, sure)
    local f = d.dsrc
    if P.batch or not f then return end
    local l = d.lfr
    if not l then l = {}; d.lfr = l end
    if l[#l] ~= f then
        if #l < MAX_LINE_FRAMES then l[#l + 1] = f else sure = true end
    end
    if sure then ann(S, f).cred = true end
end

-- The line that ends at position after of the bytes being read (received in frame) is
-- credentials: every frame that carried a byte of it is flagged.
function M.cred_line(S, d, frame, after)
    if P.batch then return end
    ann(S, frame).cred = true
    if d.dsrc then ann(S, d.dsrc).cred = true end
    for _, f in ipairs(d.lfr or NONE) do ann(S, f).cred = true end
    if d.lseq and d.dseq and after then
        local r = d.cred
        if not r then r = {}; d.cred = r end
        if #r >= MAX_CRED_RANGES then table.remove(r, 1) end
        r[#r + 1] = { d.lseq, (d.dseq + after - 1) % MOD32 }
    end
end

-- Whether len bytes from seq overlap a credentials line of direction d seen before.
function M.resends_credentials(d, seq, len)
    local e = (seq + len) % MOD32
    for _, r in ipairs(d.cred) do
        if seqdiff(e, r[1]) > 0 and seqdiff(r[2], seq) > 0 then return true end
    end
    return false
end

-- A capture gap: the line being assembled in direction d is lost.
function M.line_lost(d)
    d.line, d.lfr, d.lseq = "", nil, nil
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

function M.session_view(S)
    local memo = { [S.ann] = setmetatable({}, { __index = S.ann }),
                   [S.decided] = setmetatable({}, { __index = S.decided }) }
    local V = deep_copy(S, memo)
    V.ann_parent = S.ann
    return V
end

function M.add_anomaly(S, code)
    if not S.anomaly_set[code] then
        S.anomaly_set[code] = true
        S.anomalies[#S.anomalies + 1] = code
    end
end
local add_anomaly = M.add_anomaly

-- A finding: a candidate failure cause with its evidence.
function M.finding(S, code, frame, ts, detail)
    for _, f in ipairs(S.findings) do
        if f.code == code then return f end
    end
    local f = { code = code, frame = frame, ts = ts, detail = detail, seq = #S.findings + 1 }
    S.findings[#S.findings + 1] = f
    add_anomaly(S, code)
    if not P.batch then S.decided[S.cur_frame or frame] = true end
    return f
end

function M.drop_finding(S, code)
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

-- Transactions follow Zeek's smtp.log: a record per MAIL (or first RCPT/STARTTLS),
-- depth = messages transferred so far + 1, closed by the reply to end of data.
function M.txn_begin(S, frame)
    S.txn = { depth = S.msgs_done + 1, mailfrom = nil, rcpt = {}, last_reply = nil, terminated = nil,
              bytes = nil, cause = nil, first_frame = frame, last_frame = frame, bdat = false,
              start = S.cur_ts, start_str = exact_time(S.cur_ts), activity = false }
    S.txns[#S.txns + 1] = S.txn
    return S.txn
end
local txn_begin = M.txn_begin

function M.txn_current(S, frame)
    return S.txn or txn_begin(S, frame)
end

function M.txn_cause(S, code)
    local t = S.txn
    if t and not t.cause then t.cause = code end
end

-- Commands awaiting their reply, in order. A client may pipeline any number of commands
-- without reading a reply: the first PENDING_KEEP are stored one by one; beyond that a command
-- of the same verb (and mark) as the last one stored only counts on it (a run), and beyond
-- PENDING_MAX stored entries every command counts on the last one. Memory stays bounded and
-- every reply still pops the command it answers (a run's commands share their first frame).
local PENDING_KEEP, PENDING_MAX = 1000, 5000
M.PENDING_KEEP, M.PENDING_MAX = PENDING_KEEP, PENDING_MAX

-- mark: nil, or what the reply must know of the command ("bdat_last", "multi").
function M.push_pending(S, verb, arg, frame, ts, mark)
    local stored = S.qt - S.qh + 1
    if stored > PENDING_KEEP then
        local last = S.pending[S.qt]
        if last and ((last.verb == verb and last.mark == mark) or stored >= PENDING_MAX) then
            last.count = (last.count or 1) + 1
            return
        end
    end
    S.qt = S.qt + 1
    S.pending[S.qt] = { verb = verb, arg = arg, frame = frame, ts = ts, mark = mark }
end

function M.pop_pending(S)
    local e = S.pending[S.qh]
    if e and e.count and e.count > 1 then
        -- One command of a run: its own copy, the run keeps the rest.
        e.count = e.count - 1
        local arg = e.arg
        e.arg = nil  -- the others' arguments were not kept
        return { verb = e.verb, arg = arg, frame = e.frame, ts = e.ts, mark = e.mark }
    end
    if e then
        S.pending[S.qh] = nil
        S.qh = S.qh + 1
    end
    return e
end

return M
