-- smtpdiag.util: small pure helpers every stage shares: sequence-number arithmetic, printable
-- text from capture bytes, line splitting, base64.
local M = {}

local byte, floor, format, sub = string.byte, math.floor, string.format, string.sub

local MOD32 = 4294967296
M.MOD32 = MOD32

-- a - b in sequence space, signed.
function M.seqdiff(a, b)
    local d = (a - b) % MOD32
    if d >= 2147483648 then d = d - MOD32 end
    return d
end

-- Printable, bounded text from capture bytes: no control characters reach a
-- column, a CSV cell or a terminal.
function M.clean(s, max)
    max = max or 200
    s = tostring(s or "")
    if #s > max then s = s:sub(1, max) .. "..." end
    -- [^ -~] is [%z\1-\31\127-\255] as one range: the pattern matcher tests one range per byte, not three
    if not s:find("[^ -~]") then return s end
    return (s:gsub("[^ -~]", function(c) return format("\\x%02x", c:byte()) end))
end

function M.secs(x)
    return format("%.1f s", x)
end

function M.u64(n)
    return UInt64.new(floor(n))
end

-- Seconds (a Lua number) as an NSTime, for relative-time fields.
function M.nstime(x)
    local s = floor(x)
    local ns = floor((x - s) * 1e9 + 0.5)
    if ns >= 1000000000 then s, ns = s + 1, ns - 1000000000 end
    return NSTime.new(s, ns)
end

-- A duration for a label: "2.002 s", "0.7 ms".
function M.duration_text(x)
    if x >= 1 or x <= -1 then return format("%.3f s", x) end
    return format("%.1f ms", x * 1000)
end

-- Epoch seconds ("1764673200.123456") as UTC: "2026-12-02 11:00:00.123456 UTC".
function M.utc_text(epoch)
    local whole, frac = tostring(epoch):match("^(%d+)(%.?%d*)$")
    if not whole then return tostring(epoch) end
    return os.date("!%Y-%m-%d %H:%M:%S", tonumber(whole)) .. frac .. " UTC"
end

-- "client" or "server" for a direction ("c" or "s").
function M.side(role)
    return role == "c" and "client" or "server"
end

-- The next complete line of s from pos, joined to what direction d buffered before, and
-- the position after it; nil when s ends inside a line (the rest is buffered, lines
-- are kept to 4096 bytes).
function M.take_line(d, s, pos)
    local nl = s:find("\n", pos, true)
    if not nl then
        if #d.line < 4096 then d.line = d.line .. s:sub(pos, pos + 4095 - #d.line) end
        return nil
    end
    local line = d.line .. s:sub(pos, math.min(nl, pos + 4096))
    d.line = ""
    return line, nl + 1
end

-- The line without its line break ("\n" or "\r\n"): what line:gsub("\r?\n$", "") gives, without
-- trying the pattern at every position of the line.
function M.chomp(line)
    local n = #line
    if byte(line, n) ~= 10 then return line end
    n = n - 1
    if byte(line, n) == 13 then n = n - 1 end
    return sub(line, 1, n)
end

-- s from pos on (a copy only when pos > 1: string.sub always copies).
function M.rest_of(s, pos)
    if pos == 1 then return s end
    return s:sub(pos)
end

local B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"

-- Base64 text to bytes; characters outside the alphabet are ignored, more than 4096 gives "".
function M.b64decode(s)
    s = s:gsub("[^%w%+/=]", "")
    if #s > 4096 then return "" end
    return (s:gsub(".", function(x)
        if x == "=" then return "" end
        local f = B64:find(x, 1, true)
        if not f then return "" end
        local r, n = "", f - 1
        for i = 6, 1, -1 do r = r .. (floor(n / 2 ^ (i - 1)) % 2 == 1 and "1" or "0") end
        return r
    end):gsub("%d%d%d?%d?%d?%d?%d?%d?", function(x)
        if #x ~= 8 then return "" end
        return string.char(tonumber(x, 2))
    end))
end

-- The frame's network source and destination (the innermost IP header's), as text.
function M.addr_pair(pinfo)
    local src, dst = pinfo.net_src, pinfo.net_dst
    return src and tostring(src) or "?", dst and tostring(dst) or "?"
end

-- The values of every occurrence of a field extractor in the current frame.
function M.values(f)
    local out = {}
    for _, fi in ipairs({ f() }) do out[#out + 1] = fi.value end
    return out
end

-- Empties t in place (other modules hold it as an upvalue).
function M.clear(t)
    for k in pairs(t) do t[k] = nil end
    return t
end

return M
