-- luacheck configuration for the plugin's modules, tools and Lua tests (luacheck lua/smtpdiag lua/tools tests/lua)
std = "lua52"
max_line_length = false
read_globals = {
    "Proto", "Pref", "ProtoField", "ProtoExpert", "Field", "base", "ftypes", "expert", "UInt64",
    "DissectorTable", "Dissector", "register_postdissector", "Listener", "NSTime",
    -- the GUI API (smtpdiag.gui)
    "gui_enabled", "get_filter", "set_filter", "apply_filter", "goto_frame", "TextWindow", "new_dialog",
    "register_menu", "MENU_TOOLS_UNSORTED",
}
exclude_files = { "lua/smtpdiag.lua" }
