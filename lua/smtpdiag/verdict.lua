-- smtpdiag.verdict: a conversation's verdict from what the stages recorded. The root cause is
-- the earliest finding (by frame, then by the order found); with none, a capture missing parts
-- of the conversation is "incomplete", anything else "ok".
local M = {}

local session = require("smtpdiag.session")

local add_anomaly = session.add_anomaly
local format, concat = string.format, table.concat

-- The earliest finding, or nil.
function M.root_cause(S)
    local best
    for _, f in ipairs(S.findings) do
        if not best or f.frame < best.frame or (f.frame == best.frame and f.seq < best.seq) then best = f end
    end
    return best
end
local root_cause = M.root_cause

local function is_incomplete(S)
    local an = S.anomaly_set
    return an.one_sided or an.midstream or an.truncated_packets or (an.capture_gap and S.gap_unjudged)
end

local function incomplete_detail(S)
    local why = {}
    if S.anomaly_set.one_sided then why[#why + 1] = "only one direction of the connection is in the capture" end
    if S.anomaly_set.midstream then why[#why + 1] = "the capture starts in the middle of the session (no SYN, no greeting)" end
    if S.anomaly_set.truncated_packets then why[#why + 1] = "packets are cut short by the capture's snap length" end
    return concat(why, "; ")
end

local function ok_detail(S)
    if S.kind == "dns" then
        return S.ok_detail or "no failure found"
    elseif S.kind == "pop" or S.kind == "imap" then
        return (S.auth_ok and ("logged in" .. (S.user and (" as " .. S.user) or "")) or "no failure found")
            .. (S.implicit_tls and (S.tls_plain and "; implicit TLS, decrypted" or "; implicit TLS, transport checked only")
                or (S.tls and (S.tls_plain and "; STARTTLS, decrypted" or "; STARTTLS") or ""))
    elseif S.messages > 0 then
        return format("%d message%s accepted", S.messages, S.messages > 1 and "s" or "")
    end
    return "no failure found"
end

-- data_terminated over the session: false if any DATA phase ended otherwise, true if all ended
-- properly, nil without a DATA phase (smtp_data keeps the counts).
local function data_terminated(S)
    if S.D or (S.n_unterminated or 0) > 0 then return false end
    if (S.n_terminated or 0) > 0 then return true end
    return nil
end

-- { cause, detail, data_terminated, terminator }, cached until the session changes.
function M.verdict(S)
    local key = #S.findings .. ":" .. #S.anomalies .. ":" .. S.messages .. ":" .. #S.txns .. ":" .. tostring(S.D ~= nil) .. tostring(S.done)
    if S.verdict_cache and S.verdict_cache.key == key then
        return S.verdict_cache
    end
    local best = root_cause(S)
    local v = {}
    if best then
        v.cause, v.detail = best.code, best.detail
    elseif is_incomplete(S) then
        v.cause, v.detail = "incomplete", incomplete_detail(S)
    else
        v.cause, v.detail = "ok", ok_detail(S)
    end
    if v.cause == "incomplete" then add_anomaly(S, "incomplete") end
    v.data_terminated = data_terminated(S)
    v.terminator = S.terminator
    v.key = key
    S.verdict_cache = v
    return v
end

return M
