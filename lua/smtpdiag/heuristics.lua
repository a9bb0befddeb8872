-- smtpdiag.heuristics: mail on ports Wireshark does not know. A heuristic on the server's
-- greeting ("220 ... SMTP", "+OK ... POP", "* OK ... IMAP") hands the conversation to
-- Wireshark's own dissector for that protocol, and so to the post-dissector.
local M = {}

local P = require("smtpdiag.prefs").P

local function greeting_heuristic(name, dissector_name, pattern, word)
    local heur = Proto("smtpdiag_" .. name, name:upper() .. " greeting heuristic (smtpdiag)")
    local target = Dissector.get(dissector_name)
    function heur.dissector(tvb, pinfo, tree)
        return target:call(tvb, pinfo, tree)
    end
    local function try(tvb, pinfo, tree)
        if not P.heuristic or tvb:len() < 5 then return false end
        local head = tvb:raw(0, math.min(tvb:len(), 256))
        if not head:match(pattern) then return false end
        local line = head:match("^[^\r\n]*")
        if not line:upper():find(word, 1, true) then return false end
        pinfo.conversation = heur
        target:call(tvb, pinfo, tree)
        return true
    end
    local function detect(tvb, pinfo, tree)
        local ok, res = pcall(try, tvb, pinfo, tree)
        return ok and res or false
    end
    heur:register_heuristic("tcp", detect)
end

-- Registers the three heuristics (once, when the plugin loads).
function M.register()
    greeting_heuristic("smtp", "smtp", "^220[ -]", "SMTP")
    greeting_heuristic("pop", "pop", "^%+OK", "POP")
    greeting_heuristic("imap", "imap", "^%* OK", "IMAP")
end

return M
