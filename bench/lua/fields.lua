-- Benchmark floor: the per-frame reads smtpdiag.lua cannot avoid, and nothing else:
-- tcp.stream and tcp.len through field extractors (tcp.len sits at the TCP header), the frame's ports,
-- number and time from pinfo, the TCP header and payload bytes from the frame.
local p = Proto("bench_fields", "Benchmark: field reads only")
local f_stream = Field.new("tcp.stream")
local f_tcplen = Field.new("tcp.len")
local byte = string.byte
local sink = 0
function p.dissector(tvb, pinfo, tree)
    local frame, ts = pinfo.number, pinfo.abs_ts
    local sport, dport = pinfo.src_port, pinfo.dst_port
    local st = f_stream()
    if not st then return end
    local tl = f_tcplen()
    if not tl then return end
    local stream, tcplen = st.value, tl.value
    local off = tl.offset
    if off < 0 or off + 20 > tvb:len() then return end
    local _, _, _, _, s1, _, _, _, a1, _, _, _, hl, fl = byte(tvb:raw(off, 20), 1, 14)
    local payload = ""
    if tcplen > 0 then
        local start = off + math.floor(hl / 16) * 4
        local n = math.min(tcplen, tvb:len() - start)
        if n > 0 then payload = tvb:raw(start, n) end
    end
    sink = (sink + stream + frame + sport + dport + s1 + a1 + fl + #payload + (ts > 0 and 1 or 0)) % 65536
end
register_postdissector(p)
