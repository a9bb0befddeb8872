"""The Lua plugin as the toolkit sees it: the file and its version, the summary file it writes, installing it
for Wireshark."""
from .file import LUA_ENV, PLUGIN_FILE, lua_plugin_path, plugin_build, plugin_version
from .install import (PROFILE_NAME, install_plugin, install_profile, personal_config_dir, personal_plugins_dir,
                      personal_profiles_dir, profile_source_dir)
from .summary_file import (SUMMARY_FILE_PREF, SummaryFileWriter, read_summary_file, read_summary_writer,
                           summary_file_option)

__all__ = [
    "LUA_ENV", "PLUGIN_FILE", "lua_plugin_path", "plugin_build", "plugin_version",
    "PROFILE_NAME", "install_plugin", "install_profile", "personal_config_dir", "personal_plugins_dir",
    "personal_profiles_dir", "profile_source_dir",
    "SUMMARY_FILE_PREF", "SummaryFileWriter", "read_summary_file", "read_summary_writer", "summary_file_option",
]
