-- testlib: shared helpers of the plugin's Lua unit tests, in the style of Wireshark's own
-- test/lua/testlib.lua. A test file runs inside tshark, which puts this folder on package.path:
--
--   tshark -n -r EMPTY.pcap -X lua_script:tests/lua/test_NAME.lua
--
-- testlib puts the plugin's modules (lua/smtpdiag/) on package.path too, so a test requires
-- them directly. Each check prints "ok" or "FAIL" with what it got; results() prints a summary
-- and, when every check passed and the expected number ran, "All tests passed!" (what
-- tests/lua/test_lua_units.py looks for).
local M = {}

local here = debug.getinfo(1, "S").source:match("^@(.*)[/\\][^/\\]*$") or "."
M.ROOT = here:gsub("[/\\]?tests[/\\]lua$", "")
if M.ROOT == "" then M.ROOT = "." end
package.path = M.ROOT .. "/lua/?.lua;" .. package.path

local groups, order = {}, {}

-- Declares the groups of a test file and how many checks each must run.
function M.init(expected)
    for name, n in pairs(expected) do
        groups[name] = { expected = n, passed = 0, failed = 0 }
        order[#order + 1] = name
    end
    table.sort(order)
end

local function show(v)
    if type(v) == "string" then return string.format("%q", v) end
    if type(v) ~= "table" then return tostring(v) end
    local keys = {}
    for k in pairs(v) do keys[#keys + 1] = k end
    table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)
    local parts = {}
    for _, k in ipairs(keys) do parts[#parts + 1] = tostring(k) .. "=" .. show(v[k]) end
    return "{" .. table.concat(parts, ", ") .. "}"
end
M.show = show

-- One check: cond must hold; msg says what was seen when it does not.
function M.test(group, name, cond, msg)
    local g = assert(groups[group], "unknown test group " .. tostring(group))
    if cond then
        g.passed = g.passed + 1
        print(string.format("ok   %s: %s", group, name))
    else
        g.failed = g.failed + 1
        print(string.format("FAIL %s: %s%s", group, name, msg and (": " .. msg) or ""))
    end
    return cond
end

local function same(a, b)
    if type(a) ~= "table" or type(b) ~= "table" then return a == b end
    for k, v in pairs(a) do if not same(v, b[k]) then return false end end
    for k in pairs(b) do if a[k] == nil then return false end end
    return true
end
M.same = same

-- got must equal want (tables: the same keys and values, deeply).
function M.eq(group, name, got, want)
    return M.test(group, name, same(got, want), "got " .. show(got) .. ", want " .. show(want))
end

-- f(...) must raise an error whose message contains pattern (a Lua pattern).
function M.raises(group, name, pattern, f, ...)
    local ok, err = pcall(f, ...)
    return M.test(group, name, not ok and tostring(err):find(pattern) ~= nil,
        ok and "no error" or ("error " .. show(tostring(err))))
end

-- Prints the summary; true when every group ran its expected checks and none failed.
function M.results()
    local all = true
    print("\n===== Test Results =====")
    for _, name in ipairs(order) do
        local g = groups[name]
        local total = g.passed + g.failed
        if g.failed > 0 or total ~= g.expected then all = false end
        print(string.format("%s: passed %d/%d%s%s", name, g.passed, total,
            g.failed > 0 and string.format(", FAILED %d", g.failed) or "",
            total ~= g.expected and string.format(" (expected %d checks)", g.expected) or ""))
    end
    if all then print("All tests passed!") end
    return all
end

return M
