-- luacheck configuration for the plugin's modules, tools and Lua tests (luacheck lua/smtpdiag lua/tools tests/lua)
std = "lua52"
max_line_length = false
read_globals = {
    "Proto", "Pref", "ProtoField", "ProtoExpert", "Field", "base", "ftypes", "expert", "UInt64",
    "DissectorTable", "Dissector", "register_postdissector", "Listener",
}
exclude_files = { "lua/smtpdiag.lua" }
