-- The modules themselves: each loads without registering anything, the spec lists are
-- consistent, the port lists parse, and no function is longer than 80 lines.
local testlib = require("testlib")

local NAMES = { "connection", "dissect", "dns", "fields", "heuristics", "mailbox", "prefs", "render",
                "session", "session_end", "smtp_commands", "smtp_data", "smtp_replies", "summary_file", "gui",
                "tcp", "tls", "util", "verdict", "version" }
local LOAD, SPEC, PORTS, SIZE = "load", "specs", "ports", "function size"
testlib.init({ [LOAD] = #NAMES + 1, [SPEC] = 8, [PORTS] = 5, [SIZE] = 2 })

local mods = {}
for _, name in ipairs(NAMES) do
    local ok, m = pcall(require, "smtpdiag." .. name)
    testlib.test(LOAD, "require smtpdiag." .. name, ok and type(m) == "table", tostring(m))
    mods[name] = ok and m or {}
end
testlib.eq(LOAD, "no ProtoField made before register()", next(mods.fields.F or {}), nil)

-- Specs: the field and expert lists name each thing once, with types the register() knows.
local fields = mods.fields
local keys, abbrs, bad_type, bad_name = {}, {}, {}, {}
for _, s in ipairs(fields.SPEC) do
    keys[s[1]] = (keys[s[1]] or 0) + 1
    abbrs[s[2]] = (abbrs[s[2]] or 0) + 1
    if not fields.FTYPE[s[3]] then bad_type[#bad_type + 1] = s[1] end
    if not (s[2]:find("^smtpdiag%.") or (s.fallback and s.fallback:find("^smtpdiag%."))) then bad_name[#bad_name + 1] = s[2] end
end
local function dups(t)
    local out = {}
    for k, n in pairs(t) do if n > 1 then out[#out + 1] = k end end
    return out
end
testlib.eq(SPEC, "field keys unique", dups(keys), {})
testlib.eq(SPEC, "field names unique", dups(abbrs), {})
testlib.eq(SPEC, "field types known", bad_type, {})
testlib.eq(SPEC, "names outside smtpdiag.* have a smtpdiag.* fallback", bad_name, {})
local codes, bad_expert = {}, {}
for _, e in ipairs(fields.EXPERT_SPEC) do
    codes[e[1]] = (codes[e[1]] or 0) + 1
    if not expert.group[e[2]] or not expert.severity[e[3]] then bad_expert[#bad_expert + 1] = e[1] end
end
testlib.eq(SPEC, "expert codes unique", dups(codes), {})
testlib.eq(SPEC, "expert groups and severities exist", bad_expert, {})
local pref_names, bad_pref = {}, {}
for _, s in ipairs(mods.prefs.SPEC) do
    pref_names[s[1]] = (pref_names[s[1]] or 0) + 1
    local ok_default = type(s[4]) == ({ string = "string", bool = "boolean", uint = "number", enum = "string" })[s[2]]
    if s[2] == "enum" then
        local found = false
        for _, c in ipairs(s.choices or {}) do found = found or c == s[4] end
        ok_default = ok_default and found
    end
    if not Pref[s[2]] or not ok_default then
        bad_pref[#bad_pref + 1] = s[1]
    end
end
testlib.eq(SPEC, "preference names unique", dups(pref_names), {})
testlib.eq(SPEC, "preference types and defaults agree", bad_pref, {})

-- Port lists.
local parse = mods.prefs.parse_ports
testlib.eq(PORTS, "list", parse("25,465, 587"), { [25] = true, [465] = true, [587] = true })
testlib.eq(PORTS, "range", parse("2525-2527"), { [2525] = true, [2526] = true, [2527] = true })
testlib.eq(PORTS, "empty", parse(""), {})
testlib.eq(PORTS, "nil", parse(nil), {})
testlib.eq(PORTS, "words ignored", parse("smtp 25"), { [25] = true })

-- Every function reachable from the modules (their tables and the upvalues of their functions).
local seen, longest, too_long, count = { [_G] = true, [package] = true }, { n = 0 }, {}, 0
local function walk(v)
    if seen[v] then return end
    if type(v) == "table" then
        seen[v] = true
        for k, x in pairs(v) do walk(k); walk(x) end
    elseif type(v) == "function" then
        seen[v] = true
        local info = debug.getinfo(v, "S")
        if not info.source:find("smtpdiag[/\\][%w_]+%.lua$") then return end
        count = count + 1
        local n = info.lastlinedefined - info.linedefined + 1
        local where = info.short_src .. ":" .. info.linedefined
        if n > longest.n then longest = { n = n, where = where } end
        if n > 80 then too_long[#too_long + 1] = where .. " (" .. n .. " lines)" end
        for i = 1, math.huge do
            local name, up = debug.getupvalue(v, i)
            if not name then break end
            walk(up)
        end
    end
end
for _, name in ipairs(NAMES) do walk(mods[name]) end
testlib.test(SIZE, "the walk finds the modules' functions", count >= 150, count .. " functions")
testlib.eq(SIZE, "no function over 80 lines", too_long, {})
print(string.format("longest of %d functions: %d lines at %s", count, longest.n, tostring(longest.where)))

testlib.results()
