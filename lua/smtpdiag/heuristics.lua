-- smtpdiag.heuristics: mail on ports Wireshark does not know. A heuristic on the server's
-- greeting ("220 ... SMTP", "+OK ... POP", "* OK ... IMAP") adds the server's port to TCP's
-- port table for Wireshark's own dissector of that protocol, as "Decode As" would: that
-- dissector then tells client from server by the port, exactly as on its usual ports, and the
-- post-dissector sees the conversation. Ports added are removed when a capture is (re)loaded.
local M = {}

local P = require("smtpdiag.prefs").P

local tcp_port = DissectorTable.get("tcp.port")
local added = {}          -- port → dissector this plugin added to tcp.port
-- Server ports of conversations found on a port another dissector owns → the protocol found.
local own_ports = DissectorTable.new("smtpdiag.greeting_port", "smtpdiag: mail found on another protocol's port",
                                     ftypes.UINT16, base.DEC)
local own_added = {}

function M.reset()
    for port, d in pairs(added) do
        pcall(function() tcp_port:remove(port, d) end)
        added[port] = nil
    end
    for port, d in pairs(own_added) do
        pcall(function() own_ports:remove(port, d) end)
        own_added[port] = nil
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
            -- The port belongs to another dissector (a plaintext greeting on 465/993/995): this
            -- conversation (all of it, on later passes) goes to the protocol found, through a table
            -- of this plugin's own that tells it the server's port as Decode As would.
            -- Only on the first pass: later, a dissector may have taken the conversation over
            -- (STARTTLS), and it hands the greeting back to the heuristics.
            if not pinfo.visited then
                own_ports:add(port, target)
                own_added[port] = target
                pinfo.conversation = heur
            end
            own_ports:try(port, tvb, pinfo, tree)
            return true
        end
        tcp_port:try(port, tvb, pinfo, tree)
        return true
    end
    function heur.dissector(tvb, pinfo, tree)
        local port = own_ports:get_dissector(pinfo.src_port) and pinfo.src_port or pinfo.dst_port
        return own_ports:try(port, tvb, pinfo, tree)
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
