-- Base64 (smtpdiag.util.b64decode), the user name taken from AUTH PLAIN (smtpdiag.mailbox), and
-- line breaks taken off a line (smtpdiag.util.chomp: what gsub("\r?\n$", "") gives).
local testlib = require("testlib")
local util = require("smtpdiag.util")
local mailbox = require("smtpdiag.mailbox")

local B64, PLAIN, CHOMP = "base64", "AUTH PLAIN", "chomp"
local LINES = { "", "\n", "\r\n", "\r", "abc", "abc\n", "abc\r\n", "abc\r\r\n", "a\nb\n", "\n\n", "x\r" }
testlib.init({ [B64] = 11, [PLAIN] = 6, [CHOMP] = #LINES })

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

testlib.results()
