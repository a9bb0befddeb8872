-- smtpdiag.heuristics: mail on ports Wireshark does not know. A heuristic on the server's
-- greeting ("220 ... SMTP", "+OK ... POP", "* OK ... IMAP") adds the server's port to TCP's
-- port table for Wireshark's own dissector of that protocol, as "Decode As" would: that
-- dissector then tells client from server by the port, exactly as on its usual ports, and the
-- post-dissector sees the conversation. Ports added are removed when a capture is (re)loaded.
local M = {}

local P = require("smtpdiag.prefs").P

local tcp_port = DissectorTable.get("tcp.port")
local added = {}          -- port → dissector this plugin added to tcp.port

function M.reset()
    for port, d in pairs(added) do
        pcall(function() tcp_port:remove(port, d) end)
        added[port] = nil
    end
end

local function greeting_heuristic(name, dissector_name, pattern, word)
    local heur = Proto("smtpdiag_" .. name, name:upper() .. " greeting heuristic (smtpdiag)")
    local target = Dissector.get(dissector_name)
    local function try(tvb, pinfo, tree)
        if not P.heuristic or tvb:len() < 5 then return false end
        local head = tvb:raw(0, math.min(tvb:len(), 256))
        if not head:match(pattern) then return false end
        local line = head:match("^[^\r\n]*")
        if not line:upper():find(word, 1, true) then return false end
        local port = pinfo.src_port
        local current = tcp_port:get_dissector(port)
        if current == nil then
            tcp_port:add(port, target)
            added[port] = target
        elseif tostring(current) ~= tostring(target) then
            target:call(tvb, pinfo, tree)   -- the port belongs to another dissector: this conversation only
            return true
        end
        tcp_port:try(port, tvb, pinfo, tree)
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
