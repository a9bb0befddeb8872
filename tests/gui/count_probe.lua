-- Test probe for tests/gui: counts, on every pass over the capture, the frames that match
-- $COUNT_FILTER and appends "pass count" to $COUNT_OUT when the pass is drawn. The tap is made
-- in an init routine: the plugins' fields exist only once every plugin has loaded.
local flt, out = os.getenv("COUNT_FILTER"), os.getenv("COUNT_OUT")
if not flt or not out then return end
local p = Proto("smtpdiag_test_count", "smtpdiag test: count probe")
local tap, n, pass = nil, 0, 0
function p.init()
    if tap then return end
    tap = Listener.new("frame", flt)
    function tap.reset() n = 0 end
    function tap.packet() n = n + 1 end
    function tap.draw()
        pass = pass + 1
        local f = io.open(out, "a")
        if f then f:write(pass, " ", n, "\n"); f:close() end
    end
end
