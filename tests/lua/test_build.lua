-- The built plugin (lua/smtpdiag.lua, from lua/build.py): every module is a package.preload
-- entry compiled under its source name, so errors point at lua/smtpdiag/NAME.lua:LINE, and
-- the version module names the build.
local testlib = require("testlib")

local PRELOAD, ERRORS, VERSION = "preload", "errors", "version"
testlib.init({ [PRELOAD] = 3, [ERRORS] = 2, [VERSION] = 3 })

local plugin = testlib.ROOT .. "/lua/smtpdiag.lua"
local fh = assert(io.open(plugin, "rb"))
local text = fh:read("*a")
fh:close()
dofile(plugin)  -- registers the plugin in this tshark, as loading it as a plugin does

local wrong, count = {}, 0
for name in text:gmatch('\nmodule%("([%w_]+)", %[') do
    count = count + 1
    local loader = package.preload["smtpdiag." .. name]
    local source = loader and debug.getinfo(loader, "S").source
    if source ~= "@lua/smtpdiag/" .. name .. ".lua" then wrong[#wrong + 1] = name .. "=" .. tostring(source) end
end
testlib.test(PRELOAD, "the built file holds the modules", count >= 15, count .. " modules")
testlib.eq(PRELOAD, "each compiled under its source name", wrong, {})
testlib.test(PRELOAD, "the modules come from the built file", package.loaded["smtpdiag.main"] ~= nil
    and debug.getinfo(require("smtpdiag.util").seqdiff, "S").source == "@lua/smtpdiag/util.lua")

-- A Lua error names the module's file and the line of the module's source.
local line
local src = assert(io.open(testlib.ROOT .. "/lua/smtpdiag/util.lua"))
local n = 0
for l in src:lines() do
    n = n + 1
    if l:find("local d = (a - b) % MOD32", 1, true) then line = n end
end
src:close()
local ok, err = pcall(require("smtpdiag.util").seqdiff, nil, 1)
testlib.test(ERRORS, "an error is raised", not ok)
testlib.eq(ERRORS, "it names the module's file and line", tostring(err):match("^[^:]+:%d+"),
    "lua/smtpdiag/util.lua:" .. tostring(line))

local version = require("smtpdiag.version")
testlib.eq(VERSION, "version as declared", version.version, text:match('\nlocal SMTPDIAG_VERSION = "([^"]+)"'))
testlib.eq(VERSION, "build id as declared", version.build, text:match('\nlocal SMTPDIAG_BUILD = "([^"]+)"'))
testlib.test(VERSION, "build id: 12 hex digits", version.build:match("^%x+$") ~= nil and #version.build == 12, version.build)

testlib.results()
