-- smtpdiag.main: the plugin's registration: the Proto with its preferences, fields and expert
-- infos, the post-dissector, its init routine, the end-of-capture tap and the heuristics.
-- Requiring this module registers them; every other module can be required on its own.
--
-- Design: the first pass (pinfo.visited == false) feeds every TCP segment of a mail stream
-- through a per-stream reassembler (tcp) and a protocol state machine driven by client bytes
-- and server replies (smtp_commands, smtp_replies, smtp_data, tls, mailbox), and records
-- findings on the session (session, session_end); DNS lookups for mail are their own
-- conversations (dns). Rendering (render, verdict) happens on every pass: on the first pass only
-- what the current frame decided, on later passes (tshark -2, the GUI) the session's whole
-- verdict on every frame. Batch mode writes one line per conversation instead (summary_file).

local dissect = require("smtpdiag.dissect")
local fields = require("smtpdiag.fields")
local gui = require("smtpdiag.gui")
local heuristics = require("smtpdiag.heuristics")
local prefs = require("smtpdiag.prefs")
local util = require("smtpdiag.util")
local version = require("smtpdiag.version")

local p = Proto("smtpdiag", "SMTP diagnosis")

prefs.declare(p)
prefs.load(p)
function p.prefs_changed() prefs.load(p) end

fields.register(p)
local F = fields.F

function p.init()
    dissect.init()
    prefs.load(p)
end

local dissect_frame = dissect.dissect
function p.dissector(tvb, pinfo, tree)
    -- A Lua error must never reach Wireshark: it aborts tshark 4.6. Malformed
    -- input gives no verdict rather than a wrong one.
    local ok, err = pcall(dissect_frame, tvb, pinfo, tree)
    if not ok then
        pcall(function()
            local t = tree:add(p, "SMTP diagnosis: internal error")
            t:add(F.version, version.version)
            t:add(F.internal_error, util.clean(err, 300))
        end)
    end
end

register_postdissector(p)

-- Batch mode: at the end of the capture every conversation still open gets its
-- end-of-capture verdict and its line in the summary file.
local end_tap = Listener.new(nil, nil)
function end_tap.draw()
    dissect.finish_capture()
end

heuristics.register()
gui.register(dissect.finalize)
