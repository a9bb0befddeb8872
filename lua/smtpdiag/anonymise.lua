-- smtpdiag.anonymise: with the preference smtpdiag.anonymise on, what the plugin writes names no
-- person: MAIL FROM, RCPT TO, HELO/EHLO names and mailbox users become pseudonyms
-- ("anon-" and 16 hex digits, equal for equal inputs), and free text (details, replies) has
-- every mail address and every such name replaced by its pseudonym. Addresses of hosts (IP,
-- ports), reply codes and the diagnosis stay: they are what the export is for.
local M = {}

local format, byte, gsub = string.format, string.byte, string.gsub

-- Two 32-bit polynomial hashes of s (plain arithmetic: Lua 5.2 has no integer bit operations, 5.4 no bit32).
function M.pseudonym(s)
    if s == nil or s == "" then return s end
    local h1, h2 = 5381, 2166136
    for i = 1, #s do
        local b = byte(s, i)
        h1 = (h1 * 33 + b) % 4294967296
        h2 = (h2 * 131 + b + 7) % 4294967296
    end
    return format("anon-%08x%08x", h1, h2)
end
local pseudonym = M.pseudonym

local function escape(s)
    return (gsub(s, "[%^%$%(%)%%%.%[%]%*%+%-%?]", "%%%0"))
end

-- A mail address's characters (RFC 5321 local part and domain, without quotes and brackets).
local ADDRESS = "[%w%.%%%+%-_=!#%$&%*/%?%^`{|}~]+@[%w%.%-]+"

-- Free text with every mail address and every name in `names` (a list) replaced by its pseudonym.
function M.scrub(text, names)
    if text == nil or text == "" then return text end
    text = gsub(text, "<([^<>]*)>", function(a)
        if a:find("@", 1, true) then return "<" .. pseudonym(a) .. ">" end
    end)
    text = gsub(text, ADDRESS, function(a)
        if a:sub(1, 5) == "anon-" then return nil end
        return pseudonym(a)
    end)
    for _, n in ipairs(names or {}) do
        if #n >= 2 then
            local pat = escape(n)
            -- A name that starts and ends with a letter or digit is replaced as a whole word only.
            if n:find("^%w") and n:find("%w$") then pat = "%f[%w%.%-_@]" .. pat .. "%f[^%w%.%-_@]" end
            text = gsub(text, pat, (gsub(pseudonym(n), "%%", "%%%%")))
        end
    end
    return text
end

-- The names a session's free text may quote: its HELO, mailbox user, senders and recipients.
function M.names_of(S)
    local names = {}
    if S.helo then names[#names + 1] = S.helo end
    if S.user then names[#names + 1] = S.user end
    for _, x in ipairs(S.txns or {}) do
        if x.mailfrom and x.mailfrom ~= "" then names[#names + 1] = x.mailfrom end
        for _, r in ipairs(x.rcpt or {}) do names[#names + 1] = r end
    end
    -- Longest first: a name inside another is replaced after it.
    table.sort(names, function(a, b) return #a > #b end)
    return names
end

return M
