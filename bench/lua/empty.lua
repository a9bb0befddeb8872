-- Benchmark floor: a Lua post-dissector that does nothing. Its cost over tshark
-- alone is what any Lua post-dissector pays per frame (Wireshark hands it a Tvb,
-- a Pinfo and a TreeItem every time).
local p = Proto("bench_empty", "Benchmark: empty post-dissector")
function p.dissector(tvb, pinfo, tree) end
register_postdissector(p)
