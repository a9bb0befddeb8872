-- Base64 (smtpdiag.util.b64decode), the user name taken from AUTH PLAIN (smtpdiag.mailbox), and
-- line breaks taken off a line (smtpdiag.util.chomp: what gsub("\r?\n$", "") gives), printable text
-- (smtpdiag.util.clean: every byte outside space..tilde escaped, as the three-range pattern did).
local testlib = require("testlib")
local util = require("smtpdiag.util")
local mailbox = require("smtpdiag.mailbox")

local B64, PLAIN, CHOMP, CLEAN = "base64", "AUTH PLAIN", "chomp", "clean"
local LINES = { "", "\n", "\r\n", "\r", "abc", "abc\n", "abc\r\n", "abc\r\r\n", "a\nb\n", "\n\n", "x\r" }
testlib.init({ [B64] = 11, [PLAIN] = 6, [CHOMP] = #LINES, [CLEAN] = 4 })

local b64 = util.b64decode
testlib.eq(B64, "padded", b64("aGVsbG8="), "hello")
testlib.eq(B64, "two pad characters", b64("aGk="), "hi")
testlib.eq(B64, "no padding", b64("aGk"), "hi")
testlib.eq(B64, "no padding needed", b64("YWJj"), "abc")
testlib.eq(B64, "empty", b64(""), "")
testlib.eq(B64, "characters outside the alphabet ignored", b64("aGVs\r\nbG8=\r\n"), "hello")
testlib.eq(B64, "+ and /", b64("+/8="), "\251\255")
testlib.eq(B64, "every byte value", b64("AAECA/z9/v8="), "\0\1\2\3\252\253\254\255")
testlib.eq(B64, "NUL bytes kept", b64("AGJvYgBzZWNyZXQ="), "\0bob\0secret")
testlib.eq(B64, "more than 4096 characters: nothing", b64(string.rep("QUFB", 1025)), "")
testlib.eq(B64, "4096 characters: decoded", #b64(string.rep("QUFB", 1024)), 3072)

local user = mailbox.plain_user
testlib.eq(PLAIN, "authcid, password dropped", user("AGJvYgBzZWNyZXQ="), "bob")
testlib.eq(PLAIN, "with an authzid", user("YWRtaW4AYm9iAHNlY3JldA=="), "bob")
testlib.eq(PLAIN, "not PLAIN's form", user("aGVsbG8="), nil)
testlib.eq(PLAIN, "nil", user(nil), nil)
testlib.eq(PLAIN, "control bytes in the name are shown escaped", user("AGIBbwBwdw=="), "b\\x01o")
testlib.eq(PLAIN, "a long name is cut to 100", #user("AGFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYQBwdw=="), 103)

for _, line in ipairs(LINES) do
    testlib.eq(CHOMP, string.format("%q", line), util.chomp(line), (line:gsub("\r?\n$", "")))
end

local function old_clean(x)
    return (x:gsub("[%z\1-\31\127-\255]", function(c) return string.format("\\x%02x", c:byte()) end))
end
local every = {}
for b = 0, 255 do every[#every + 1] = string.char(b) end
every = table.concat(every)
testlib.eq(CLEAN, "every byte value", util.clean(every, 1000), old_clean(every))
testlib.eq(CLEAN, "printable text as it is", util.clean("250 2.0.0 Ok: queued as ABC~ {x}"), "250 2.0.0 Ok: queued as ABC~ {x}")
testlib.eq(CLEAN, "NUL, DEL and a high byte", util.clean("a\0b\127c\200"), "a\\x00b\\x7fc\\xc8")
testlib.eq(CLEAN, "cut to max", util.clean("abcdef", 3), "abc...")

testlib.results()
