-- Prints the plugin's field, expert and preference lists as tab-separated lines, for
-- lua/fields_doc.py (which writes docs/fields.md from them):
--
--   tshark -q -r EMPTY.pcap -X lua_script:lua/tools/dump_specs.lua
--
--   F <name> <FT type> <label> <description>   a field (its preferred name)
--   E <name> FT_NONE <message>                  an expert info
--   P <name> <type> <default> <description>     a preference
-- Nothing is registered: the lists are read from the modules in lua/smtpdiag/.
local here = debug.getinfo(1, "S").source:match("^@(.*)[/\\]tools[/\\][^/\\]*$") or "lua"
package.path = here .. "/?.lua;" .. package.path

local fields = require("smtpdiag.fields")
local prefs = require("smtpdiag.prefs")

local function row(...)
    local cells = { ... }
    for i, c in ipairs(cells) do cells[i] = tostring(c):gsub("[\t\r\n]", " ") end
    print(table.concat(cells, "\t"))
end
for _, s in ipairs(fields.SPEC) do row("F", s[2], fields.FTYPE[s[3]], s[4], s[5] or "") end
for _, e in ipairs(fields.EXPERT_SPEC) do row("E", "smtpdiag.expert." .. e[1], "FT_NONE", e[4], "") end
for _, s in ipairs(prefs.SPEC) do
    local default = s[4]
    if type(default) == "boolean" then default = default and "TRUE" or "FALSE" end
    row("P", "smtpdiag." .. s[1], s[2], default, s[5])
end
