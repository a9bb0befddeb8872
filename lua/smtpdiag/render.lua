-- smtpdiag.render: a conversation as fields. The verdict and summary items are listed once
-- (each_verdict_item, each_summary_item) for both consumers: the protocol tree (every pass but
-- batch mode) and the summary file. Per-frame annotations and expert infos go to the tree only.
local M = {}

local anonymise = require("smtpdiag.anonymise")
local dns = require("smtpdiag.dns")
local fields = require("smtpdiag.fields")
local prefs = require("smtpdiag.prefs")
local util = require("smtpdiag.util")
local plugin_version = require("smtpdiag.version").version
local verdict_of = require("smtpdiag.verdict").verdict

local F, U64, REL, NAME, EXPERT = fields.F, fields.U64, fields.REL, fields.NAME, fields.EXPERT
local P = prefs.P
local QTYPES = dns.QTYPES
local clean, u64, addr_pair = util.clean, util.u64, util.addr_pair
local nstime, duration_text, utc_text = util.nstime, util.duration_text, util.utc_text
local format, concat = string.format, table.concat
local pseudonym, scrub, names_of = anonymise.pseudonym, anonymise.scrub, anonymise.names_of

-- Free text of session S as written: with smtpdiag.anonymise, no address or name of a person.
local function text_of(S, s)
    if P.anonymise then return scrub(s, names_of(S)) end
    return s
end

-- A person's name or address as written: with smtpdiag.anonymise, its pseudonym.
local function name_of(s)
    if P.anonymise then return pseudonym(s) end
    return s
end

-- The verdict as (field, value) pairs handed to emit: on every frame in two-pass mode, and in the summary file.
function M.each_verdict_item(S, v, emit)
    if S.kind == "smtp" then
        if v.data_terminated ~= nil then emit(F.data_terminated, v.data_terminated) end
        emit(F.smtp_cause, v.cause)
    end
    emit(F.cause, v.cause)
    for _, code in ipairs(S.anomalies) do emit(F.anomalies, code) end
    emit(F.detail, text_of(S, v.detail or ""))
end
local each_verdict_item = M.each_verdict_item

