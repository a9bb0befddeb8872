-- smtpdiag.decrypted: mail inside TLS when Wireshark has the keys (-o tls.keylog_file:FILE,
-- SSLKEYLOGFILE, secrets embedded in a pcapng). Wireshark hands each decrypted record to the
-- application's dissector (SMTP, POP, IMAP, or "data") on a data source of its own; the
-- post-dissector finds the plaintext through that dissector's item (FieldInfo.source, offset,
-- len) and gives it to the same state machines as clear text. The TLS records themselves still
-- go to the record walker (handshake, closes).
local M = {}

local protocol_bytes = require("smtpdiag.tcp").protocol_bytes
local ipairs = ipairs

local APP = { Field.new("smtp"), Field.new("pop"), Field.new("imap"), Field.new("data") }

-- The decrypted application bytes the frame carries (every record of it, in order), or nil.
local function plaintext(tvb)
    local out
    local flen = tvb:len()
    for _, f in ipairs(APP) do
        for _, fi in ipairs({ f() }) do
            local src, off, n = fi.source, fi.offset, fi.len
            if src and n and n > 0 and off >= 0 and off + n <= src:len() then
                local bytes = src:raw(off, n)
                -- an item on the frame's own bytes is clear text, not decrypted data
                if not (src:len() == flen and tvb:raw(off, n) == bytes) then
                    out = out or {}
                    out[#out + 1] = bytes
                end
            end
        end
    end
    return out and table.concat(out) or nil
end

-- The session left clear text for TLS: its dialogue goes on in the decrypted bytes.
local function begin(S)
    S.tls_plain = true
    S.phase = S.greeted and "cmd" or "greeting"
    S.cmode = "cmd"
    S.c.line, S.s.line = "", ""
    local t = S.txn
    if t and t.tls and not t.mailfrom and #t.rcpt == 0 then
        -- the STARTTLS record of a transaction: the transactions inside TLS are seen instead
        for i = #S.txns, 1, -1 do
            if S.txns[i] == t then table.remove(S.txns, i); break end
        end
        S.txn = nil
    end
end

-- One TLS frame of session S from role: its decrypted bytes, if Wireshark has any, to the
-- session's protocol.
function M.frame(S, tvb, role, frame, ts)
    local W = S.tlsw
    if not (W and W.s.records > 0) then return end  -- no server TLS record yet: nothing decrypted
    local ok, s = pcall(plaintext, tvb)
    if not ok or not s or s == "" then return end
    if not S.tls_plain then begin(S) end
    S.cur_frame = frame
    protocol_bytes(S, role, s, frame, ts)
end

return M