local function mailbox_items(S, add)
    if S.user then add(F.mbox_user, name_of(S.user)) end
    local parts = {}
    for _, verb in ipairs(S.cmd_order or {}) do parts[#parts + 1] = verb .. "=" .. S.cmd_counts[verb] end
    add(F.mbox_commands, concat(parts, ","))
end

local function dns_items(S, add)
    add(F.dns_query, S.query or "")
    add(F.dns_qtype, QTYPES[S.qtype] or tostring(S.qtype))
    add(F.dns_rcode, S.rcode or "")
    for _, x in ipairs(S.answers or {}) do add(F.dns_answers, x) end
    if S.latency then add(F.dns_latency, S.latency) end
    add(F.dns_queries, S.queries or 0)
end

-- Each transaction with activity, its values once per transaction.
local function transaction_items(S, add)
    for _, x in ipairs(S.txns) do
        if x.activity then
            add(F.txn_depth, x.depth)
            add(F.txn_mailfrom, name_of(clean(x.mailfrom or "", 200)))
            if P.anonymise then
                local hashed = {}
                for i, r in ipairs(x.rcpt) do hashed[i] = pseudonym(r) end
                add(F.txn_rcptto, concat(hashed, ","))
            else
                add(F.txn_rcptto, concat(x.rcpt, ","))
            end
            add(F.txn_last_reply, text_of(S, x.last_reply or ""))
            add(F.txn_terminated, x.had_data and (x.terminated == true and "true" or (x.terminated == false and "false" or "")) or "")
            add(F.txn_bytes, x.bytes or 0)
            add(F.txn_cause, x.cause or "ok")
            add(F.txn_first_frame, x.first_frame)
            add(F.txn_last_frame, x.last_frame)
            add(F.txn_start, x.start_str or S.start_str or format("%.6f", x.start or S.first_ts))
            add(F.txn_tls, x.tls and true or false)
        end
    end
end

-- A session's summary as (field, value) pairs handed to add; transaction values repeat once per
-- transaction. In the tree (in_tree) the smuggling flag stays on the frames that carry the sequence.
function M.each_summary_item(S, terminator, add, in_tree)
    add(F.session_end, true)
    add(F.version, plugin_version)
    if terminator then add(F.terminator, terminator) end
    if S.anomaly_set.smuggling_suspect and not in_tree then add(F.smuggling, true) end
    add(F.first_frame, S.first_frame)
    add(F.last_frame, S.last_frame)
    add(F.start, S.start_str or format("%.6f", S.first_ts))
    add(F.duration, S.last_ts - S.first_ts)
    add(F.client, S.cli or "")
    add(F.client_port, S.cport or 0)
    add(F.server, S.srv or "")
    add(F.server_port, S.sport or 0)
    if S.helo then add(F.helo, name_of(S.helo)) end
    add(F.messages, S.messages)
    if S.last_reply then add(F.last_reply, text_of(S, S.last_reply)) end
    add(F.tls, S.tls and true or false)
    add(F.bytes_client, S.bytes_c or 0)
    add(F.bytes_server, S.bytes_s or 0)
    if S.kind == "pop" or S.kind == "imap" then
        mailbox_items(S, add)
    elseif S.kind == "dns" then
        dns_items(S, add)
    end
    transaction_items(S, add)
end
local each_summary_item = M.each_summary_item

-- Adds field f with value x to tree item t: durations as relative times labelled with ms
-- precision, start times labelled in UTC, uint64 values as UInt64. Returns the item.
local function add_item(t, f, x)
    if REL[f] then
        return t:add(f, nstime(x)):set_text(NAME[f] .. ": " .. duration_text(x))
    elseif f == F.start or f == F.txn_start then
        return t:add(f, x):set_text(NAME[f] .. ": " .. utc_text(x))
    elseif f == F.txn_terminated then   -- a string (empty when unknown), shown like the booleans
        return t:add(f, x):set_text(NAME[f] .. ": " .. (x == "true" and "True" or x == "false" and "False" or "unknown"))
    elseif U64[f] then
        return t:add(f, u64(x))
    end
    return t:add(f, x)
end

-- Whether the frame being rendered has a tree someone sees (the details pane, -V, -T fields).
-- A tree nobody sees (filtering, the packet list's columns, colouring) gets only the fields a
-- filter, column or colouring rule references: the others would be built and thrown away.
local shown = true

local function wanted(t, f)
    return shown or t:referenced(f)
end

-- Whether tree (one nobody sees) has a filter, column, colouring rule or tap that references the
-- plugin or any of its fields (Wireshark marks a protocol referenced through its fields).
local handle = nil
local function referenced(tree)
    if handle == nil then
        local ok, h = pcall(Dissector.get, "smtpdiag")
        handle = ok and h or false
    end
    return not handle or tree:referenced(handle)
end

-- An adder of generated items to tree item t.
local function generated_adder(t)
    return function(f, x)
        if wanted(t, f) then add_item(t, f, x):set_generated() end
    end
end

local function render_frame_annotations(t, a)
    if a.state and wanted(t, F.state) then t:add(F.state, a.state) end
    if a.cmds and wanted(t, F.command) then for _, c in ipairs(a.cmds) do t:add(F.command, c) end end
    if a.replies then
        local code, to, to_frame, latency = wanted(t, F.reply_code), wanted(t, F.reply_to),
            wanted(t, F.reply_to_frame), wanted(t, F.reply_latency)
        for _, r in ipairs(a.replies) do
            if r.code and code then t:add(F.reply_code, r.code) end
            if r.to and to then t:add(F.reply_to, clean(r.to, 32)) end
            if r.to_frame and to_frame then t:add(F.reply_to_frame, r.to_frame) end
            if r.latency and latency then add_item(t, F.reply_latency, r.latency) end
        end
    end
    if a.greeting_latency and wanted(t, F.greeting_latency) then add_item(t, F.greeting_latency, a.greeting_latency) end
    if a.status and wanted(t, F.status) then for _, x in ipairs(a.status) do t:add(F.status, x) end end
    if a.latency and wanted(t, F.dns_latency) then add_item(t, F.dns_latency, a.latency) end
    if a.terminator and wanted(t, F.terminator) then t:add(F.terminator, a.terminator) end
    if a.smuggling and wanted(t, F.smuggling) then t:add(F.smuggling, true) end
    if a.cred and wanted(t, F.credentials) then t:add(F.credentials, true) end
    if a.data_bytes and wanted(t, F.data_bytes) then t:add(F.data_bytes, u64(a.data_bytes)) end
    if a.data_duration and wanted(t, F.data_duration) then add_item(t, F.data_duration, a.data_duration) end
    if a.final_latency and wanted(t, F.final_latency) then add_item(t, F.final_latency, a.final_latency) end
end

local function render_summary(S, t, v)
    local a = S.ann[S.last_frame]
    local term = v.terminator
    if a and a.terminator then term = nil end  -- the frame already carries its own
    each_summary_item(S, term, generated_adder(t), true)
end

-- The findings shown on frame: decided on it (first pass), or whose evidence is in it. Returns
-- whether any was shown.
local function add_experts(S, t, frame, only_decided_now)
    local any = false
    for _, f in ipairs(S.findings) do
        local show
        if only_decided_now then show = f.decided_at == frame else show = f.frame == frame end
        if show and EXPERT[f.code] then
            t:add_proto_expert_info(EXPERT[f.code], f.code .. ": " .. text_of(S, f.detail))
            any = true
        end
    end
    return any
end

-- The collapsed tree names the verdict: "SMTP diagnosis: data_timeout — 354 at frame 20, ...".
local function label_text(S, v)
    local detail = text_of(S, v.detail or "")
    if #detail > 120 then detail = detail:sub(1, 117) .. "..." end
    return detail ~= "" and ("SMTP diagnosis: " .. v.cause .. " — " .. detail) or ("SMTP diagnosis: " .. v.cause)
end

-- Later passes show the same verdict on every frame of a session: its label, items and evidence
-- frames are worked out once per state of the first pass (gen: frames it has read).
local function later_pass_view(S, gen)
    local c = S.render_cache
    if c and c.gen == gen then return c end
    local v = verdict_of(S)
    local items = {}
    each_verdict_item(S, v, function(f, x)
        items[#items + 1] = f
        items[#items + 1] = x
    end)
    local evidence = {}
    for _, f in ipairs(S.findings) do
        if EXPERT[f.code] then evidence[f.frame] = true end
    end
    c = { gen = gen, v = v, label = label_text(S, v), items = items, evidence = evidence }
    S.render_cache = c
    return c
end

-- The sender's role on this frame: annotated, or by ports, or by address.
local function frame_role(S, pinfo, a)
    local role = a and a.role
    if not role and S.kind ~= "dns" then
        local sp = pinfo.src_port
        if sp == S.cport and sp ~= S.sport then role = "c"
        elseif sp == S.sport and sp ~= S.cport then role = "s"
        else role = (addr_pair(pinfo) == S.cli) and "c" or "s" end
    end
    return role
end

-- " [cause]" after Info on a failing session's frames: all of them, or its evidence frames.
local function info_suffix(pinfo, cause, evidence)
    local info = P.info_cause
    if cause ~= "ok" and (info == "all" or (info == "evidence" and evidence)) then
        pcall(function() pinfo.cols.info:append(" [" .. cause .. "]") end)
    end
end

local DEGRADED = "two-pass run without a display filter: the first pass had no fields, verdicts are one-pass (add -Y smtpdiag)"

-- The session's fields on frame: on the first pass what the frame decided, on later passes the
-- whole verdict (and the summary on its last frame). degraded: tshark -2 built no first-pass tree;
-- gen: how many frames the first pass has read (later passes reuse what they worked out for it).
function M.render(S, pinfo, tree, frame, first_pass, degraded, gen)
    if P.summary_only and not first_pass and frame ~= S.last_frame then return end
    shown = tree.visible
    local later = not first_pass and not degraded
    local c = later and later_pass_view(S, gen or 0) or nil
    if not shown and not referenced(tree) then
        -- No filter, column, colouring rule or tap asks for one of the plugin's fields: only the
        -- expert infos (expert filters, the Expert Information dialog) and Info are kept.
        if c then
            local evidence = c.evidence[frame]
            if evidence then add_experts(S, tree:add(fields.proto, c.label), frame, false) end
            info_suffix(pinfo, c.v.cause, evidence)
        elseif S.decided[frame] then
            add_experts(S, tree:add(fields.proto, "SMTP diagnosis"), frame, true)
        end
        return
    end
    local t
    if c then
        t = tree:add(fields.proto, c.label)
    elseif S.decided[frame] then
        t = tree:add(fields.proto, label_text(S, verdict_of(S)))
    else
        t = tree:add(fields.proto, "SMTP diagnosis")
    end
    if wanted(t, F.proto) then t:add(F.proto, S.kind or "smtp"):set_generated() end
    if wanted(t, F.stream) then t:add(F.stream, S.stream):set_generated() end
    local a = S.ann[frame]
    if wanted(t, F.role) then
        local role = frame_role(S, pinfo, a)
        if role then t:add(F.role, role == "c" and "client" or "server"):set_generated() end
    end
    if a then render_frame_annotations(t, a) end
    if degraded then
        t:add(F.warning, DEGRADED):set_generated()
    end
    if c then
        local items = c.items
        for i = 1, #items, 2 do
            local f = items[i]
            if wanted(t, f) then add_item(t, f, items[i + 1]):set_generated() end
        end
        local evidence = c.evidence[frame]
        if evidence then add_experts(S, t, frame, false) end
        if frame == S.last_frame then render_summary(S, t, c.v) end
        info_suffix(pinfo, c.v.cause, evidence)
    elseif S.decided[frame] then
        local v = verdict_of(S)
        each_verdict_item(S, v, generated_adder(t))
        add_experts(S, t, frame, true)
    end
end

return M
